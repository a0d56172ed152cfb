//! Sealing and unsealing against a real TPM 2.0 (swtpm, one per test with its own state).
//! Skipped with a message when swtpm is not installed, unless CI is set.

mod support;

use agent_tpm::{SealedBlob, TpmError, Transport, command, response};
use support::{Swtpm, swtpm_available};

const SECRET: [u8; 32] = *b"host key: 32 bytes of secret....";

fn dirs() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn seal_then_unseal_gives_the_secret() {
    if !swtpm_available() {
        return;
    }
    let d = dirs();
    let sw = Swtpm::start(&d.path().join("state"), d.path());
    let mut tpm = sw.tpm();
    let blob = tpm.seal(&SECRET).unwrap();
    assert!(
        !blob.private.windows(8).any(|w| w == &SECRET[..8]),
        "secret in the clear"
    );
    let back = SealedBlob::from_bytes(&blob.to_bytes()).unwrap();
    assert_eq!(back, blob);
    assert_eq!(*tpm.unseal(&back).unwrap(), SECRET);
    // sealing twice gives different blobs (fresh seed value), both unseal
    let again = tpm.seal(&SECRET).unwrap();
    assert_ne!(again.private, blob.private);
    assert_eq!(*tpm.unseal(&again).unwrap(), SECRET);
    assert_eq!(tpm.transient_handles().unwrap(), Vec::<u32>::new());
}

#[test]
fn get_random_gives_the_asked_length() {
    if !swtpm_available() {
        return;
    }
    let d = dirs();
    let sw = Swtpm::start(&d.path().join("state"), d.path());
    let mut tpm = sw.tpm();
    assert!(tpm.get_random(0).unwrap().is_empty());
    let a = tpm.get_random(100).unwrap();
    let b = tpm.get_random(100).unwrap();
    assert_eq!(a.len(), 100);
    assert_ne!(a, b);
    assert!(matches!(
        tpm.get_random(agent_tpm::MAX_RANDOM + 1),
        Err(TpmError::Request { .. })
    ));
}

