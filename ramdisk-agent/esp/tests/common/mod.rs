//! Shared test helpers: hand-made keys, IPv4 packets, and an independent ESP sealer built
//! directly on ring from the RFC 4106 layout (not from the crate's code).
#![allow(dead_code)]

pub mod net;

use std::time::Instant;

use agent_esp::{InboundSa, LifetimeLimits, OutboundSa, SaKey};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

pub const SPI: u32 = 0xc0ff_ee01;
pub const KEY: [u8; 32] = [
    0x4c, 0x80, 0xcd, 0xef, 0xbb, 0x5d, 0x10, 0xda, 0x90, 0x6a, 0xc7, 0x3c, 0x36, 0x13, 0xa6, 0x34,
    0x2e, 0x6a, 0x4b, 0x1b, 0x07, 0x5c, 0x08, 0x2d, 0x4d, 0x81, 0x1b, 0xce, 0x32, 0x88, 0x10, 0x01,
];
pub const SALT: [u8; 4] = [0x2e, 0x44, 0x3b, 0x68];

pub fn key() -> SaKey {
    SaKey::new(KEY, SALT)
}

pub fn pair(limits: LifetimeLimits, now: Instant) -> (OutboundSa, InboundSa) {
    (
        OutboundSa::new(SPI, &key(), limits, now).expect("outbound"),
        InboundSa::new(SPI, &key(), limits, now).expect("inbound"),
    )
}

/// An IPv4/UDP-looking packet (protocol 17) with `payload_len` payload bytes of `fill`.
pub fn ipv4(payload_len: usize, fill: u8) -> Vec<u8> {
    let total = 20 + payload_len;
    let mut p = vec![fill; total];
    p[0] = 0x45;
    p[1] = 0;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..8].copy_from_slice(&[0, 1, 0x40, 0]);
    p[8] = 64;
    p[9] = 17;
    p[10..12].copy_from_slice(&[0, 0]);
    p[12..16].copy_from_slice(&[10, 93, 0, 1]);
    p[16..20].copy_from_slice(&[10, 93, 0, 2]);
    p
}

/// Seals `plaintext` (payload | padding | pad length | next header, as given) into an ESP
/// packet with ring directly: nonce = salt | IV, AAD = SPI | seq, IV = the 8 bytes given.
pub fn seal_raw(spi: u32, seq: u32, iv: [u8; 8], plaintext: &[u8]) -> Vec<u8> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).expect("key"));
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&SALT);
    nonce[4..].copy_from_slice(&iv);
    let mut aad = [0u8; 8];
    aad[..4].copy_from_slice(&spi.to_be_bytes());
    aad[4..].copy_from_slice(&seq.to_be_bytes());
    let mut body = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut body,
    )
    .expect("seal");
    let mut out = aad.to_vec();
    out.extend_from_slice(&iv);
    out.extend_from_slice(&body);
    out
}

/// payload | 1, 2, .. pad | pad | next header, padded to 4 bytes.
pub fn trailer(payload: &[u8], next_header: u8) -> Vec<u8> {
    let pad = (4 - (payload.len() + 2) % 4) % 4;
    let mut p = payload.to_vec();
    p.extend((1..=pad).map(|i| i as u8));
    p.push(pad as u8);
    p.push(next_header);
    p
}
