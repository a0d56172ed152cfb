//! Ed25519 responders (RFC 8420): Identity announced beside SHA2-256, AUTH method 14 with the
//! id-Ed25519 AlgorithmIdentifier over the signed octets themselves, Ed25519 certificates and
//! CA signatures in the chain; every mismatched or damaged signature refused, never a panic.
//! Our own credential stays P-256.

#[path = "support/pki.rs"]
mod pki;

use std::time::SystemTime;

use agent_ike::cert::{check_peer, sha256};
use agent_ike::consts::{auth, hash};
use agent_ike::sa_init::SIGNATURE_HASHES;
use agent_ike::signature::{ALG_ECDSA_SHA256, ALG_ED25519, verify};
use agent_ike::{CertError, LocalCredential, PeerTrust, PublicKey, SignatureError};
use pki::{Ca, Leaf};
use ring::signature::{Ed25519KeyPair, KeyPair as _};

fn ed_leaf(ca: &Ca) -> Leaf {
    ca.issue_alg("firewall", "fw.tenant.test", &rcgen::PKCS_ED25519, |_| {})
}

fn ed_key(leaf: &Leaf) -> Ed25519KeyPair {
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(&leaf.pkcs8).unwrap()
}

/// Method 14 data: length | id-Ed25519 | the 64-byte signature of `octets`.
fn m14(k: &Ed25519KeyPair, octets: &[u8]) -> Vec<u8> {
    let mut d = vec![ALG_ED25519.len() as u8];
    d.extend_from_slice(ALG_ED25519);
    d.extend_from_slice(k.sign(octets).as_ref());
    d
}

#[test]
fn identity_is_announced_with_sha2_256() {
    assert_eq!(SIGNATURE_HASHES, [hash::SHA2_256, hash::IDENTITY]);
    assert_eq!(hash::IDENTITY, 5);
}

#[test]
fn ed25519_certificates_are_accepted_by_ca_of_either_kind_and_by_pin() {
    let ed_ca = Ca::new_alg("tenant Ed25519 CA", &rcgen::PKCS_ED25519);
    let ec_ca = Ca::new("tenant P-256 CA");
    // Ed25519 leaf under an Ed25519 CA: both the AUTH key and the chain's signature are Ed25519.
    for ca in [&ed_ca, &ec_ca] {
        let leaf = ed_leaf(ca);
        let got = check_peer(&leaf.der, &PeerTrust::Ca(ca.der.clone()), SystemTime::now()).unwrap();
        let PublicKey::Ed25519(k) = &got.key else {
            panic!("not an Ed25519 key: {:?}", got.key);
        };
        assert_eq!(k.as_slice(), ed_key(&leaf).public_key().as_ref());
        let pinned = check_peer(
            &leaf.der,
            &PeerTrust::Pin(sha256(&leaf.der)),
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(pinned, got);
    }
    // A P-256 leaf under the Ed25519 CA: the Ed25519 CA signature is checked too.
    let p256 = ed_ca.issue("firewall", "fw.tenant.test");
    let got = check_peer(
        &p256.der,
        &PeerTrust::Ca(ed_ca.der.clone()),
        SystemTime::now(),
    )
    .unwrap();
    assert!(matches!(got.key, PublicKey::EcdsaP256(_)));
}

#[test]
fn an_ed25519_ca_signature_by_another_key_is_refused() {
    let ca = Ca::new_alg("tenant Ed25519 CA", &rcgen::PKCS_ED25519);
    // Same name, other key: the issuer matches, the signature does not.
    let impostor = Ca::new_alg("tenant Ed25519 CA", &rcgen::PKCS_ED25519);
    let leaf = ed_leaf(&impostor);
    assert_eq!(
        check_peer(&leaf.der, &PeerTrust::Ca(ca.der.clone()), SystemTime::now()),
        Err(CertError::BadCaSignature)
    );
    // Flip a bit of the certificate's signature.
    let good = ed_leaf(&ca);
    let mut bad = good.der.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert_eq!(
        check_peer(&bad, &PeerTrust::Ca(ca.der.clone()), SystemTime::now()),
        Err(CertError::BadCaSignature)
    );
}

#[test]
fn ed25519_auth_verifies_over_the_octets_themselves() {
    let leaf = ed_leaf(&Ca::new_alg("CA", &rcgen::PKCS_ED25519));
    let k = ed_key(&leaf);
    let pk = PublicKey::Ed25519(k.public_key().as_ref().to_vec());
    let octets = b"InitiatorSignedOctets... no pre-hash";
    let data = m14(&k, octets);
    assert_eq!(&data[..8], &[7, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70]);
    verify(auth::DIGITAL_SIGNATURE, &data, &pk, octets).unwrap();
    assert_eq!(
        verify(auth::DIGITAL_SIGNATURE, &data, &pk, b"other octets"),
        Err(SignatureError::BadSignature)
    );
    // A signature by another Ed25519 key (the wrong certificate).
    let other = ed_key(&ed_leaf(&Ca::new_alg("CA", &rcgen::PKCS_ED25519)));
    assert_eq!(
        verify(auth::DIGITAL_SIGNATURE, &m14(&other, octets), &pk, octets),
        Err(SignatureError::BadSignature)
    );
    // Every truncation and every flipped bit is refused without a panic.
    for n in 0..data.len() {
        assert!(verify(auth::DIGITAL_SIGNATURE, &data[..n], &pk, octets).is_err());
    }
    for i in 0..data.len() {
        let mut d = data.clone();
        d[i] ^= 0x01;
        assert!(
            verify(auth::DIGITAL_SIGNATURE, &d, &pk, octets).is_err(),
            "{i}"
        );
    }
}

#[test]
fn ed25519_keys_and_other_algorithms_do_not_mix() {
    let k = ed_key(&ed_leaf(&Ca::new_alg("CA", &rcgen::PKCS_ED25519)));
    let ed = PublicKey::Ed25519(k.public_key().as_ref().to_vec());
    let ec = PublicKey::EcdsaP256(vec![4; 65]);
    let data = m14(&k, b"m");
    assert_eq!(
        verify(auth::DIGITAL_SIGNATURE, &data, &ec, b"m"),
        Err(SignatureError::KeyMismatch { key: "ECDSA P-256" })
    );
    let ecdsa_alg = [&[12u8][..], ALG_ECDSA_SHA256, &[0x30, 0x00]].concat();
    assert_eq!(
        verify(auth::DIGITAL_SIGNATURE, &ecdsa_alg, &ed, b"m"),
        Err(SignatureError::KeyMismatch { key: "Ed25519" })
    );
    // RFC 4754 method 9 is ECDSA only.
    assert_eq!(
        verify(auth::ECDSA_SHA256_P256, &[1; 64], &ed, b"m"),
        Err(SignatureError::KeyMismatch { key: "Ed25519" })
    );
    // id-Ed25519 with parameters (RFC 8410: must be absent) is not our identifier.
    let with_null = [
        &[9u8, 0x30, 0x07, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x05, 0x00][..],
        &data[8..],
    ]
    .concat();
    assert!(matches!(
        verify(auth::DIGITAL_SIGNATURE, &with_null, &ed, b"m"),
        Err(SignatureError::UnsupportedAlgorithm(_))
    ));
}

#[test]
fn our_credential_stays_p256() {
    let leaf = ed_leaf(&Ca::new("LM CA"));
    assert!(matches!(
        LocalCredential::new(&leaf.der, &leaf.pkcs8),
        Err(CertError::Key(agent_ike::signature::KeyError::NotP256Pkcs8))
    ));
}
