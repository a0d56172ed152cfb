//! The Lease Manager CA: creates itself, issues the LM's server certificate, client
//! certificates for tenants and operators (LM-generated keys) and agent certificates from
//! verified CSRs. Pure: the caller passes `now`, `not_after` and the serial, and keeps the
//! files.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

use crate::csr::VerifiedCsr;
use crate::{Identity, Serial};

/// Lifetime of a CA made by [`Authority::generate`].
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Lifetime of the LM's TLS server certificate (reissued at every start).
pub const SERVER_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);
/// Client certificates are valid from this long before `now` (clock skew between LM and peers).
pub const CLIENT_BACKDATE: Duration = Duration::from_secs(5 * 60);

/// The CA: its signing key and certificate.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    /// The CA's subject key identifier (the CRL's authority key identifier).
    key_id: KeyIdMethod,
    not_after: SystemTime,
}

/// A leaf certificate with its private key (kept in memory; the LM's server certificate).
#[derive(Debug)]
pub struct Leaf {
    /// The leaf first, then the CA.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// A client certificate with the key the LM generated for it (tenants, operators).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredential {
    pub cert_pem: String,
    /// PKCS #8 PEM. Handed to the client once; the LM does not keep it.
    pub key_pem: String,
    pub serial_hex: String,
    /// As written in the certificate (whole seconds).
    pub not_after: SystemTime,
}

/// A certificate issued for a CSR's key (agents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    pub serial_hex: String,
    /// As written in the certificate (whole seconds).
    pub not_after: SystemTime,
}

/// What went wrong making, loading or using the CA.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the CA key is not usable: {0}; give a PKCS #8 PEM private key")]
    Key(#[source] rcgen::Error),
    #[error(
        "not usable as the CA certificate: {reason}; give the PEM of a CA certificate (basic constraints CA:TRUE, key usage keyCertSign and cRLSign)"
    )]
    NotCa { reason: String },
    #[error(
        "the CA key does not belong to the CA certificate (their public keys differ); give the key the certificate was made for"
    )]
    KeyMismatch,
    #[error("not_after {not_after_unix} is not after now ({now_unix}); give a later expiry")]
    NotAfterInPast { not_after_unix: u64, now_unix: u64 },
    #[error(
        "not_after {not_after_unix} is after the CA's own expiry ({ca_not_after_unix}); give an earlier expiry or renew the CA"
    )]
    NotAfterBeyondCa {
        not_after_unix: u64,
        ca_not_after_unix: u64,
    },
    #[error("time {0:?} is before 1970")]
    BeforeEpoch(SystemTime),
    #[error("{name:?} is not an IP address or DNS name for the LM certificate: {reason}")]
    ServerName { name: String, reason: String },
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredential")
            .field("serial_hex", &self.serial_hex)
            .field("not_after", &self.not_after)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Truncates to whole seconds (X.509 time resolution).
