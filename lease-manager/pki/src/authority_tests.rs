use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

use rustls::pki_types::pem::PemObject;

use rcgen::PublicKeyData;

use super::*;
use crate::{generate_key, make_csr, verify_csr};

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

const NOW: u64 = 1_800_000_000;

fn ca() -> (Authority, String) {
    Authority::generate(at(NOW), 0x1234u64.into()).unwrap()
}

#[test]
fn generated_ca_has_the_documented_fields() {
    let (ca, key_pem) = ca();
    assert!(key_pem.contains("PRIVATE KEY"));
    assert!(!ca.cert_pem().contains("PRIVATE"));
    let (_, x) = X509Certificate::from_der(ca.cert_der()).unwrap();
    assert_eq!(
        x.subject().to_string(),
        "CN=Lease Manager CA, O=lease-appliance"
    );
    let bc = x.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let ku = x.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign() && ku.digital_signature());
    assert_eq!(x.raw_serial(), [0x12, 0x34]);
    assert_eq!(
        x.validity().not_after.timestamp() as u64,
        NOW + CA_LIFETIME.as_secs()
    );
    assert_eq!(ca.not_after(), at(NOW) + CA_LIFETIME);
}

#[test]
fn from_pem_refuses_mismatched_keys_and_non_cas() {
    let (a, a_key) = ca();
    let (b, b_key) = ca();
    assert!(Authority::from_pem(a.cert_pem(), &a_key).is_ok());
    let err = Authority::from_pem(a.cert_pem(), &b_key).unwrap_err();
    assert!(matches!(err, AuthorityError::KeyMismatch), "{err}");
    // A leaf is not a CA, even with its own key.
    let cred = b
        .issue_client(
            &"urn:lease-appliance:tenant:t".parse().unwrap(),
            at(NOW),
            at(NOW + 3600),
            1u64.into(),
        )
        .unwrap();
    let err = Authority::from_pem(&cred.cert_pem, &cred.key_pem).unwrap_err();
    assert!(err.to_string().contains("CA:TRUE"), "{err}");
    assert!(matches!(
        Authority::from_pem("garbage", &a_key),
        Err(AuthorityError::NotCa { .. })
    ));
    assert!(matches!(
        Authority::from_pem(a.cert_pem(), "garbage"),
        Err(AuthorityError::Key(_))
    ));
    assert!(matches!(
        Authority::from_pem(a.cert_pem(), a.cert_pem()),
        Err(AuthorityError::Key(_))
    ));
}

fn parsed(der: &[u8]) -> X509Certificate<'_> {
    let (rest, x) = X509Certificate::from_der(der).unwrap();
    assert!(rest.is_empty());
    x
}

fn assert_client_fields(der: &[u8], uri: &str, cn: &str, serial: &[u8], not_after: u64) {
    let x = parsed(der);
    assert_eq!(x.subject().to_string(), format!("CN={cn}"));
    assert_eq!(x.raw_serial(), serial);
    assert_eq!(
        x.validity().not_before.timestamp() as u64,
        NOW - CLIENT_BACKDATE.as_secs()
    );
    assert_eq!(x.validity().not_after.timestamp() as u64, not_after);
    let eku = x.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth && !eku.any);
    let ku = x.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());
    assert!(!x.is_ca());
    let san = x.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(
        san.general_names,
        vec![x509_parser::extensions::GeneralName::URI(uri)]
    );
    assert!(x.extensions().iter().any(|e| matches!(
        e.parsed_extension(),
        ParsedExtension::AuthorityKeyIdentifier(_)
    )));
}

