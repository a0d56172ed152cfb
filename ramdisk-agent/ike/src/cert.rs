//! Certificates in IKE_AUTH: our own (the LM-signed agent certificate and its P-256 key) and
//! the responder's, checked by pin (SHA-256 of its DER, like the WireGuard gateway's key) or
//! by a signature of the given CA. Parsed with `x509-parser`; time is an argument.

use std::time::SystemTime;

use ring::digest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::{ASN1Time, FromDer, GeneralName, X509Certificate, X509Name};

use crate::consts::id;
use crate::payload::Identity;
use crate::signature::{KeyError, PublicKey, SigningKey};

/// How the responder's certificate is trusted.
#[derive(Clone, PartialEq, Eq)]
pub enum PeerTrust {
    /// Exactly this certificate: SHA-256 of its DER.
    Pin([u8; 32]),
    /// Any certificate signed directly by this CA (DER), valid at the time of the check.
    Ca(Vec<u8>),
}

impl std::fmt::Debug for PeerTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerTrust::Pin(p) => write!(f, "Pin({})", hex(p)),
            PeerTrust::Ca(der) => write!(f, "Ca(sha256 {})", hex(&sha256(der))),
        }
    }
}

/// Why a certificate (ours or the responder's) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("{which} certificate is not DER X.509 (or has trailing bytes)")]
    Parse { which: &'static str },
    #[error("the responder's certificate (sha256 {got}) is not the pinned one ({want})")]
    NotPinned { got: String, want: String },
    #[error("the responder's certificate was not issued by the trusted CA (issuer '{issuer}')")]
    WrongIssuer { issuer: String },
    #[error("the responder's certificate signature does not verify with the CA's key")]
    BadCaSignature,
    #[error(
        "{which} certificate is not valid now (not before {not_before}, not after {not_after})"
    )]
    Expired {
        which: &'static str,
        not_before: String,
        not_after: String,
    },
    #[error(
        "{which} certificate has a key of an unsupported type (need ECDSA P-256, RSA or Ed25519)"
    )]
    UnsupportedKey { which: &'static str },
    #[error("the agent key does not belong to the agent certificate")]
    KeyMismatch,
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("the time is before 1970 or not representable")]
    Clock,
}

/// What IKE_AUTH uses of an accepted responder certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    pub der: Vec<u8>,
    pub key: PublicKey,
    /// The subject DN as DER (what an ID_DER_ASN1_DN identity must equal).
    pub subject: Vec<u8>,
    pub dns_names: Vec<String>,
    pub emails: Vec<String>,
}

impl PeerCert {
    /// Whether an IDr payload names this certificate's subject or one of its
    /// subjectAltNames (RFC 7296 3.5; RFC 4945 3.1).
    pub fn matches(&self, ident: &Identity) -> bool {
        let text = std::str::from_utf8(&ident.data).ok();
        match ident.id_type {
            id::DER_ASN1_DN => dn_equal(&ident.data, &self.subject),
            id::FQDN => {
                text.is_some_and(|t| self.dns_names.iter().any(|n| n.eq_ignore_ascii_case(t)))
            }
            id::RFC822_ADDR => {
                text.is_some_and(|t| self.emails.iter().any(|n| n.eq_ignore_ascii_case(t)))
            }
            _ => false,
        }
    }
}

/// Whether two DER distinguished names are the same name: byte-equal, or the same RDNs with
/// the same attribute types and string values in another string type. strongSwan encodes a
/// configured `id = "CN=..."` as PrintableString where it can, while rcgen (the LM's and the
/// gateway's certificates) writes UTF8String; strongSwan matches the two, so must we.
/// Values that are not strings must be byte-equal; nothing is case-folded.
pub fn dn_equal(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    let (Ok((&[], na)), Ok((&[], nb))) = (X509Name::from_der(a), X509Name::from_der(b)) else {
        return false;
    };
    let (ra, rb): (Vec<_>, Vec<_>) = (na.iter().collect(), nb.iter().collect());
    ra.len() == rb.len()
        && ra.iter().zip(&rb).all(|(x, y)| {
            let (ax, ay): (Vec<_>, Vec<_>) = (x.iter().collect(), y.iter().collect());
            ax.len() == ay.len()
                && ax.iter().zip(&ay).all(|(p, q)| {
                    p.attr_type() == q.attr_type()
                        && match (p.as_str(), q.as_str()) {
                            (Ok(s), Ok(t)) => s == t,
                            _ => {
                                p.attr_value().tag() == q.attr_value().tag()
                                    && p.attr_value().data == q.attr_value().data
                            }
                        }
                })
        })
}

pub fn sha256(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, b).as_ref());
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn parse<'a>(der: &'a [u8], which: &'static str) -> Result<X509Certificate<'a>, CertError> {
    match X509Certificate::from_der(der) {
        Ok((&[], c)) => Ok(c),
        _ => Err(CertError::Parse { which }),
    }
}