fn whole_seconds(t: SystemTime) -> Result<SystemTime, AuthorityError> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| AuthorityError::BeforeEpoch(t))?
        .as_secs();
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Authority {
    /// Makes a new CA (ECDSA P-256; CN "Lease Manager CA", O "lease-appliance", path length 0,
    /// valid from an hour before `now` for [`CA_LIFETIME`]). Returns it with its key as PEM,
    /// which the caller stores privately.
    pub fn generate(now: SystemTime, serial: Serial) -> Result<(Self, String), AuthorityError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Lease Manager CA");
        dn.push(DnType::OrganizationName, "lease-appliance");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = whole_seconds(now - Duration::from_secs(3600))?.into();
        params.not_after = whole_seconds(now + CA_LIFETIME)?.into();
        params.serial_number = Some(serial.to_rcgen());
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        let ca = Self::from_pem(&cert.pem(), &key_pem)?;
        Ok((ca, key_pem))
    }

    /// Loads a CA from its certificate and key (PEM). Checks that the certificate is a CA
    /// allowed to sign certificates and CRLs, and that the key is the certificate's.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, AuthorityError> {
        let key = KeyPair::from_pem(key_pem).map_err(AuthorityError::Key)?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| {
            AuthorityError::NotCa {
                reason: format!("no PEM certificate ({e})"),
            }
        })?;
        let (rest, x509) =
            X509Certificate::from_der(&cert_der).map_err(|e| AuthorityError::NotCa {
                reason: format!("not an X.509 certificate ({e})"),
            })?;
        if !rest.is_empty() {
            return Err(AuthorityError::NotCa {
                reason: "bytes follow the certificate".into(),
            });
        }
        let not_ca = |reason: &str| AuthorityError::NotCa {
            reason: reason.into(),
        };
        match x509.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => {}
            Ok(_) => return Err(not_ca("basic constraints do not say CA:TRUE")),
            Err(_) => return Err(not_ca("malformed basic constraints")),
        }
        match x509.key_usage() {
            Ok(Some(ku)) if ku.value.key_cert_sign() && ku.value.crl_sign() => {}
            Ok(Some(_)) => return Err(not_ca("key usage lacks keyCertSign or cRLSign")),
            Ok(None) => {}
            Err(_) => return Err(not_ca("malformed key usage")),
        }
        if x509.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key) {
            return Err(AuthorityError::KeyMismatch);
        }
        let key_id = x509
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => {
                    Some(KeyIdMethod::PreSpecified(id.0.to_vec()))
                }
                _ => None,
            })
            .unwrap_or(KeyIdMethod::Sha256);
        let not_after = x509.validity().not_after.timestamp();
        let not_after = UNIX_EPOCH + Duration::from_secs(u64::try_from(not_after).unwrap_or(0));
        let issuer =
            Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| AuthorityError::NotCa {
                reason: e.to_string(),
            })?;
        Ok(Self {
            issuer,
            cert_pem: cert_pem.to_string(),
            cert_der: cert_der.into_owned(),
            key_id,
            not_after,
        })
    }

    /// The CA certificate, PEM (what clients and the initramfs pin).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA's own expiry.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    pub(crate) fn key_id(&self) -> &KeyIdMethod {
        &self.key_id
    }

    /// Issues the LM's TLS server certificate for `sans` (IP addresses or DNS names), valid
    /// from an hour before `now` for [`SERVER_LIFETIME`], with a fresh P-256 key.
    pub fn issue_server(
        &self,
        sans: &[String],
        now: SystemTime,
        serial: Serial,
    ) -> Result<Leaf, AuthorityError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
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
        dn.push(DnType::CommonName, "Lease Manager API");
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = whole_seconds(now - Duration::from_secs(3600))?.into();
        params.not_after = whole_seconds(now + SERVER_LIFETIME)?.into();
        params.serial_number = Some(serial.to_rcgen());
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            chain: vec![cert.der().clone(), self.cert_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// Issues a client certificate for `identity` with a key generated here (tenants and
    /// operators; the caller hands out `key_pem` once).
    pub fn issue_client(
        &self,
        identity: &Identity,
        now: SystemTime,
        not_after: SystemTime,
        serial: Serial,
    ) -> Result<ClientCredential, AuthorityError> {
        let (params, not_after) = self.client_params(identity, now, not_after, &serial)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ClientCredential {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial_hex: serial.to_hex(),
            not_after,
        })
    }

    /// Issues a client certificate for the key of a verified CSR (agents). The CSR's subject
    /// and requested extensions are ignored: every field comes from `identity` and the
    /// arguments.
    pub fn issue_for_csr(
        &self,
        csr: &VerifiedCsr,
        identity: &Identity,
        now: SystemTime,
        not_after: SystemTime,
        serial: Serial,
    ) -> Result<IssuedCert, AuthorityError> {
        let (params, not_after) = self.client_params(identity, now, not_after, &serial)?;
        let cert = params.signed_by(csr, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            serial_hex: serial.to_hex(),
            not_after,
        })
    }

    /// The fields of every client certificate: CN, the identity URI as the only SAN, EKU
    /// clientAuth, key usage digitalSignature, authority key identifier.
    fn client_params(
        &self,
        identity: &Identity,
        now: SystemTime,
        not_after: SystemTime,
        serial: &Serial,
    ) -> Result<(CertificateParams, SystemTime), AuthorityError> {
        let now = whole_seconds(now)?;
        let not_after = whole_seconds(not_after)?;
        if not_after <= now {
            return Err(AuthorityError::NotAfterInPast {
                not_after_unix: unix(not_after),
                now_unix: unix(now),
            });
        }
        if not_after > self.not_after {
            return Err(AuthorityError::NotAfterBeyondCa {
                not_after_unix: unix(not_after),
                ca_not_after_unix: unix(self.not_after),
            });
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, identity.common_name());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(identity.uri().try_into()?)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now
            .checked_sub(CLIENT_BACKDATE)
            .unwrap_or(UNIX_EPOCH)
            .into();
        params.not_after = not_after.into();
        params.serial_number = Some(serial.to_rcgen());
        Ok((params, not_after))
    }
}

#[cfg(test)]
#[path = "authority_tests.rs"]
mod tests;
