//! The pieces of IKE_AUTH on their own: signed octets assembled by hand, the RFC 7427 AUTH
//! encoding and its verification (and every malformed AUTH refused), certificate checks by pin
//! and CA, our credential's checks, the child key split and selector narrowing, NAT detection.

#[path = "support/pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use agent_ike::cert::{certreq_hash, check_peer, sha256};
use agent_ike::child::{CHILD_KEYMAT_LEN, chosen_spi, narrowed, offer};
use agent_ike::consts::{auth, id};
use agent_ike::nat::nat_detection_hash;
use agent_ike::signature::{ALG_ECDSA_SHA256, ALG_RSA_PKCS1_SHA256, verify};
use agent_ike::{
    CertError, Identity, LocalCredential, NatDetection, PeerTrust, PublicKey, SignatureError,
    SigningKey, TrafficSelector, Transform, derive_child_keys, prf_plus, signed_octets,
};
use pki::Ca;
use ring::hmac;

fn now() -> SystemTime {
    SystemTime::now()
}

#[test]
fn signed_octets_are_message_nonce_and_maced_id() {
    let message = b"RealMessage1: the whole IKE_SA_INIT request".to_vec();
    let nonce = [0x4e; 32];
    let sk_p = [0x5a; 32];
    let ident = Identity {
        id_type: id::DER_ASN1_DN,
        data: vec![0x30, 0x03, 0x31, 0x01, 0x00],
    };
    // Hand-assembled: RestOfIDPayload = type | 3 reserved zero bytes | data.
    let rest = [9u8, 0, 0, 0, 0x30, 0x03, 0x31, 0x01, 0x00];
    let mac = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &sk_p), &rest);
    let mut want = message.clone();
    want.extend_from_slice(&nonce);
    want.extend_from_slice(mac.as_ref());
    assert_eq!(signed_octets(&message, &nonce, &sk_p, &ident), want);
    // Each input matters.
    let other = Identity {
        id_type: id::FQDN,
        ..ident.clone()
    };
    assert_ne!(signed_octets(&message, &nonce, &sk_p, &other), want);
    assert_ne!(signed_octets(&message, &nonce, &[0x5b; 32], &ident), want);
}

fn agent() -> (LocalCredential, Vec<u8>) {
    let leaf = Ca::new("CA").issue("agent", "agent.test");
    (
        LocalCredential::new(&leaf.der, &leaf.pkcs8).unwrap(),
        leaf.der,
    )
}

fn ec_key(k: &SigningKey) -> PublicKey {
    PublicKey::EcdsaP256(k.public_key().to_vec())
}

#[test]
fn auth_method_14_carries_the_ecdsa_sha256_algorithm_identifier() {
    let (cred, _) = agent();
    let octets = b"signed octets";
    let (method, data) = cred.key().auth(octets, &[2]).unwrap();
    assert_eq!(method, auth::DIGITAL_SIGNATURE);
    assert_eq!(
        &data[..13],
        &[
            12, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02
        ]
    );
    // The rest is a DER ECDSA-Sig-Value that ring verifies on its own.
    assert_eq!(data[13], 0x30, "SEQUENCE");
    let pk = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        cred.key().public_key(),
    );
    pk.verify(octets, &data[13..]).unwrap();
    verify(method, &data, &ec_key(cred.key()), octets).unwrap();
    assert_eq!(
        verify(method, &data, &ec_key(cred.key()), b"other octets"),
        Err(SignatureError::BadSignature)
    );
}

#[test]
fn without_sha2_256_from_the_peer_auth_is_method_9() {
    let (cred, _) = agent();
    for hashes in [&[][..], &[1, 3, 4][..]] {
        let (method, data) = cred.key().auth(b"x", hashes).unwrap();
        assert_eq!(method, auth::ECDSA_SHA256_P256);
        assert_eq!(data.len(), 64, "r | s");
        verify(method, &data, &ec_key(cred.key()), b"x").unwrap();
    }
}

