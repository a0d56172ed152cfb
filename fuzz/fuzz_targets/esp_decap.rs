//! Fuzz target: agent-esp's inbound side. The input is (1) classified as a UDP/4500 datagram
//! (RFC 3948: IKE behind the non-ESP marker, keepalive, ESP with a non-reserved SPI); (2) opened
//! as an ESP packet by an inbound SA with a fixed key, raw and with our SPI patched in (it must
//! fail, before the window moves); (3) sealed as the encrypted part (payload | padding | pad
//! length | next header) with ring under the SA's key, so the trailer and inner IPv4 checks see
//! arbitrary authentic plaintext: an accepted packet is IPv4 whose total length is its length
//! and which lies in the plaintext's payload; (4) if the input is a sane IPv4 packet, it must
//! survive an outbound -> inbound round trip. Nothing may panic.

#![no_main]

use std::time::Instant;

use agent_esp::udp_encap::{self, Datagram};
use agent_esp::{Decapsulated, InboundSa, LifetimeLimits, OutboundSa, SaKey};
use libfuzzer_sys::fuzz_target;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

const SPI: u32 = 0x1234_5678;
const KEY: [u8; 32] = [0x42; 32];
const SALT: [u8; 4] = [1, 2, 3, 4];

fn inbound(now: Instant) -> InboundSa {
    InboundSa::new(SPI, &SaKey::new(KEY, SALT), LifetimeLimits::default(), now).expect("sa")
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();

    match udp_encap::classify(data) {
        Ok(Datagram::Ike(m)) => assert_eq!(&data[4..], m),
        Ok(Datagram::NatKeepalive) => assert_eq!(data, [0xff]),
        Ok(Datagram::Esp { spi, packet }) => {
            assert!(spi >= 256 && packet.len() >= 8 && packet == data)
        }
        Err(_) => {}
    }

    let mut sa = inbound(now);
    let mut raw = data.to_vec();
    assert!(sa.decapsulate(&mut raw, now).is_err());
    if raw.len() >= 4 {
        raw = data.to_vec();
        raw[..4].copy_from_slice(&SPI.to_be_bytes());
        assert!(sa.decapsulate(&mut raw, now).is_err());
    }
    assert_eq!(sa.window().highest(), 0);

    // arbitrary authentic plaintext, 4-byte aligned, at least the 2 trailer bytes
    let mut plain = data[..data.len() - data.len() % 4].to_vec();
    if plain.is_empty() {
        plain = vec![0, 4, 0, 4];
    }
    let seq: u32 = 7;
    let iv = u64::from(seq).to_be_bytes();
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&SALT);
    nonce[4..].copy_from_slice(&iv);
    let mut aad = [0u8; 8];
    aad[..4].copy_from_slice(&SPI.to_be_bytes());
    aad[4..].copy_from_slice(&seq.to_be_bytes());
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).expect("key"));
    let mut body = plain.clone();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut body,
    )
    .expect("seal");
    let mut pkt = aad.to_vec();
    pkt.extend_from_slice(&iv);
    pkt.extend_from_slice(&body);
    let mut sa = inbound(now);
    match sa.decapsulate(&mut pkt, now) {
        Ok(Decapsulated::Ipv4(inner)) => {
            assert_eq!(plain[plain.len() - 1], 4);
            let payload_len = plain.len() - 2 - usize::from(plain[plain.len() - 2]);
            assert!(inner.len() <= payload_len);
            assert_eq!(inner, &plain[..inner.len()]);
            assert_eq!(inner[0] >> 4, 4);
            assert_eq!(
                usize::from(u16::from_be_bytes([inner[2], inner[3]])),
                inner.len()
            );
        }
        Ok(Decapsulated::Dummy) => assert_eq!(plain[plain.len() - 1], 59),
        Err(_) => {}
    }
    // authentic, whatever it held: the window moved and a replay is refused
    assert_eq!(sa.window().highest(), seq);

    if let Ok(ip) = agent_esp::inner::check_ipv4(data) {
        let mut out = OutboundSa::new(SPI, &SaKey::new(KEY, SALT), LifetimeLimits::default(), now)
            .expect("sa");
        let mut sealed = Vec::new();
        out.encapsulate(data, &mut sealed, now).expect("seal");
        let mut sa = inbound(now);
        assert_eq!(sa.decapsulate(&mut sealed, now), Ok(Decapsulated::Ipv4(ip)));
    }
});
