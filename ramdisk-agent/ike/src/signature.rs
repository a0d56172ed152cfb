//! AUTH payload data for certificate authentication: RFC 7427 Digital Signature (method 14;
//! ECDSA P-256 with SHA-256, RSA PKCS#1 with SHA-256, and Ed25519 over the signed octets
//! themselves, RFC 8420) and, for a responder that announces no SIGNATURE_HASH_ALGORITHMS, RFC 4754 ECDSA with
//! SHA-256 on P-256 (method 9). Signing and verification through ring. Pure apart from the
//! system randomness ring's ECDSA signing needs.
//!
//! ```text
//!  method 14 data:  ASN.1 length (1) | AlgorithmIdentifier (DER) | signature value
//!                   ecdsa-with-SHA256: 30 0a 06 08 2a 86 48 ce 3d 04 03 02, value = DER (r, s)
//!                   id-Ed25519:        30 05 06 03 2b 65 70, value = R | S (64), no pre-hash
//!  method 9 data:   r (32) | s (32)
//! ```

use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, KeyPair as _};

use crate::consts::auth;

/// AlgorithmIdentifier of ecdsa-with-SHA256 (RFC 7427 A.3.1).
pub const ALG_ECDSA_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
/// AlgorithmIdentifier of sha256WithRSAEncryption (RFC 7427 A.1.2).
pub const ALG_RSA_PKCS1_SHA256: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];

/// AlgorithmIdentifier of id-Ed25519 with absent parameters (RFC 8420 3, RFC 8410 3).
pub const ALG_ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

/// A peer's public key, from its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// A P-256 point, SEC1 uncompressed (65 bytes).
    EcdsaP256(Vec<u8>),
    /// An RSA key as the RSAPublicKey DER of its SubjectPublicKeyInfo.
    Rsa(Vec<u8>),
    /// An Ed25519 key (32 bytes, RFC 8410).
    Ed25519(Vec<u8>),
}

impl PublicKey {
    /// The key type, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            PublicKey::EcdsaP256(_) => "ECDSA P-256",
            PublicKey::Rsa(_) => "RSA",
            PublicKey::Ed25519(_) => "Ed25519",
        }
    }
}

/// Why an AUTH payload did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("AUTH method {0} is not supported (only 14, RFC 7427, and 9, RFC 4754)")]
    UnsupportedMethod(u8),
    #[error("AUTH data is malformed: {0}")]
    Malformed(&'static str),
    #[error(
        "signature algorithm {0} is not supported (ecdsa-with-SHA256, sha256WithRSAEncryption or Ed25519)"
    )]
    UnsupportedAlgorithm(String),
    #[error("the signature algorithm does not fit the certificate's {key} key")]
    KeyMismatch { key: &'static str },
    #[error("the AUTH signature does not verify with the peer's certificate key")]
    BadSignature,
}

/// Checks `data` of an AUTH payload with `method` over `octets` with `key`.
pub fn verify(
    method: u8,
    data: &[u8],
    key: &PublicKey,
    octets: &[u8],
) -> Result<(), SignatureError> {
    let (alg, value): (&'static dyn sig::VerificationAlgorithm, &[u8]) = match method {
        auth::DIGITAL_SIGNATURE => {
            let (&len, rest) = data
                .split_first()
                .ok_or(SignatureError::Malformed("empty"))?;
            let len = usize::from(len);
            if rest.len() < len {
                return Err(SignatureError::Malformed(
                    "AlgorithmIdentifier longer than the data",
                ));
            }
            let (alg_id, value) = rest.split_at(len);
            let alg: &'static dyn sig::VerificationAlgorithm = match (alg_id, key) {
                (ALG_ECDSA_SHA256, PublicKey::EcdsaP256(_)) => &sig::ECDSA_P256_SHA256_ASN1,
                (ALG_RSA_PKCS1_SHA256, PublicKey::Rsa(_)) => &sig::RSA_PKCS1_2048_8192_SHA256,
                (ALG_ED25519, PublicKey::Ed25519(_)) => &sig::ED25519,
                (ALG_ECDSA_SHA256 | ALG_RSA_PKCS1_SHA256 | ALG_ED25519, k) => {
                    return Err(SignatureError::KeyMismatch { key: k.kind() });
                }
                (other, _) => return Err(SignatureError::UnsupportedAlgorithm(hex(other))),
            };
            (alg, value)
        }
        auth::ECDSA_SHA256_P256 => match key {
            PublicKey::EcdsaP256(_) => (&sig::ECDSA_P256_SHA256_FIXED, data),
            k => return Err(SignatureError::KeyMismatch { key: k.kind() }),
        },
        other => return Err(SignatureError::UnsupportedMethod(other)),
    };
    if value.is_empty() {
        return Err(SignatureError::Malformed("no signature value"));
    }
    let key_bytes = match key {
        PublicKey::EcdsaP256(k) | PublicKey::Rsa(k) | PublicKey::Ed25519(k) => k,
    };
    sig::UnparsedPublicKey::new(alg, key_bytes)
        .verify(octets, value)
        .map_err(|_| SignatureError::BadSignature)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Why our own signing key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the agent key is not a PKCS#8 ECDSA P-256 key ring accepts")]
    NotP256Pkcs8,
    #[error("ECDSA signing failed (system randomness)")]
    Sign,
}

/// Our ECDSA P-256 signing key (the agent's key from the LM), as PKCS#8.
pub struct SigningKey {
    asn1: EcdsaKeyPair,
    fixed: EcdsaKeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(P-256, redacted)")
    }
}

impl SigningKey {
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<SigningKey, KeyError> {
        let rng = SystemRandom::new();
        let load =
            |alg| EcdsaKeyPair::from_pkcs8(alg, pkcs8, &rng).map_err(|_| KeyError::NotP256Pkcs8);
        Ok(SigningKey {
            asn1: load(&sig::ECDSA_P256_SHA256_ASN1_SIGNING)?,
            fixed: load(&sig::ECDSA_P256_SHA256_FIXED_SIGNING)?,
        })
    }

    /// The public point, SEC1 uncompressed (65 bytes).
    pub fn public_key(&self) -> &[u8] {
        self.asn1.public_key().as_ref()
    }

    /// The AUTH payload (method, data) over `octets`: method 14 with ecdsa-with-SHA256 if the
    /// peer announced SHA2-256 (RFC 7427 4), else method 9.
    pub fn auth(&self, octets: &[u8], peer_hashes: &[u16]) -> Result<(u8, Vec<u8>), KeyError> {
        let rng = SystemRandom::new();
        if peer_hashes.contains(&crate::consts::hash::SHA2_256) {
            let s = self.asn1.sign(&rng, octets).map_err(|_| KeyError::Sign)?;
            Ok((auth::DIGITAL_SIGNATURE, digital_signature_data(s.as_ref())))
        } else {
            let s = self.fixed.sign(&rng, octets).map_err(|_| KeyError::Sign)?;
            Ok((auth::ECDSA_SHA256_P256, s.as_ref().to_vec()))
        }
    }
}

/// Method 14 data for an ecdsa-with-SHA256 signature value (DER).
pub fn digital_signature_data(value: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(1 + ALG_ECDSA_SHA256.len() + value.len());
    d.push(ALG_ECDSA_SHA256.len() as u8);
    d.extend_from_slice(ALG_ECDSA_SHA256);
    d.extend_from_slice(value);
    d
}