#[test]
fn every_malformed_or_mismatched_auth_is_refused() {
    let (cred, _) = agent();
    let key = ec_key(cred.key());
    let (_, good) = cred.key().auth(b"m", &[2]).unwrap();
    let rsa = PublicKey::Rsa(vec![0x30, 0x00]);
    let m14 = auth::DIGITAL_SIGNATURE;
    let cases: Vec<(u8, Vec<u8>, &PublicKey, SignatureError)> = vec![
        (1, good.clone(), &key, SignatureError::UnsupportedMethod(1)),
        (2, good.clone(), &key, SignatureError::UnsupportedMethod(2)),
        (m14, vec![], &key, SignatureError::Malformed("empty")),
        (
            m14,
            vec![40, 1, 2],
            &key,
            SignatureError::Malformed("AlgorithmIdentifier longer than the data"),
        ),
        (
            m14,
            [&[12u8][..], ALG_ECDSA_SHA256].concat(),
            &key,
            SignatureError::Malformed("no signature value"),
        ),
        (
            m14,
            [&[3u8, 0x30, 0x01, 0x00][..], &good[13..]].concat(),
            &key,
            SignatureError::UnsupportedAlgorithm("300100".into()),
        ),
        (
            m14,
            good.clone(),
            &rsa,
            SignatureError::KeyMismatch { key: "RSA" },
        ),
        (
            m14,
            [&[15u8][..], ALG_RSA_PKCS1_SHA256, &[1, 2, 3]].concat(),
            &key,
            SignatureError::KeyMismatch { key: "ECDSA P-256" },
        ),
        (
            auth::ECDSA_SHA256_P256,
            vec![1; 64],
            &rsa,
            SignatureError::KeyMismatch { key: "RSA" },
        ),
        (
            auth::ECDSA_SHA256_P256,
            vec![1; 64],
            &key,
            SignatureError::BadSignature,
        ),
        (
            m14,
            [&good[..good.len() - 1], &[good[good.len() - 1] ^ 1]].concat(),
            &key,
            SignatureError::BadSignature,
        ),
    ];
    for (method, data, k, want) in cases {
        assert_eq!(
            verify(method, &data, k, b"m"),
            Err(want),
            "{method} {data:02x?}"
        );
    }
    // Every truncation of a good AUTH is refused without a panic.
    for n in 0..good.len() {
        assert!(verify(m14, &good[..n], &key, b"m").is_err(), "prefix {n}");
    }
}