fn check_validity(
    c: &X509Certificate<'_>,
    which: &'static str,
    now: SystemTime,
) -> Result<(), CertError> {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| CertError::Clock)?
        .as_secs();
    let t = ASN1Time::from_timestamp(i64::try_from(secs).map_err(|_| CertError::Clock)?)
        .map_err(|_| CertError::Clock)?;
    if c.validity().is_valid_at(t) {
        Ok(())
    } else {
        Err(CertError::Expired {
            which,
            not_before: c.validity().not_before.to_string(),
            not_after: c.validity().not_after.to_string(),
        })
    }
}

fn public_key(c: &X509Certificate<'_>, which: &'static str) -> Result<PublicKey, CertError> {
    let spki = c.public_key();
    let alg = &spki.algorithm;
    let bits = spki.subject_public_key.data.to_vec();
    if alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = alg.parameters.as_ref().and_then(|p| p.as_oid().ok());
        if curve.as_ref() == Some(&OID_EC_P256) && bits.len() == 65 && bits[0] == 4 {
            return Ok(PublicKey::EcdsaP256(bits));
        }
    } else if alg.algorithm == OID_PKCS1_RSAENCRYPTION {
        return Ok(PublicKey::Rsa(bits));
    } else if alg.algorithm == OID_SIG_ED25519 && alg.parameters.is_none() && bits.len() == 32 {
        // id-Ed25519 names the key type and the signature (RFC 8410 3): no parameters.
        return Ok(PublicKey::Ed25519(bits));
    }
    Err(CertError::UnsupportedKey { which })
}

/// Checks the responder's certificate against `trust` at `now`.
pub fn check_peer(der: &[u8], trust: &PeerTrust, now: SystemTime) -> Result<PeerCert, CertError> {
    let which = "the responder's";
    let c = parse(der, which)?;
    match trust {
        PeerTrust::Pin(want) => {
            let got = sha256(der);
            if got != *want {
                return Err(CertError::NotPinned {
                    got: hex(&got),
                    want: hex(want),
                });
            }
        }
        PeerTrust::Ca(ca_der) => {
            let ca = parse(ca_der, "the trusted CA")?;
            if c.issuer().as_raw() != ca.subject().as_raw() {
                return Err(CertError::WrongIssuer {
                    issuer: c.issuer().to_string(),
                });
            }
            c.verify_signature(Some(ca.public_key()))
                .map_err(|_| CertError::BadCaSignature)?;
            check_validity(&ca, "the trusted CA", now)?;
        }
    }
    check_validity(&c, which, now)?;
    let key = public_key(&c, which)?;
    let (mut dns_names, mut emails) = (Vec::new(), Vec::new());
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => dns_names.push((*d).to_string()),
                GeneralName::RFC822Name(e) => emails.push((*e).to_string()),
                _ => {}
            }
        }
    }
    Ok(PeerCert {
        der: der.to_vec(),
        key,
        subject: c.subject().as_raw().to_vec(),
        dns_names,
        emails,
    })
}

/// The SHA-1 hash of the CA's SubjectPublicKeyInfo, the CERTREQ data naming it (RFC 7296 3.7).
pub fn certreq_hash(ca_der: &[u8]) -> Result<Vec<u8>, CertError> {
    let ca = parse(ca_der, "the trusted CA")?;
    let d = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, ca.public_key().raw);
    Ok(d.as_ref().to_vec())
}

/// Our certificate and key: the identity (the subject DN) and the signer of AUTH.
#[derive(Debug)]
pub struct LocalCredential {
    cert: Vec<u8>,
    subject: Vec<u8>,
    key: SigningKey,
}

impl LocalCredential {
    /// `cert_der` is the LM-signed agent certificate, `key_pkcs8` its P-256 key; the key must
    /// be the certificate's.
    pub fn new(cert_der: &[u8], key_pkcs8: &[u8]) -> Result<LocalCredential, CertError> {
        let which = "the agent's";
        let c = parse(cert_der, which)?;
        let key = SigningKey::from_pkcs8(key_pkcs8)?;
        match public_key(&c, which)? {
            PublicKey::EcdsaP256(p) if p == key.public_key() => {}
            PublicKey::EcdsaP256(_) => return Err(CertError::KeyMismatch),
            PublicKey::Rsa(_) | PublicKey::Ed25519(_) => {
                return Err(CertError::UnsupportedKey { which });
            }
        }
        Ok(LocalCredential {
            cert: cert_der.to_vec(),
            subject: c.subject().as_raw().to_vec(),
            key,
        })
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert
    }

    /// IDi: ID_DER_ASN1_DN with the certificate's subject (strongSwan matches it directly).
    pub fn identity(&self) -> Identity {
        Identity {
            id_type: id::DER_ASN1_DN,
            data: self.subject.clone(),
        }
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }
}