#[test]
fn client_certificate_fields() {
    let (ca, _) = ca();
    let id: Identity = "urn:lease-appliance:tenant:acme".parse().unwrap();
    let not_after = at(NOW + 365 * 24 * 3600);
    let cred = ca
        .issue_client(&id, at(NOW), not_after, [0xab; 16].into())
        .unwrap();
    assert_eq!(cred.not_after, not_after);
    assert_eq!(cred.serial_hex, "ab".repeat(16));
    assert!(!format!("{cred:?}").contains("PRIVATE"));
    let der = CertificateDer::from_pem_slice(cred.cert_pem.as_bytes()).unwrap();
    assert_client_fields(
        &der,
        &id.uri(),
        "tenant acme",
        // The top bit is set: DER adds a zero byte to keep the integer positive.
        &[&[0u8][..], &[0xab; 16]].concat(),
        NOW + 365 * 24 * 3600,
    );
    // The key is a P-256 key matching the certificate.
    let key = KeyPair::from_pem(&cred.key_pem).unwrap();
    assert_eq!(
        parsed(&der).public_key().raw,
        key.subject_public_key_info().as_slice()
    );
}

#[test]
fn csr_certificate_takes_nothing_from_the_csr_but_its_key() {
    let (ca, _) = ca();
    let key = generate_key().unwrap();
    // A CSR asking for a CA certificate with a DNS name and server auth.
    let mut params = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
        .distinguished_name
        .push(DnType::CommonName, "Lease Manager CA");
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let csr = verify_csr(pem.as_bytes()).unwrap();
    let id: Identity = "urn:lease-appliance:agent:l-0123456789abcdef:vm1"
        .parse()
        .unwrap();
    let not_after = at(NOW + 7200);
    let issued = ca
        .issue_for_csr(&csr, &id, at(NOW), not_after, 0x7fu64.into())
        .unwrap();
    assert_eq!(issued.not_after, not_after);
    assert_eq!(issued.serial_hex, "7f");
    assert_client_fields(
        &issued.cert_der,
        &id.uri(),
        "agent vm1 for l-0123456789abcdef",
        &[0x7f],
        NOW + 7200,
    );
    assert_eq!(
        parsed(&issued.cert_der).public_key().raw,
        key.subject_public_key_info().as_slice()
    );
    let pem_der = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
    assert_eq!(pem_der, issued.cert_der);
    // Sub-second parts of not_after are cut to what X.509 can say.
    let issued = ca
        .issue_for_csr(
            &csr,
            &id,
            at(NOW),
            not_after + Duration::from_millis(999),
            1u64.into(),
        )
        .unwrap();
    assert_eq!(issued.not_after, not_after);
    // An Ed25519 CSR gets an Ed25519 certificate.
    let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let csr = verify_csr(make_csr(&ed, "x").unwrap().as_bytes()).unwrap();
    let issued = ca
        .issue_for_csr(&csr, &id, at(NOW), not_after, 2u64.into())
        .unwrap();
    assert_eq!(
        parsed(&issued.cert_der).public_key().raw,
        ed.subject_public_key_info().as_slice()
    );
}

#[test]
fn lifetimes_outside_now_and_the_ca_are_refused() {
    let (ca, _) = ca();
    let id: Identity = "urn:lease-appliance:operator:o".parse().unwrap();
    for not_after in [at(NOW), at(NOW - 1), at(0)] {
        let err = ca
            .issue_client(&id, at(NOW), not_after, 1u64.into())
            .unwrap_err();
        assert!(
            matches!(err, AuthorityError::NotAfterInPast { .. }),
            "{err}"
        );
    }
    let err = ca
        .issue_client(
            &id,
            at(NOW),
            ca.not_after() + Duration::from_secs(1),
            1u64.into(),
        )
        .unwrap_err();
    assert!(
        matches!(err, AuthorityError::NotAfterBeyondCa { .. }),
        "{err}"
    );
    assert!(
        ca.issue_client(&id, at(NOW), ca.not_after(), 1u64.into())
            .is_ok()
    );
}

#[test]
fn server_certificate_names() {
    let (ca, _) = ca();
    let leaf = ca
        .issue_server(
            &["10.77.0.1".into(), "lm.example".into()],
            at(NOW),
            5u64.into(),
        )
        .unwrap();
    assert_eq!(leaf.chain.len(), 2);
    assert_eq!(&leaf.chain[1], ca.cert_der());
    let x = parsed(&leaf.chain[0]);
    assert!(x.extended_key_usage().unwrap().unwrap().value.server_auth);
    assert!(
        ca.issue_server(&["bad name\0".into()], at(NOW), 5u64.into())
            .is_err()
    );
}