#[test]
fn the_responder_certificate_by_pin_and_by_ca() {
    let ca = Ca::new("tenant CA");
    let rogue = Ca::new("rogue CA");
    let fw = ca.issue("firewall", "fw.tenant.test");
    let by_ca = check_peer(&fw.der, &PeerTrust::Ca(ca.der.clone()), now()).unwrap();
    let by_pin = check_peer(&fw.der, &PeerTrust::Pin(sha256(&fw.der)), now()).unwrap();
    assert_eq!(by_ca, by_pin);
    assert!(matches!(by_ca.key, PublicKey::EcdsaP256(ref k) if k.len() == 65));
    assert_eq!(by_ca.dns_names, vec!["fw.tenant.test".to_string()]);
    // IDr: the subject DN, the DNS alt name (any case); not an unrelated name or type.
    let dn = Identity {
        id_type: id::DER_ASN1_DN,
        data: by_ca.subject.clone(),
    };
    assert!(by_ca.matches(&dn));
    for (t, d, ok) in [
        (id::FQDN, "FW.tenant.test", true),
        (id::FQDN, "other.test", false),
        (id::RFC822_ADDR, "fw.tenant.test", false),
        (id::KEY_ID, "fw.tenant.test", false),
        (id::DER_ASN1_DN, "fw.tenant.test", false),
    ] {
        let ident = Identity {
            id_type: t,
            data: d.as_bytes().to_vec(),
        };
        assert_eq!(by_ca.matches(&ident), ok, "{t} {d}");
    }

    let other = rogue.issue("firewall", "fw.tenant.test");
    assert!(matches!(
        check_peer(&other.der, &PeerTrust::Ca(ca.der.clone()), now()),
        Err(CertError::WrongIssuer { .. })
    ));
    assert!(matches!(
        check_peer(&other.der, &PeerTrust::Pin(sha256(&fw.der)), now()),
        Err(CertError::NotPinned { .. })
    ));
    // Same issuer name, other key: the signature does not verify.
    let twin = Ca::new("tenant CA");
    let forged = twin.issue("firewall", "fw.tenant.test");
    assert_eq!(
        check_peer(&forged.der, &PeerTrust::Ca(ca.der.clone()), now()),
        Err(CertError::BadCaSignature)
    );
    // Validity at the time passed in.
    let later = now() + Duration::from_secs(200 * 365 * 86400);
    let short = ca.issue_with("firewall", "fw.tenant.test", |p| {
        p.not_after = rcgen::date_time_ymd(2030, 1, 1);
    });
    assert!(matches!(
        check_peer(&short.der, &PeerTrust::Ca(ca.der.clone()), later),
        Err(CertError::Expired { .. })
    ));
    assert!(matches!(
        check_peer(&short.der, &PeerTrust::Pin(sha256(&short.der)), later),
        Err(CertError::Expired { .. })
    ));
    // Hostile bytes: garbage, trailing bytes, every truncation.
    let mut trailing = fw.der.clone();
    trailing.push(0);
    for bad in [vec![], vec![0x30, 0x82, 0xff, 0xff], trailing] {
        assert!(matches!(
            check_peer(&bad, &PeerTrust::Ca(ca.der.clone()), now()),
            Err(CertError::Parse { .. })
        ));
    }
    for n in 0..fw.der.len() {
        assert!(check_peer(&fw.der[..n], &PeerTrust::Ca(ca.der.clone()), now()).is_err());
    }
    assert!(matches!(
        check_peer(&fw.der, &PeerTrust::Ca(vec![1, 2, 3]), now()),
        Err(CertError::Parse { .. })
    ));
}

#[test]
fn certreq_names_the_ca_by_the_sha1_of_its_public_key_info() {
    let ca = Ca::new("tenant CA");
    let h = certreq_hash(&ca.der).unwrap();
    assert_eq!(h.len(), 20);
    assert_ne!(h, certreq_hash(&Ca::new("tenant CA").der).unwrap());
    assert!(certreq_hash(b"junk").is_err());
}

#[test]
fn our_credential_must_be_a_p256_key_of_our_certificate() {
    let ca = Ca::new("LM CA");
    let a = ca.issue("agent a", "a.test");
    let b = ca.issue("agent b", "b.test");
    let cred = LocalCredential::new(&a.der, &a.pkcs8).unwrap();
    assert_eq!(cred.identity().id_type, id::DER_ASN1_DN);
    assert_eq!(cred.cert_der(), a.der.as_slice());
    assert_eq!(
        LocalCredential::new(&a.der, &b.pkcs8).unwrap_err(),
        CertError::KeyMismatch
    );
    assert!(matches!(
        LocalCredential::new(b"not a cert", &a.pkcs8),
        Err(CertError::Parse { .. })
    ));
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    assert!(matches!(
        LocalCredential::new(&a.der, &ed.serialize_der()),
        Err(CertError::Key(_))
    ));
    assert!(format!("{:?}", cred.key()).contains("redacted"));
}

