//! Key schedule, DH and the SK payload.

use agent_ike::consts::{exchange, flags, notify};
use agent_ike::keys::{KEYMAT_LEN, PRF_LEN};
use agent_ike::{
    CryptoError, DecodeError, DhGroup, DhPrivate, Header, Notify, Payload, SkKey, decode, derive,
    prf, prf_plus, sk,
};
use ring::hmac;

fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

#[test]
fn prf_plus_is_the_hmac_chain_of_rfc7296() {
    let (k, s) = (b"key material".as_slice(), b"seed".as_slice());
    let t1 = hmac256(k, &[s, &[1]].concat());
    let t2 = hmac256(k, &[&t1[..], s, &[2]].concat());
    let t3 = hmac256(k, &[&t2[..], s, &[3]].concat());
    let want = [t1, t2, t3].concat();
    let got = prf_plus(k, s, 80).unwrap();
    assert_eq!(&got[..], &want[..80]);
    assert_eq!(prf(k, &[b"se", b"ed"]).to_vec(), hmac256(k, s));
}

#[test]
fn prf_plus_lengths_and_limit() {
    for n in [0, 1, 31, 32, 33, KEYMAT_LEN, 255 * PRF_LEN] {
        assert_eq!(prf_plus(b"k", b"s", n).unwrap().len(), n);
    }
    assert_eq!(
        prf_plus(b"k", b"s", 255 * PRF_LEN + 1).unwrap_err(),
        CryptoError::PrfPlusTooLong(8161)
    );
    // A prefix of a longer output is the shorter output.
    assert_eq!(
        &prf_plus(b"k", b"s", 200).unwrap()[..50],
        &prf_plus(b"k", b"s", 50).unwrap()[..]
    );
}

#[test]
fn derive_is_deterministic_and_splits_the_key_stream() {
    let (ni, nr, g) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    let a = derive(&ni, &nr, &g, 7, 9).unwrap();
    assert_eq!(a, derive(&ni, &nr, &g, 7, 9).unwrap());
    assert_ne!(a, derive(&ni, &nr, &g, 7, 10).unwrap());
    let skeyseed = prf(&[ni, nr].concat(), &[&g]);
    let seed = [&ni[..], &nr, &7u64.to_be_bytes(), &9u64.to_be_bytes()].concat();
    let km = prf_plus(&skeyseed, &seed, KEYMAT_LEN).unwrap();
    assert_eq!(KEYMAT_LEN, 32 + 36 + 36 + 32 + 32);
    assert_eq!(a.sk_d, km[..32]);
    assert_eq!(a.sk_ei.key, km[32..64]);
    assert_eq!(a.sk_ei.salt, km[64..68]);
    assert_eq!(a.sk_er.key, km[68..100]);
    assert_eq!(a.sk_er.salt, km[100..104]);
    assert_eq!(a.sk_pi, km[104..136]);
    assert_eq!(a.sk_pr, km[136..168]);
    assert_eq!(format!("{a:?}"), "IkeKeys(redacted)");
}

#[test]
fn both_sides_agree_in_both_groups() {
    for group in [DhGroup::Curve25519, DhGroup::Ecp256] {
        let (a, b) = (
            DhPrivate::generate(group).unwrap(),
            DhPrivate::generate(group).unwrap(),
        );
        assert_eq!(a.public().len(), group.public_len());
        let (pa, pb) = (a.public().to_vec(), b.public().to_vec());
        let (sa, sb) = (a.agree(&pb).unwrap(), b.agree(&pa).unwrap());
        assert_eq!(sa.len(), 32);
        assert_eq!(*sa, *sb);
    }
}

#[test]
fn bad_peer_values_are_refused() {
    let a = DhPrivate::generate(DhGroup::Ecp256).unwrap();
    assert!(matches!(
        a.agree(&[0u8; 64]),
        Err(CryptoError::BadPeerPublic { group: 19, len: 64 })
    ));
    let a = DhPrivate::generate(DhGroup::Ecp256).unwrap();
    assert!(a.agree(&[4u8; 65]).is_err());
    let a = DhPrivate::generate(DhGroup::Curve25519).unwrap();
    assert!(a.agree(&[9u8; 31]).is_err());
    let a = DhPrivate::generate(DhGroup::Curve25519).unwrap();
    assert!(
        a.agree(&[0u8; 32]).is_err(),
        "all-zero shared secret (RFC 8031 2.4)"
    );
}

fn key(b: u8) -> SkKey {
    SkKey {
        key: [b; 32],
        salt: [b ^ 0x55; 4],
    }
}

fn sealed() -> Vec<u8> {
    let h = Header {
        spi_i: 1,
        spi_r: 2,
        exchange: exchange::IKE_AUTH,
        flags: flags::INITIATOR,
        msg_id: 1,
    };
    let inner = [
        Payload::Notify(Notify::ike(notify::INITIAL_CONTACT, vec![])),
        Payload::Nonce(vec![5; 20]),
    ];
    sk::seal(&h, &inner, &key(1), 1).unwrap()
}

#[test]
fn sk_round_trips_and_has_the_rfc5282_layout() {
    let bytes = sealed();
    let m = decode(&bytes).unwrap();
    let loc = m.sk.unwrap();
    assert_eq!((loc.offset, loc.first_inner), (28, 41));
    assert!(m.payloads.is_empty());
    // 28 header + 4 SK header + 8 IV + (8 notify + 24 nonce + 1 pad length) + 16 ICV
    assert_eq!(bytes.len(), 28 + 4 + 8 + 33 + 16);
    assert_eq!(&bytes[32..40], &1u64.to_be_bytes());
    let inner = sk::open(&bytes, &m, &key(1)).unwrap();
    assert_eq!(inner.len(), 2);
}

#[test]
fn any_flipped_bit_or_wrong_key_fails_integrity() {
    let bytes = sealed();
    let m = decode(&bytes).unwrap();
    assert_eq!(
        sk::open(&bytes, &m, &key(2)),
        Err(DecodeError::IntegrityFailed)
    );
    let mut k = key(1);
    k.salt[0] ^= 1;
    assert_eq!(sk::open(&bytes, &m, &k), Err(DecodeError::IntegrityFailed));
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        // Header and SK header are authenticated data; IV, ciphertext and ICV are sealed.
        match decode(&b) {
            Ok(m2) if m2.sk.is_some() => {
                assert!(
                    sk::open(&b, &m2, &key(1)).is_err(),
                    "flip at {i} not detected"
                )
            }
            _ => {}
        }
    }
}

#[test]
fn short_sk_payload_is_refused() {
    let mut bytes = sealed();
    bytes.truncate(28 + 4 + 10);
    let len = bytes.len() as u32;
    bytes[24..28].copy_from_slice(&len.to_be_bytes());
    bytes[30..32].copy_from_slice(&14u16.to_be_bytes());
    let m = decode(&bytes).unwrap();
    assert_eq!(
        sk::open(&bytes, &m, &key(1)),
        Err(DecodeError::SkTooShort(10))
    );
}
