//! Fuzz target: the agent's TPM 2.0 response parsers and sealed blob format (`agent-tpm`).
//! The first byte picks a mode: 0 the raw bytes to every response parser and to
//! `SealedBlob::from_bytes`; 1 the same bytes behind a header with a correct size (so the
//! parsers reach the bodies), tag and code from the next bytes. Nothing may panic; a blob that
//! parses must write back to the same bytes; an unsealed secret is always 32 bytes.

#![no_main]

use agent_tpm::{SealedBlob, response};
use libfuzzer_sys::fuzz_target;

fn parse_all(b: &[u8]) {
    let _ = response::get_random(b, 64);
    let _ = response::create_primary(b);
    let _ = response::create(b);
    let _ = response::load(b);
    if let Ok(secret) = response::unseal(b) {
        assert_eq!(secret.len(), 32);
    }
    let _ = response::flush_context(b);
    let _ = response::get_handles(b);
    if let Ok(blob) = SealedBlob::from_bytes(b) {
        assert_eq!(
            blob.to_bytes(),
            b,
            "a parsed blob does not write back to its bytes"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 || rest.len() < 5 {
        parse_all(rest);
        return;
    }
    let tag: u16 = if rest[0] & 1 == 0 { 0x8001 } else { 0x8002 };
    let code = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
    let code = if rest[0] & 2 == 0 { 0 } else { code };
    let body = &rest[5..];
    let mut b = Vec::with_capacity(10 + body.len());
    b.extend_from_slice(&tag.to_be_bytes());
    b.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    b.extend_from_slice(&code.to_be_bytes());
    b.extend_from_slice(body);
    parse_all(&b);
});
