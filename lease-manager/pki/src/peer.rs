//! Who a verified client certificate speaks for. Runs after rustls has verified the chain to
//! the LM CA (and the CRL): this only reads the identity URI, serial and expiry.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::identity::URI_PREFIX;
use crate::{Identity, IdentityError, Serial};

/// Largest certificate looked at (ours are under 1 KiB).
const MAX_CERT_LEN: usize = 16 * 1024;

/// The caller named by a client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    pub identity: Identity,
    /// Lowercase hex, no leading zeros (as [`Serial::to_hex`]).
    pub serial_hex: String,
    pub not_after_unix: i64,
}

/// Why a certificate names no caller.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("client certificate of {len} bytes is larger than {MAX_CERT_LEN}")]
    TooLarge { len: usize },
    #[error("client certificate is not X.509 DER: {detail}")]
    NotACertificate { detail: String },
    #[error("{len} bytes follow the client certificate")]
    TrailingBytes { len: usize },
    #[error("client certificate has a malformed subject alternative name extension: {detail}")]
    BadSan { detail: String },
    #[error(
        "client certificate carries no `{URI_PREFIX}...` URI; it was not issued by this Lease Manager for a caller"
    )]
    NoIdentity,
    #[error(
        "client certificate carries {count} subject alternative names; Lease Manager client certificates carry exactly one identity URI"
    )]
    ExtraNames { count: usize },
    #[error("client certificate identity: {0}")]
    Identity(#[from] IdentityError),
    #[error("client certificate serial number is longer than 20 bytes")]
    Serial,
}

/// Reads the identity, serial and expiry of a client certificate (DER).
pub fn peer_cert(der: &[u8]) -> Result<PeerCert, PeerError> {
    if der.len() > MAX_CERT_LEN {
        return Err(PeerError::TooLarge { len: der.len() });
    }
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| PeerError::NotACertificate {
        detail: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(PeerError::TrailingBytes { len: rest.len() });
    }
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PeerError::BadSan {
            detail: e.to_string(),
        })?
        .ok_or(PeerError::NoIdentity)?;
    let names = &san.value.general_names;
    let uri = match names.as_slice() {
        [GeneralName::URI(uri)] => *uri,
        [_] => return Err(PeerError::NoIdentity),
        many => {
            let ours = many
                .iter()
                .filter(|n| matches!(n, GeneralName::URI(u) if u.starts_with(URI_PREFIX)))
                .count();
            if ours == 0 {
                return Err(PeerError::NoIdentity);
            }
            return Err(PeerError::ExtraNames { count: many.len() });
        }
    };
    if !uri.starts_with(URI_PREFIX) {
        return Err(PeerError::NoIdentity);
    }
    let identity = Identity::from_uri(uri)?;
    let serial = Serial::from_bytes(cert.raw_serial()).map_err(|_| PeerError::Serial)?;
    Ok(PeerCert {
        identity,
        serial_hex: serial.to_hex(),
        not_after_unix: cert.validity().not_after.timestamp(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use proptest::prelude::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    use super::*;
    use crate::Authority;

    fn ca() -> Authority {
        Authority::generate(SystemTime::now(), 1u64.into())
            .unwrap()
            .0
    }

    #[test]
    fn reads_what_issue_client_wrote() {
        let ca = ca();
        let id: Identity = "urn:lease-appliance:operator:ops".parse().unwrap();
        let not_after = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let cred = ca
            .issue_client(&id, SystemTime::now(), not_after, [0x80; 16].into())
            .unwrap();
        let der =
            rustls::pki_types::CertificateDer::from_pem_slice(cred.cert_pem.as_bytes()).unwrap();
        let peer = peer_cert(&der).unwrap();
        assert_eq!(peer.identity, id);
        assert_eq!(peer.serial_hex, "80".repeat(16));
        assert_eq!(peer.serial_hex, cred.serial_hex);
        assert_eq!(peer.not_after_unix, 2_000_000_000);
    }

    fn self_signed(sans: Vec<SanType>) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn uri(s: &str) -> SanType {
        SanType::URI(s.try_into().unwrap())
    }

    use rustls::pki_types::pem::PemObject;

    #[test]
    fn certificates_without_exactly_one_identity_are_refused() {
        let ok = "urn:lease-appliance:tenant:acme";
        assert!(peer_cert(&self_signed(vec![uri(ok)])).is_ok());
        for (sans, what) in [
            (vec![], "no SAN"),
            (
                vec![SanType::DnsName("acme".try_into().unwrap())],
                "DNS only",
            ),
            (vec![uri("https://acme")], "other URI"),
            (vec![uri(ok), uri(ok)], "twice"),
            (
                vec![uri(ok), uri("urn:lease-appliance:operator:root")],
                "two identities",
            ),
            (
                vec![uri(ok), SanType::DnsName("x".try_into().unwrap())],
                "extra DNS",
            ),
            (vec![uri("urn:lease-appliance:tenant:a:b")], "bad identity"),
            (vec![uri("urn:lease-appliance:root:a")], "bad role"),
        ] {
            let err = peer_cert(&self_signed(sans)).expect_err(what);
            assert!(!err.to_string().is_empty());
        }
        let mut der = self_signed(vec![uri(ok)]);
        der.push(0);
        assert!(matches!(
            peer_cert(&der),
            Err(PeerError::TrailingBytes { len: 1 })
        ));
        assert!(peer_cert(&[]).is_err());
        assert!(peer_cert(&vec![0x30; MAX_CERT_LEN + 1]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
            let _ = peer_cert(&data);
        }

        #[test]
        fn mutations_never_panic(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let der = VALID.with(|v| v.clone());
            let mut d = der;
            let i = pos.index(d.len());
            d[i] = byte;
            let _ = peer_cert(&d);
        }
    }

    thread_local! {
        static VALID: Vec<u8> = self_signed(vec![uri("urn:lease-appliance:tenant:acme")]);
    }
}