#[test]
fn child_keymat_is_split_initiator_to_responder_first() {
    let (sk_d, ni, nr) = ([3u8; 32], [1u8; 32], [2u8; 24]);
    let keys = derive_child_keys(&sk_d, &ni, &nr).unwrap();
    let km = prf_plus(&sk_d, &[&ni[..], &nr].concat(), CHILD_KEYMAT_LEN).unwrap();
    assert_eq!(CHILD_KEYMAT_LEN, 72);
    assert_eq!(keys.initiator_to_responder.key[..], km[..32]);
    assert_eq!(keys.initiator_to_responder.salt[..], km[32..36]);
    assert_eq!(keys.responder_to_initiator.key[..], km[36..68]);
    assert_eq!(keys.responder_to_initiator.salt[..], km[68..72]);
    assert_ne!(derive_child_keys(&sk_d, &nr, &ni).unwrap(), keys);
    assert!(format!("{keys:?}").contains("redacted"));
}

#[test]
fn the_chosen_esp_proposal_must_be_ours() {
    let ours = offer(0x1234_5678);
    assert_eq!(ours.spi, vec![0x12, 0x34, 0x56, 0x78]);
    let reply = |spi: Vec<u8>, transforms: Vec<Transform>| agent_ike::Proposal {
        num: 1,
        protocol: 3,
        spi,
        transforms,
    };
    let esn = agent_ike::child::ESN_NONE;
    let good = reply(vec![0xc0, 0, 0, 1], vec![Transform::AES256_GCM16, esn]);
    assert_eq!(
        chosen_spi(std::slice::from_ref(&good), &ours),
        Ok(0xc000_0001)
    );
    // ESN may be left out (none is the default).
    let no_esn = reply(vec![0xc0, 0, 0, 1], vec![Transform::AES256_GCM16]);
    assert!(chosen_spi(&[no_esn], &ours).is_ok());
    let esn_on = Transform { id: 1, ..esn };
    let aes128 = Transform {
        key_bits: Some(128),
        ..Transform::AES256_GCM16
    };
    for bad in [
        vec![],
        vec![good.clone(), good.clone()],
        vec![reply(vec![0, 0, 0, 255], good.transforms.clone())],
        vec![reply(vec![1, 2, 3], good.transforms.clone())],
        vec![reply(
            good.spi.clone(),
            vec![Transform::AES256_GCM16, esn_on],
        )],
        vec![reply(good.spi.clone(), vec![aes128, esn])],
        vec![reply(good.spi.clone(), vec![esn])],
        vec![reply(
            good.spi.clone(),
            vec![Transform::AES256_GCM16, Transform::AES256_GCM16],
        )],
        vec![agent_ike::Proposal {
            protocol: 1,
            ..good.clone()
        }],
        vec![agent_ike::Proposal {
            num: 2,
            ..good.clone()
        }],
    ] {
        assert!(chosen_spi(&bad, &ours).is_err(), "{bad:?}");
    }
}

#[test]
fn selectors_must_be_narrowed_from_ours() {
    let offered = [TrafficSelector::v4([10, 0, 0, 0], [10, 255, 255, 255])];
    let inside = TrafficSelector::v4([10, 20, 0, 0], [10, 20, 255, 255]);
    assert!(narrowed(std::slice::from_ref(&inside), &offered));
    assert!(narrowed(&offered, &offered));
    let wider = TrafficSelector::v4([10, 0, 0, 0], [11, 0, 0, 0]);
    let v6 = TrafficSelector {
        ts_type: 8,
        start: vec![0; 16],
        end: vec![0xff; 16],
        ..inside.clone()
    };
    let inverted = TrafficSelector::v4([10, 9, 0, 0], [10, 8, 0, 0]);
    let ports = TrafficSelector {
        start_port: 10,
        end_port: 5,
        ..inside.clone()
    };
    let short_addr = TrafficSelector {
        start: vec![10, 0, 0],
        ..inside.clone()
    };
    for bad in [
        vec![],
        vec![wider],
        vec![v6],
        vec![inverted],
        vec![ports],
        vec![short_addr],
        vec![
            inside.clone(),
            TrafficSelector::v4([11, 0, 0, 0], [11, 0, 0, 1]),
        ],
    ] {
        assert!(!narrowed(&bad, &offered), "{bad:?}");
    }
    // A protocol-specific offer admits only that protocol.
    let tcp = [TrafficSelector {
        ip_protocol: 6,
        ..offered[0].clone()
    }];
    assert!(!narrowed(std::slice::from_ref(&inside), &tcp));
}

