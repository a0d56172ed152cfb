//! Known-answer tests: the crate's ESP packet against bytes assembled by other paths.
//! - a vector computed offline with Python's `cryptography` AESGCM (OpenSSL), from the RFC 4106
//!   layout: nonce = salt | IV, AAD = SPI | sequence (no ESN), plaintext = inner | 1 2 | 2 | 4;
//! - ring driven directly by the test (`common::seal_raw`) for many sizes and sequence numbers.

mod common;

use std::time::Instant;

use agent_esp::{Decapsulated, LifetimeLimits, OutboundSa, packet};
use common::{SPI, ipv4, key, pair, seal_raw, trailer};

/// python3: AESGCM(KEY).encrypt(SALT + IV, inner + bytes([1, 2, 2, 4]), SPI + SEQ), inner =
/// `common::ipv4(8, 0xab)`, SPI c0ffee01, sequence 1, IV 00000000 00000001.
const VECTOR: &str = "c0ffee01000000010000000000000001\
                      e2fbd6a6ef1fd68a20b53c466cb6815fcbcc93f18f01c315e94c98efda7f3e17\
                      c0dac723266e9b97b58cc91f8a5f8546";

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn first_packet_matches_the_openssl_vector() {
    let now = Instant::now();
    let mut out = OutboundSa::new(SPI, &key(), LifetimeLimits::default(), now).expect("sa");
    let inner = ipv4(8, 0xab);
    let mut pkt = Vec::new();
    assert_eq!(out.encapsulate(&inner, &mut pkt, now), Ok(1));
    assert_eq!(pkt, unhex(VECTOR));
    assert_eq!(pkt.len(), 64);
}

#[test]
fn the_openssl_vector_opens_to_the_inner_packet() {
    let now = Instant::now();
    let (_, mut inb) = pair(LifetimeLimits::default(), now);
    let mut pkt = unhex(VECTOR);
    let got = inb.decapsulate(&mut pkt, now).expect("open");
    assert_eq!(got, Decapsulated::Ipv4(&ipv4(8, 0xab)[..]));
}

#[test]
fn every_size_matches_ring_driven_directly() {
    let now = Instant::now();
    let (mut out, _) = pair(LifetimeLimits::default(), now);
    let mut pkt = Vec::new();
    for (i, len) in (0..=1480).step_by(7).enumerate() {
        let inner = ipv4(len, len as u8);
        let seq = out.encapsulate(&inner, &mut pkt, now).expect("seal");
        assert_eq!(seq as usize, i + 1);
        let expected = seal_raw(
            SPI,
            seq,
            u64::from(seq).to_be_bytes(),
            &trailer(&inner, packet::NEXT_IPV4),
        );
        assert_eq!(pkt, expected, "inner length {}", inner.len());
        assert_eq!((pkt.len() - 32) % 4, 0);
    }
}

#[test]
fn dummy_packets_use_next_header_59() {
    let now = Instant::now();
    let (mut out, mut inb) = pair(LifetimeLimits::default(), now);
    let mut pkt = Vec::new();
    let seq = out.encapsulate_dummy(5, &mut pkt, now).expect("seal");
    let expected = seal_raw(SPI, seq, [0, 0, 0, 0, 0, 0, 0, 1], &trailer(&[0; 5], 59));
    assert_eq!(pkt, expected);
    assert_eq!(inb.decapsulate(&mut pkt, now), Ok(Decapsulated::Dummy));
}
