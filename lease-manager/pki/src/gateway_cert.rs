//! The tenant gateway's TLS server certificate: self-signed (the agent pins it by the SHA-256
//! of its DER, taken from the lease's gateway spec, not by a CA), ECDSA P-256, long-lived
//! because the pin is part of every lease the tenant asks for. Pure.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::AuthorityError;

/// A self-signed server certificate and its key.
#[derive(Clone, PartialEq, Eq)]
pub struct SelfSignedCert {
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    /// PKCS #8 PEM. The caller keeps it in a file of mode 0600 and zeroizes its copies.
    pub key_pem: String,
}

impl std::fmt::Debug for SelfSignedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSignedCert")
            .field("cert_der_len", &self.cert_der.len())
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

fn whole_seconds(t: SystemTime) -> Result<SystemTime, AuthorityError> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| AuthorityError::BeforeEpoch(t))?
        .as_secs();
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Makes a self-signed TLS server certificate named `common_name` for `sans` (IP addresses or
/// DNS names), valid from an hour before `now` for `lifetime`, with a fresh P-256 key.
pub fn self_signed_server(
    common_name: &str,
    sans: &[String],
    now: SystemTime,
    lifetime: Duration,
) -> Result<SelfSignedCert, AuthorityError> {
    let mut params = CertificateParams::default();
    for name in sans {
        let san = match name.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => {
                let bad = |reason: String| AuthorityError::ServerName {
                    name: name.clone(),
                    reason,
                };
                rustls::pki_types::DnsName::try_from(name.as_str())
                    .map_err(|e| bad(e.to_string()))?;
                SanType::DnsName(name.as_str().try_into().map_err(|e| bad(format!("{e}")))?)
            }
        };
        params.subject_alt_names.push(san);
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = whole_seconds(now - Duration::from_secs(3600))?.into();
    params.not_after = whole_seconds(now + lifetime)?.into();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    Ok(SelfSignedCert {
        cert_der: cert.der().to_vec(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use x509_parser::prelude::{FromDer, X509Certificate};

    use super::*;

    #[test]
    fn names_and_validity() {
        let now = SystemTime::now();
        let c = self_signed_server(
            "tenant gateway",
            &["10.77.0.2".into(), "gw.example".into()],
            now,
            Duration::from_secs(86_400),
        )
        .unwrap();
        let (rest, x) = X509Certificate::from_der(&c.cert_der).unwrap();
        assert!(rest.is_empty());
        let sans = x.subject_alternative_name().unwrap().unwrap();
        assert_eq!(sans.value.general_names.len(), 2);
        assert!(x.validity().not_after.timestamp() > x.validity().not_before.timestamp());
        assert!(!format!("{c:?}").contains("PRIVATE"));
        assert!(
            self_signed_server("x", &["bad name!".into()], now, Duration::from_secs(1)).is_err()
        );
    }
}