#[test]
fn nat_detection_compares_both_hashes() {
    let local: SocketAddr = "10.0.0.1:500".parse().unwrap();
    let remote: SocketAddr = "10.0.0.2:500".parse().unwrap();
    let (i, r) = (0x1111, 0x2222);
    let src = nat_detection_hash(i, r, remote);
    let dst = nat_detection_hash(i, r, local);
    let other = nat_detection_hash(i, r, "192.0.2.1:4500".parse().unwrap());
    let eval = |s: &[&[u8]], d: &[&[u8]]| NatDetection::evaluate(i, r, local, remote, s, d);
    let none = eval(&[&src], &[&dst]);
    assert!(none.peer_supports && !none.detected());
    let us = eval(&[&src], &[&other]);
    assert!(us.local_behind_nat && !us.remote_behind_nat && us.detected());
    // Several source hashes (multihomed responder): one match is enough.
    let them = eval(&[&other, &src], &[&dst]);
    assert!(!them.detected());
    let them = eval(&[&other], &[&dst]);
    assert!(them.remote_behind_nat && !them.local_behind_nat);
    assert_eq!(eval(&[], &[&dst]), NatDetection::default());
    assert!(!NatDetection::default().detected());
    // The hash covers the SPIs: the IKE_SA_INIT request's (SPIr 0) differs.
    assert_ne!(nat_detection_hash(i, 0, remote), src);
}

/// A DER Name of one RDN per (OID 2.5.4.x last arc, ASN.1 string tag, value).
fn dn(rdns: &[(u8, u8, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (arc, tag, v) in rdns {
        let mut atv = vec![0x06, 3, 0x55, 4, *arc, *tag, v.len() as u8];
        atv.extend_from_slice(v.as_bytes());
        let mut seq = vec![0x30, atv.len() as u8];
        seq.extend(atv);
        body.extend([0x31, seq.len() as u8]);
        body.extend(seq);
    }
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

#[test]
fn dn_equality_ignores_the_string_type_only() {
    use agent_ike::cert::dn_equal;
    const PRINTABLE: u8 = 0x13;
    const UTF8: u8 = 0x0c;
    let utf8 = dn(&[(3, UTF8, "tenant gateway")]);
    // strongSwan's `id = "CN=tenant gateway"` (PrintableString) is rcgen's UTF8String CN.
    assert!(dn_equal(&dn(&[(3, PRINTABLE, "tenant gateway")]), &utf8));
    assert!(dn_equal(&utf8, &utf8));
    for other in [
        dn(&[(3, PRINTABLE, "tenant gatewaY")]),
        dn(&[(3, PRINTABLE, "tenant gateway ")]),
        dn(&[(10, PRINTABLE, "tenant gateway")]),
        dn(&[(3, UTF8, "tenant gateway"), (10, UTF8, "acme")]),
        dn(&[]),
        // OCTET STRING with the same bytes is not a string.
        dn(&[(3, 0x04, "tenant gateway")]),
    ] {
        assert!(!dn_equal(&other, &utf8), "{other:02x?}");
    }
    // Garbage and trailing bytes are never equal to a name (unless byte-identical).
    let mut trailing = dn(&[(3, PRINTABLE, "tenant gateway")]);
    trailing.push(0);
    assert!(!dn_equal(&trailing, &utf8));
    assert!(!dn_equal(&[0x30, 0x80], &utf8));
    assert!(!dn_equal(&[], &utf8));
}
