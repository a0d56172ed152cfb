//! What rustls (webpki, ring) makes of the certificates and CRLs this crate issues: the same
//! verifier the LM's HTTPS listener uses.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use rcgen::PublicKeyData;

use crate::{Authority, Identity, RevokedCert, Serial, generate_key, make_csr, verify_csr};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn ca(serial: u64) -> Authority {
    Authority::generate(SystemTime::now(), serial.into())
        .unwrap()
        .0
}

fn verifier(ca: &Authority, crls: Vec<Vec<u8>>) -> Arc<dyn ClientCertVerifier> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
        .with_crls(crls.into_iter().map(CertificateRevocationListDer::from))
        .build()
        .unwrap()
}

fn client(ca: &Authority, id: &str, serial: Serial) -> CertificateDer<'static> {
    let now = SystemTime::now();
    let cred = ca
        .issue_client(&id.parse::<Identity>().unwrap(), now, now + DAY, serial)
        .unwrap();
    CertificateDer::from_pem_slice(cred.cert_pem.as_bytes()).unwrap()
}

fn check(v: &dyn ClientCertVerifier, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    v.verify_client_cert(cert, &[], UnixTime::now()).map(|_| ())
}

#[test]
fn client_certificate_chains_to_its_ca_only() {
    let ours = ca(1);
    let theirs = ca(1);
    let v = verifier(&ours, vec![]);
    let tenant = client(&ours, "urn:lease-appliance:tenant:acme", 7u64.into());
    check(&*v, &tenant).unwrap();
    let stranger = client(&theirs, "urn:lease-appliance:tenant:acme", 7u64.into());
    // Same subject name as ours, other key: webpki finds our anchor by name, then the
    // signature fails.
    let err = check(&*v, &stranger).unwrap_err();
    assert!(err.to_string().contains("BadSignature"), "{err}");
}

#[test]
fn a_ca_loaded_from_pem_issues_what_verifies() {
    let now = SystemTime::now();
    let (ca, key_pem) = Authority::generate(now, 9u64.into()).unwrap();
    let again = Authority::from_pem(ca.cert_pem(), &key_pem).unwrap();
    let v = verifier(&ca, vec![]);
    check(
        &*v,
        &client(&again, "urn:lease-appliance:operator:root", 1u64.into()),
    )
    .unwrap();
}

#[test]
fn agent_certificate_from_a_csr_verifies_and_is_for_the_csr_key() {
    let ca = ca(1);
    let key = generate_key().unwrap();
    let csr = verify_csr(make_csr(&key, "agent vm1").unwrap().as_bytes()).unwrap();
    let id: Identity = "urn:lease-appliance:agent:l-00000000000000aa:vm1"
        .parse()
        .unwrap();
    let now = SystemTime::now();
    let issued = ca
        .issue_for_csr(&csr, &id, now, now + DAY, [3; 16].into())
        .unwrap();
    check(&*verifier(&ca, vec![]), &issued.cert_der).unwrap();
    let peer = crate::peer_cert(&issued.cert_der).unwrap();
    assert_eq!(peer.identity, id);
    // The certificate's key is the CSR's (the agent can use it with its key).
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, x509) = X509Certificate::from_der(&issued.cert_der).unwrap();
    assert_eq!(
        x509.public_key().raw,
        key.subject_public_key_info().as_slice()
    );
}

#[test]
fn crl_refuses_the_revoked_and_accepts_the_rest() {
    let ca = ca(1);
    let now = SystemTime::now();
    let revoked_serial = Serial::from([0x81; 16]);
    let revoked = client(
        &ca,
        "urn:lease-appliance:tenant:gone",
        revoked_serial.clone(),
    );
    let kept = client(&ca, "urn:lease-appliance:tenant:kept", [0x01; 16].into());
    // A u64 serial with the top bit set (encoded with a leading zero byte) revokes too.
    let high = Serial::from(0x8000_0000_0000_0001u64);
    let revoked_high = client(&ca, "urn:lease-appliance:operator:old", high.clone());
    let crl = ca
        .crl(
            &[
                RevokedCert {
                    serial: revoked_serial,
                    revoked_at: now,
                },
                RevokedCert {
                    serial: high,
                    revoked_at: now,
                },
            ],
            2,
            now,
            now + DAY,
        )
        .unwrap();
    let v = verifier(&ca, vec![crl]);
    let err = check(&*v, &revoked).unwrap_err();
    assert!(err.to_string().contains("Revoked"), "{err}");
    assert!(check(&*v, &revoked_high).is_err());
    check(&*v, &kept).unwrap();

    // An empty CRL revokes nothing.
    let empty = ca.crl(&[], 3, now, now + DAY).unwrap();
    check(&*verifier(&ca, vec![empty]), &revoked).unwrap();
}

#[test]
fn crl_of_another_ca_is_not_authoritative() {
    let ours = ca(1);
    let theirs = ca(1);
    let now = SystemTime::now();
    let cert = client(&ours, "urn:lease-appliance:tenant:acme", 5u64.into());
    let crl = theirs
        .crl(
            &[RevokedCert {
                serial: 5u64.into(),
                revoked_at: now,
            }],
            1,
            now,
            now + DAY,
        )
        .unwrap();
    // Their CRL does not cover our certificates; with no CRL of ours the status is unknown.
    assert!(check(&*verifier(&ours, vec![crl]), &cert).is_err());
}

#[test]
fn crl_parses_with_authority_key_identifier_and_number() {
    use x509_parser::prelude::FromDer;
    use x509_parser::revocation_list::CertificateRevocationList;
    let ca = ca(1);
    let now = SystemTime::now();
    let der = ca.crl(&[], 42, now, now + DAY).unwrap();
    let (rest, crl) = CertificateRevocationList::from_der(&der).unwrap();
    assert!(rest.is_empty());
    assert_eq!(crl.crl_number().map(|n| n.to_string()), Some("42".into()));
    let aki = crl.extensions().iter().any(|e| {
        matches!(
            e.parsed_extension(),
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(_)
        )
    });
    assert!(aki);
    let (_, ca_cert) = x509_parser::certificate::X509Certificate::from_der(ca.cert_der()).unwrap();
    crl.verify_signature(ca_cert.public_key()).unwrap();
    assert!(ca.crl(&[], 43, now, now).is_err());
}
