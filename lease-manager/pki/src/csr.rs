//! Certificate signing requests (PKCS #10, RFC 2986): made by the agent, checked by the LM.
//!
//! [`verify_csr`] is the LM's gate for CSRs from the network. It proves possession of the key
//! (the request's signature is verified with the request's own public key, via x509-parser's
//! ring backend) and accepts only ECDSA P-256 (with SHA-256) and Ed25519 keys. Everything else
//! in the request (subject, requested extensions, attributes) is ignored: the LM decides every
//! field of the certificate it issues.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateSigningRequestDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;

/// Largest CSR accepted, PEM or DER. A P-256 CSR is about 250 bytes DER, 400 PEM.
pub const MAX_CSR_LEN: usize = 8 * 1024;

/// The key algorithms the LM certifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    EcdsaP256,
    Ed25519,
}

/// A CSR whose signature was verified with its own key: the key is held by the requester.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedCsr {
    algorithm: KeyAlgorithm,
    /// The subjectPublicKey bits (uncompressed point for P-256, 32 bytes for Ed25519).
    key: Vec<u8>,
}

/// Why a CSR was refused, or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    #[error("CSR of {len} bytes is larger than {MAX_CSR_LEN}; send one PKCS #10 request")]
    TooLarge { len: usize },
    #[error("the CSR is empty; send a PKCS #10 request, PEM or DER")]
    Empty,
    #[error("no `-----BEGIN CERTIFICATE REQUEST-----` block in the PEM input: {detail}")]
    Pem { detail: String },
    #[error("not a PKCS #10 certificate signing request (DER): {detail}")]
    NotACsr { detail: String },
    #[error("{len} bytes follow the CSR; send exactly one request")]
    TrailingBytes { len: usize },
    #[error("CSR version {version} is not supported; PKCS #10 requests are version 1 (0)")]
    Version { version: u32 },
    #[error(
        "CSR key algorithm {algorithm} is not accepted; generate an ECDSA P-256 or Ed25519 key"
    )]
    UnsupportedKey { algorithm: String },
    #[error("CSR public key is malformed ({detail}); regenerate the key and the request")]
    BadKey { detail: &'static str },
    #[error(
        "CSR signature algorithm {algorithm} does not match its {key:?} key; sign P-256 requests with ecdsa-with-SHA256, Ed25519 ones with Ed25519"
    )]
    SignatureAlgorithm {
        algorithm: String,
        key: KeyAlgorithm,
    },
    #[error(
        "CSR signature does not verify with the request's own public key (proof of possession failed); sign the request with the key it carries"
    )]
    BadSignature,
    #[error("cannot make a key or CSR: {0}")]
    Build(#[source] rcgen::Error),
}

impl VerifiedCsr {
    /// The key's algorithm.
    pub fn key_algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The DER SubjectPublicKeyInfo of the requester's key.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.subject_public_key_info()
    }
}

impl std::fmt::Debug for VerifiedCsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCsr")
            .field("algorithm", &self.algorithm)
            .field("key_len", &self.key.len())
            .finish()
    }
}

