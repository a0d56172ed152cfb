//! Test certificates made with rcgen: CAs and end-entity certificates with their keys (P-256
//! by default, or another algorithm such as Ed25519).

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

pub struct Ca {
    pub der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

/// An end-entity certificate and its key (PKCS#8 DER).
pub struct Leaf {
    pub der: Vec<u8>,
    pub pkcs8: Vec<u8>,
}

fn name(params: &mut CertificateParams, cn: &str) {
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "agent-ike tests");
}

impl Ca {
    pub fn new(cn: &str) -> Ca {
        Ca::new_alg(cn, &rcgen::PKCS_ECDSA_P256_SHA256)
    }

    #[allow(dead_code)]
    pub fn new_alg(cn: &str, alg: &'static rcgen::SignatureAlgorithm) -> Ca {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::default();
        name(&mut params, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    pub fn issue(&self, cn: &str, dns: &str) -> Leaf {
        self.issue_with(cn, dns, |_| {})
    }

    pub fn issue_with(&self, cn: &str, dns: &str, f: impl FnOnce(&mut CertificateParams)) -> Leaf {
        self.issue_alg(cn, dns, &rcgen::PKCS_ECDSA_P256_SHA256, f)
    }

    pub fn issue_alg(
        &self,
        cn: &str,
        dns: &str,
        alg: &'static rcgen::SignatureAlgorithm,
        f: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::new(vec![dns.to_string()]).unwrap();
        name(&mut params, cn);
        f(&mut params);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            der: cert.der().to_vec(),
            pkcs8: key.serialize_der(),
        }
    }
}
