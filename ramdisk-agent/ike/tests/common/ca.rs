//! A test PKI made with rcgen: a CA (P-256 or Ed25519, self-signed) and the end-entity
//! certificates (P-256 or Ed25519) it signs, as charon (x509/, x509ca/, private/) and agent-ike (DER, PKCS#8) load them.
//! Shared by agent-ike's and agent-ipsec's strongSwan interop tests (`#[path]` include).

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A CA and what it signs.
pub struct Ca {
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(cn: &str) -> Ca {
        Ca::new_alg(cn, &rcgen::PKCS_ECDSA_P256_SHA256)
    }

    /// A CA whose key (and so whose certificate signatures) is of `alg`, e.g. Ed25519.
    pub fn new_alg(cn: &str, alg: &'static rcgen::SignatureAlgorithm) -> Ca {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "ike interop");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An end-entity P-256 certificate: (DER, PEM, PKCS#8 DER, key PEM).
    pub fn issue(&self, cn: &str, san: &str) -> (Vec<u8>, String, Vec<u8>, String) {
        self.issue_alg(cn, san, &rcgen::PKCS_ECDSA_P256_SHA256)
    }

    /// An end-entity certificate with a key of `alg` (e.g. Ed25519), like [`Ca::issue`].
    pub fn issue_alg(
        &self,
        cn: &str,
        san: &str,
        alg: &'static rcgen::SignatureAlgorithm,
    ) -> (Vec<u8>, String, Vec<u8>, String) {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::new(vec![san.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "ike interop");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (
            cert.der().to_vec(),
            cert.pem(),
            key.serialize_der(),
            key.serialize_pem(),
        )
    }
}