#[test]
fn a_restarted_tpm_on_the_same_state_still_unseals() {
    if !swtpm_available() {
        return;
    }
    let d = dirs();
    let state = d.path().join("state");
    let blob = {
        let sw = Swtpm::start(&state, d.path());
        let blob = sw.tpm().seal(&SECRET).unwrap();
        drop(sw); // SIGKILL: like a power cut
        blob
    };
    let file = d.path().join("host-key.sealed");
    std::fs::write(&file, blob.to_bytes()).unwrap();
    let sw = Swtpm::start(&state, d.path());
    let blob = SealedBlob::from_bytes(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(*sw.tpm().unseal(&blob).unwrap(), SECRET);
}

#[test]
fn another_tpm_refuses_with_foreign_blob() {
    if !swtpm_available() {
        return;
    }
    let (d1, d2) = (dirs(), dirs());
    let ours = Swtpm::start(&d1.path().join("state"), d1.path());
    let theirs = Swtpm::start(&d2.path().join("state"), d2.path());
    let blob = ours.tpm().seal(&SECRET).unwrap();
    let mut other = theirs.tpm();
    let e = other.unseal(&blob).unwrap_err();
    eprintln!("another TPM: {e}");
    match e {
        // swtpm 0.7.1 (libtpms): TPM_RC_INTEGRITY on parameter 1 (inPrivate)
        TpmError::ForeignBlob { code } => assert_eq!(code, 0x1DF, "{e}"),
        other => panic!("expected ForeignBlob, got {other}"),
    }
    assert_eq!(other.transient_handles().unwrap(), Vec::<u32>::new());
    // and it still unseals where it was made
    assert_eq!(*ours.tpm().unseal(&blob).unwrap(), SECRET);
}

#[test]
fn tampered_blobs_refuse() {
    if !swtpm_available() {
        return;
    }
    let d = dirs();
    let sw = Swtpm::start(&d.path().join("state"), d.path());
    let mut tpm = sw.tpm();
    let blob = tpm.seal(&SECRET).unwrap();
    // every byte of the private part flipped in turn: never the secret, never a panic; past
    // the integrity HMAC's size field it is the integrity check that refuses
    for i in 0..blob.private.len() {
        let mut t = blob.clone();
        t.private[i] ^= 0x01;
        match tpm.unseal(&t) {
            Ok(s) => panic!("byte {i} flipped still unsealed ({})", *s == SECRET),
            Err(TpmError::ForeignBlob { .. }) => {}
            Err(e) => {
                eprintln!("private byte {i} flipped: {e}");
                assert!(i < 2, "byte {i}: {e}")
            }
        }
    }
    // the public part's digest (unique) altered: its name changes, the integrity check fails
    let mut t = blob.clone();
    let n = t.public.len();
    t.public[n - 1] ^= 0x80;
    let e = tpm.unseal(&t).unwrap_err();
    assert!(matches!(e, TpmError::ForeignBlob { .. }), "{e}");
    assert_eq!(tpm.transient_handles().unwrap(), Vec::<u32>::new());
    assert_eq!(*tpm.unseal(&blob).unwrap(), SECRET);
}

#[test]
fn truncated_or_garbage_blob_files_refuse() {
    if !swtpm_available() {
        return;
    }
    let d = dirs();
    let sw = Swtpm::start(&d.path().join("state"), d.path());
    let mut tpm = sw.tpm();
    let bytes = tpm.seal(&SECRET).unwrap().to_bytes();
    let file = d.path().join("host-key.sealed");
    for cut in [0, 5, 10, 12, 40, bytes.len() - 1] {
        std::fs::write(&file, &bytes[..cut]).unwrap();
        let e = SealedBlob::from_bytes(&std::fs::read(&file).unwrap()).unwrap_err();
        assert!(matches!(e, TpmError::BadBlob { .. }), "cut {cut}: {e}");
    }
    std::fs::write(&file, b"#!/bin/sh\nthis is not a blob\n").unwrap();
    let e = SealedBlob::from_bytes(&std::fs::read(&file).unwrap()).unwrap_err();
    assert!(e.to_string().contains("magic"), "{e}");
    // a hand-made blob with empty parts refuses before any TPM command that could leak
    let e = tpm
        .unseal(&SealedBlob {
            public: vec![],
            private: vec![1],
        })
        .unwrap_err();
    assert!(matches!(e, TpmError::BadBlob { .. }), "{e}");
    assert_eq!(tpm.transient_handles().unwrap(), Vec::<u32>::new());
}

#[test]
fn fifty_rounds_leave_no_transient_objects() {
    if !swtpm_available() {
        return;
    }
    let d = dirs();
    let sw = Swtpm::start(&d.path().join("state"), d.path());
    let mut tpm = sw.tpm();
    for i in 0..50u8 {
        let mut secret = SECRET;
        secret[0] = i;
        let blob = tpm.seal(&secret).unwrap();
        assert_eq!(*tpm.unseal(&blob).unwrap(), secret, "round {i}");
    }
    // swtpm has no resource manager: GetCapability sees every transient object of the TPM
    assert_eq!(tpm.transient_handles().unwrap(), Vec::<u32>::new());
    // and it would see a leaked one: a primary created by hand shows up until flushed
    let mut raw = tpm.into_inner();
    let handle =
        response::create_primary(&raw.transact(&command::create_primary()).unwrap()).unwrap();
    let mut tpm = agent_tpm::Tpm::new(raw);
    assert_eq!(tpm.transient_handles().unwrap(), vec![handle]);
    let mut raw = tpm.into_inner();
    response::flush_context(&raw.transact(&command::flush_context(handle)).unwrap()).unwrap();
    assert_eq!(
        agent_tpm::Tpm::new(raw).transient_handles().unwrap(),
        Vec::<u32>::new()
    );
}
