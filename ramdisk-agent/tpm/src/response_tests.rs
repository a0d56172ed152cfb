//! Response parsers against well-formed, hostile and arbitrary responses.

use proptest::prelude::*;

use crate::error::TpmError;
use crate::response;
use crate::spec::*;

/// A response: header (tag, size, code) + body.
fn resp(tag: u16, code: u32, body: &[u8]) -> Vec<u8> {
    let mut v = tag.to_be_bytes().to_vec();
    v.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn tpm2b(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

/// Handles, then parameterSize + parameters, then a password session's response.
fn with_session(handles: &[u32], params: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for h in handles {
        v.extend_from_slice(&h.to_be_bytes());
    }
    v.extend_from_slice(&(params.len() as u32).to_be_bytes());
    v.extend_from_slice(params);
    v.extend_from_slice(&[0, 0, 1, 0, 0]);
    v
}

fn sealed_public() -> Vec<u8> {
    let mut p = vec![
        0x00, 0x08, 0x00, 0x0b, 0x00, 0x00, 0x04, 0x52, 0x00, 0x00, 0x00, 0x10,
    ];
    p.extend_from_slice(&tpm2b(&[0xAA; 32]));
    p
}

fn ticket() -> Vec<u8> {
    let mut t = vec![0x80, 0x21, 0x40, 0x00, 0x00, 0x01];
    t.extend_from_slice(&tpm2b(&[0x33; 32]));
    t
}

fn create_primary_ok() -> Vec<u8> {
    let mut p = tpm2b(&[0x11; 88]); // outPublic
    p.extend_from_slice(&tpm2b(&[0x22; 53])); // creationData
    p.extend_from_slice(&tpm2b(&[0x33; 32])); // creationHash
    p.extend_from_slice(&ticket());
    p.extend_from_slice(&tpm2b(&[0x44; 34])); // name
    resp(ST_SESSIONS, 0, &with_session(&[0x8000_0000], &p))
}

fn create_ok() -> Vec<u8> {
    let mut p = tpm2b(&[0x5A; 108]); // outPrivate
    p.extend_from_slice(&tpm2b(&sealed_public()));
    p.extend_from_slice(&tpm2b(&[0x22; 53]));
    p.extend_from_slice(&tpm2b(&[0x33; 32]));
    p.extend_from_slice(&ticket());
    resp(ST_SESSIONS, 0, &with_session(&[], &p))
}

fn unseal_ok(secret: &[u8]) -> Vec<u8> {
    resp(ST_SESSIONS, 0, &with_session(&[], &tpm2b(secret)))
}

#[test]
fn get_random_golden() {
    // swtpm's answer to the lab probe's GetRandom(8).
    let r = [
        0x80, 0x01, 0, 0, 0, 0x14, 0, 0, 0, 0, 0, 8, 0x6e, 0x0e, 0xe1, 0x57, 0xc2, 0xed, 0x29, 0x7b,
    ];
    assert_eq!(
        response::get_random(&r, 8).unwrap(),
        [0x6e, 0x0e, 0xe1, 0x57, 0xc2, 0xed, 0x29, 0x7b]
    );
    // more than asked for
    assert!(matches!(
        response::get_random(&r, 4),
        Err(TpmError::Malformed { .. })
    ));
}

#[test]
fn well_formed_responses_parse() {
    assert_eq!(
        response::create_primary(&create_primary_ok()).unwrap(),
        0x8000_0000
    );
    let c = response::create(&create_ok()).unwrap();
    assert_eq!(c.public, sealed_public());
    assert_eq!(c.private, vec![0x5A; 108]);
    let load = resp(
        ST_SESSIONS,
        0,
        &with_session(&[0x8000_0001], &tpm2b(&[0x44; 34])),
    );
    assert_eq!(response::load(&load).unwrap(), 0x8000_0001);
    assert_eq!(*response::unseal(&unseal_ok(&[7; 32])).unwrap(), [7; 32]);
    response::flush_context(&resp(ST_NO_SESSIONS, 0, &[])).unwrap();
    let caps = resp(
        ST_NO_SESSIONS,
        0,
        &[0, 0, 0, 0, 1, 0, 0, 0, 2, 0x80, 0, 0, 0, 0x80, 0, 0, 1],
    );
    assert_eq!(
        response::get_handles(&caps).unwrap(),
        (vec![0x8000_0000, 0x8000_0001], false)
    );
}

#[test]
fn error_codes_become_response_errors() {
    let r = resp(ST_NO_SESSIONS, 0x1DF, &[]);
    match response::load(&r).unwrap_err() {
        TpmError::Response {
            command,
            code,
            meaning,
        } => {
            assert_eq!(command, "Load");
            assert_eq!(code, 0x1DF);
            assert!(
                meaning.contains("TPM_RC_INTEGRITY (parameter 1)"),
                "{meaning}"
            );
        }
        other => panic!("{other}"),
    }
    // TPM_RC_BAD_TAG answered with the TPM 1.2 tag
    let r = resp(ST_RSP_COMMAND, 0x1E, &[]);
    assert!(matches!(
        response::get_random(&r, 8),
        Err(TpmError::Response { code: 0x1E, .. })
    ));
    // an error with a nonsense tag is malformed
    let r = resp(0x1234, 0x101, &[]);
    assert!(matches!(
        response::flush_context(&r),
        Err(TpmError::Malformed { .. })
    ));
    let e = response::create_primary(&resp(ST_NO_SESSIONS, 0x902, &[])).unwrap_err();
    assert!(
        e.to_string()
            .contains("TPM2_CreatePrimary failed with 0x902: TPM_RC_OBJECT_MEMORY"),
        "{e}"
    );
}

#[test]
fn hostile_headers() {
    let good = create_primary_ok();
    // every truncation
    for n in 0..good.len() {
        assert!(response::create_primary(&good[..n]).is_err(), "{n}");
    }
    // size field larger / smaller than the bytes, and huge
    for size in [
        0u32,
        9,
        good.len() as u32 - 1,
        good.len() as u32 + 1,
        u32::MAX,
    ] {
        let mut b = good.clone();
        b[2..6].copy_from_slice(&size.to_be_bytes());
        assert!(matches!(
            response::create_primary(&b),
            Err(TpmError::Malformed { .. })
        ));
    }
    // wrong tag on success
    let mut b = good.clone();
    b[1] = 0x01;
    let e = response::create_primary(&b).unwrap_err().to_string();
    assert!(e.contains("tag 0x8001, expected 0x8002"), "{e}");
    // trailing byte (size adjusted)
    let mut b = good.clone();
    b.push(0);
    let n = b.len() as u32;
    b[2..6].copy_from_slice(&n.to_be_bytes());
    assert!(response::create_primary(&b).is_err());
}

#[test]
fn hostile_bodies() {
    // a persistent or permanent handle where a transient one must be
    let mut b = create_primary_ok();
    b[10] = 0x81;
    assert!(
        response::create_primary(&b)
            .unwrap_err()
            .to_string()
            .contains("not a transient")
    );
    // parameterSize beyond the end
    let mut b = create_primary_ok();
    b[14..18].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(response::create_primary(&b).is_err());
    // a huge TPM2B inside the parameters
    let mut b = unseal_ok(&[7; 32]);
    b[14..16].copy_from_slice(&[0xFF, 0xFF]);
    assert!(response::unseal(&b).is_err());
    // unsealed data of the wrong size
    for n in [0, 31, 33, 64] {
        assert!(matches!(
            response::unseal(&unseal_ok(&vec![1; n])),
            Err(TpmError::Malformed { .. })
        ));
    }
    // a session response with an HMAC from a password session
    let mut b = unseal_ok(&[7; 32]);
    let n = b.len();
    b[n - 2..].copy_from_slice(&[0, 1]);
    b.push(0xEE);
    let size = b.len() as u32;
    b[2..6].copy_from_slice(&size.to_be_bytes());
    assert!(
        response::unseal(&b)
            .unwrap_err()
            .to_string()
            .contains("HMAC")
    );
    // a Create whose object is not our sealed template
    let mut b = create_ok();
    let at = 10 + 4 + 2 + 108 + 2; // header, parameterSize, outPrivate, outPublic size
    b[at + 1] = 0x25; // type: SYMCIPHER
    assert!(
        response::create(&b)
            .unwrap_err()
            .to_string()
            .contains("object type")
    );
    // handle counts larger than the body
    let caps = resp(ST_NO_SESSIONS, 0, &[0, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF]);
    assert!(response::get_handles(&caps).is_err());
    let caps = resp(ST_NO_SESSIONS, 0, &[0, 0, 0, 0, 2, 0, 0, 0, 0]);
    assert!(response::get_handles(&caps).is_err());
}

fn parse_all(b: &[u8]) {
    let _ = response::get_random(b, 32);
    let _ = response::create_primary(b);
    let _ = response::create(b);
    let _ = response::load(b);
    let _ = response::unseal(b);
    let _ = response::flush_context(b);
    let _ = response::get_handles(b);
    let _ = crate::SealedBlob::from_bytes(b);
}

proptest! {
    #[test]
    fn parsing_any_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        parse_all(&b);
    }

    /// Valid headers (so the parsers reach the bodies) with arbitrary bodies and codes.
    #[test]
    fn parsing_any_body_never_panics(
        sessions in any::<bool>(),
        code in prop_oneof![Just(0u32), any::<u32>()],
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let tag = if sessions { ST_SESSIONS } else { ST_NO_SESSIONS };
        parse_all(&resp(tag, code, &body));
    }

    /// Single-byte edits of well-formed responses.
    #[test]
    fn edited_responses_never_panic(at in any::<usize>(), x in 1u8.., which in 0usize..3) {
        let mut b = [create_primary_ok(), create_ok(), unseal_ok(&[9; 32])][which].clone();
        let i = at % b.len();
        b[i] ^= x;
        parse_all(&b);
    }
}