impl PublicKeyData for VerifiedCsr {
    fn der_bytes(&self) -> &[u8] {
        &self.key
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self.algorithm {
            KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

/// A fresh ECDSA P-256 key pair (ring's system RNG; rcgen takes no RNG argument).
pub fn generate_key() -> Result<KeyPair, CsrError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(CsrError::Build)
}

/// The key in the form rustls takes for client authentication.
pub fn private_key_der(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

/// A PEM CSR for `key` with subject CN `common_name` (the LM ignores the subject; it is for
/// humans reading logs).
pub fn make_csr(key: &KeyPair, common_name: &str) -> Result<String, CsrError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params
        .serialize_request(key)
        .and_then(|csr| csr.pem())
        .map_err(CsrError::Build)
}

/// Parses a CSR (PEM or DER) and verifies its signature with its own key.
pub fn verify_csr(input: &[u8]) -> Result<VerifiedCsr, CsrError> {
    if input.len() > MAX_CSR_LEN {
        return Err(CsrError::TooLarge { len: input.len() });
    }
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(CsrError::Empty);
    }
    let trimmed = input.trim_ascii_start();
    if trimmed.starts_with(b"-----") {
        let der =
            CertificateSigningRequestDer::from_pem_slice(trimmed).map_err(|e| CsrError::Pem {
                detail: e.to_string(),
            })?;
        verify_der(der.as_ref())
    } else {
        verify_der(input)
    }
}

fn verify_der(der: &[u8]) -> Result<VerifiedCsr, CsrError> {
    let (rest, csr) = X509CertificationRequest::from_der(der).map_err(|e| CsrError::NotACsr {
        detail: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(CsrError::TrailingBytes { len: rest.len() });
    }
    let info = &csr.certification_request_info;
    if info.version.0 != 0 {
        return Err(CsrError::Version {
            version: info.version.0,
        });
    }
    let spki = &info.subject_pki;
    let key_oid = &spki.algorithm.algorithm;
    let key = spki.subject_public_key.data.to_vec();
    let algorithm = if *key_oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        match curve {
            Some(c) if c == OID_EC_P256 => {}
            Some(c) => {
                return Err(CsrError::UnsupportedKey {
                    algorithm: format!("EC on curve {}", oid_name(&c)),
                });
            }
            None => {
                return Err(CsrError::BadKey {
                    detail: "EC key without a named curve",
                });
            }
        }
        if key.len() != 65 || key[0] != 0x04 {
            return Err(CsrError::BadKey {
                detail: "P-256 key is not a 65-byte uncompressed point",
            });
        }
        KeyAlgorithm::EcdsaP256
    } else if *key_oid == OID_SIG_ED25519 {
        if spki.algorithm.parameters.is_some() {
            return Err(CsrError::BadKey {
                detail: "Ed25519 key with algorithm parameters",
            });
        }
        if key.len() != 32 {
            return Err(CsrError::BadKey {
                detail: "Ed25519 key is not 32 bytes",
            });
        }
        KeyAlgorithm::Ed25519
    } else {
        return Err(CsrError::UnsupportedKey {
            algorithm: oid_name(key_oid),
        });
    };
    if spki.subject_public_key.unused_bits != 0 {
        return Err(CsrError::BadKey {
            detail: "public key BIT STRING has unused bits",
        });
    }
    let sig_oid = &csr.signature_algorithm.algorithm;
    let expected = match algorithm {
        KeyAlgorithm::EcdsaP256 => OID_SIG_ECDSA_WITH_SHA256,
        KeyAlgorithm::Ed25519 => OID_SIG_ED25519,
    };
    let params_ok = match algorithm {
        // RFC 5758 3.2 and RFC 8410 3: the parameters are absent.
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::Ed25519 => {
            csr.signature_algorithm.parameters.is_none()
        }
    };
    if *sig_oid != expected || !params_ok {
        return Err(CsrError::SignatureAlgorithm {
            algorithm: oid_name(sig_oid),
            key: algorithm,
        });
    }
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;
    Ok(VerifiedCsr { algorithm, key })
}

fn oid_name(oid: &x509_parser::oid_registry::Oid<'_>) -> String {
    let id = oid.to_id_string();
    let name = match id.as_str() {
        "1.2.840.113549.1.1.1" => "RSA",
        "1.2.840.10040.4.1" => "DSA",
        "1.3.101.110" => "X25519",
        "1.3.101.111" => "X448",
        "1.3.101.113" => "Ed448",
        "1.3.132.0.34" => "P-384",
        "1.3.132.0.35" => "P-521",
        "1.3.132.0.10" => "secp256k1",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        _ => return id,
    };
    format!("{name} ({id})")
}

#[cfg(test)]
#[path = "csr_tests.rs"]
mod tests;
