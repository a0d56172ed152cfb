use proptest::prelude::*;
use rcgen::{CertificateParams, PublicKeyData};

use super::*;

const RSA_CSR: &str = include_str!("../testdata/rsa2048.csr.pem");
const P384_CSR: &str = include_str!("../testdata/p384.csr.pem");
/// `openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=openssl-p256`
const OPENSSL_P256_CSR: &str = include_str!("../testdata/p256-openssl.csr.pem");

fn der_of(pem: &str) -> Vec<u8> {
    CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec()
}

fn valid() -> (KeyPair, String) {
    let key = generate_key().unwrap();
    let pem = make_csr(&key, "agent vm1").unwrap();
    (key, pem)
}

#[test]
fn valid_csrs_are_accepted_pem_and_der() {
    let (key, pem) = valid();
    let csr = verify_csr(pem.as_bytes()).unwrap();
    assert_eq!(csr.key_algorithm(), KeyAlgorithm::EcdsaP256);
    assert_eq!(csr.public_key_der(), key.subject_public_key_info());
    assert_eq!(verify_csr(&der_of(&pem)).unwrap(), csr);
    // Leading whitespace before the PEM block is fine.
    assert!(verify_csr(format!("\n  {pem}").as_bytes()).is_ok());

    let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let csr = verify_csr(make_csr(&ed, "x").unwrap().as_bytes()).unwrap();
    assert_eq!(csr.key_algorithm(), KeyAlgorithm::Ed25519);
    assert_eq!(csr.public_key_der(), ed.subject_public_key_info());

    let csr = verify_csr(OPENSSL_P256_CSR.as_bytes()).unwrap();
    assert_eq!(csr.key_algorithm(), KeyAlgorithm::EcdsaP256);
}

#[test]
fn rcgen_from_der_also_verifies_but_refuses_unknown_extensions() {
    // Documented finding: rcgen's CertificateSigningRequestParams::from_der verifies the
    // signature (x509-parser `verify`), so either check proves possession; verify_csr keeps
    // its own for the key-algorithm policy and to ignore requested extensions.
    let (_, pem) = valid();
    let mut der = der_of(&pem);
    assert!(rcgen::CertificateSigningRequestParams::from_der(&der.clone().into()).is_ok());
    let last = der.len() - 1;
    der[last] ^= 1;
    assert!(rcgen::CertificateSigningRequestParams::from_der(&der.into()).is_err());
}

#[test]
fn flipped_signature_byte_is_refused() {
    let (_, pem) = valid();
    let der = der_of(&pem);
    // The last bytes are the signature's `s` integer.
    for back in 1..=8 {
        let mut d = der.clone();
        let i = d.len() - back;
        d[i] ^= 0x01;
        let err = verify_csr(&d).unwrap_err();
        assert!(matches!(err, CsrError::BadSignature), "{back}: {err}");
        assert!(err.to_string().contains("proof of possession"));
    }
}

#[test]
fn swapped_public_key_is_refused() {
    let (a, pem) = valid();
    let b = generate_key().unwrap();
    let der = der_of(&pem);
    let (a_spki, b_spki) = (a.subject_public_key_info(), b.subject_public_key_info());
    assert_eq!(a_spki.len(), b_spki.len());
    let at = der
        .windows(a_spki.len())
        .position(|w| w == a_spki.as_slice())
        .expect("the CSR holds key A");
    let mut swapped = der.clone();
    swapped[at..at + b_spki.len()].copy_from_slice(&b_spki);
    assert!(matches!(verify_csr(&swapped), Err(CsrError::BadSignature)));
}

#[test]
fn other_key_algorithms_are_refused() {
    let err = verify_csr(RSA_CSR.as_bytes()).unwrap_err();
    assert!(matches!(err, CsrError::UnsupportedKey { .. }), "{err}");
    assert!(err.to_string().contains("RSA"), "{err}");
    assert!(err.to_string().contains("P-256 or Ed25519"), "{err}");

    let err = verify_csr(P384_CSR.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("P-384"), "{err}");

    // rcgen can make P-384 keys too.
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let pem = CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    assert!(matches!(
        verify_csr(pem.as_bytes()),
        Err(CsrError::UnsupportedKey { .. })
    ));
}

#[test]
fn garbage_is_refused_with_a_reason() {
    let (_, pem) = valid();
    let der = der_of(&pem);
    let mut trailing = der.clone();
    trailing.push(0);
    let huge = vec![b'A'; MAX_CSR_LEN + 1];
    let cert_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let cases: Vec<(&[u8], &str)> = vec![
        (b"", "empty"),
        (b"  \n", "whitespace"),
        (b"hello", "text"),
        (&[0x30], "short DER"),
        (&[0x30, 0x80, 0, 0], "indefinite length"),
        (&trailing, "trailing byte"),
        (&huge, "huge"),
        (cert_pem.as_bytes(), "a certificate"),
        (
            b"-----BEGIN CERTIFICATE REQUEST-----\n!!!\n-----END CERTIFICATE REQUEST-----\n",
            "bad base64",
        ),
        (&der[..der.len() / 2], "truncated"),
    ];
    for (input, what) in cases {
        let err = verify_csr(input).expect_err(what);
        assert!(!err.to_string().is_empty(), "{what}");
    }
    assert!(matches!(
        verify_csr(&trailing),
        Err(CsrError::TrailingBytes { len: 1 })
    ));
    assert!(matches!(verify_csr(&huge), Err(CsrError::TooLarge { .. })));
    // The same CSR padded past the limit with PEM whitespace is too large, not parsed.
    let padded = format!("{pem}{}", "\n".repeat(MAX_CSR_LEN));
    assert!(matches!(
        verify_csr(padded.as_bytes()),
        Err(CsrError::TooLarge { .. })
    ));
}

thread_local! {
    static VALID_DER: Vec<u8> = der_of(&valid().1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..1024)) {
        let _ = verify_csr(&data);
    }

    #[test]
    fn mutated_csrs_never_panic_and_never_pass_with_a_changed_body(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let orig = VALID_DER.with(Clone::clone);
        let mut d = orig.clone();
        for (i, b) in edits {
            let i = i.index(d.len());
            d[i] = b;
        }
        if let Ok(csr) = verify_csr(&d) {
            // Only changes that keep the signed body and key (e.g. in DER length forms that
            // x509-parser tolerates, or the subject no one reads) may pass; the key never changes.
            let orig_csr = verify_csr(&orig).unwrap();
            prop_assert_eq!(csr, orig_csr);
        }
    }

    #[test]
    fn mutated_pem_never_panics(i in any::<prop::sample::Index>(), b in any::<u8>()) {
        let (_, pem) = valid();
        let mut p = pem.into_bytes();
        let i = i.index(p.len());
        p[i] = b;
        let _ = verify_csr(&p);
    }
}
