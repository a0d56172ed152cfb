//! Hostile input to the inbound SA and the RFC 3948 classifier: every flipped bit, every
//! truncation, authentic packets with bad padding, next header or inner packet, and arbitrary
//! bytes. Each is refused with its own reason, the SA unchanged where it must be, no panic.

mod common;

use std::time::Instant;

use agent_esp::inner::InnerError;
use agent_esp::udp_encap::{self, Datagram};
use agent_esp::{ClassifyError, DecapError, Decapsulated, InboundSa, LifetimeLimits, packet};
use common::{SPI, ipv4, key, pair, seal_raw, trailer};
use proptest::prelude::*;

fn fresh() -> InboundSa {
    InboundSa::new(SPI, &key(), LifetimeLimits::default(), Instant::now()).expect("sa")
}

fn one_packet(len: usize) -> Vec<u8> {
    let now = Instant::now();
    let (mut out, _) = pair(LifetimeLimits::default(), now);
    out.skip_to(41);
    let mut p = Vec::new();
    out.encapsulate(&ipv4(len, 0x5a), &mut p, now)
        .expect("seal");
    p
}

#[test]
fn every_flipped_bit_is_refused_and_leaves_the_window_alone() {
    let now = Instant::now();
    let good = one_packet(33);
    for byte in 0..good.len() {
        for bit in 0..8 {
            let mut inb = fresh();
            let mut p = good.clone();
            p[byte] ^= 1 << bit;
            let e = inb.decapsulate(&mut p, now).expect_err("tampered");
            match byte {
                0..=3 => assert!(matches!(e, DecapError::WrongSpi { .. }), "{e}"),
                // sequence number 42 with any one bit flipped is still non-zero and new to a
                // fresh SA, so every other flip reaches (and fails) the ICV check
                _ => assert!(
                    matches!(e, DecapError::Integrity { spi: SPI, .. }),
                    "byte {byte} bit {bit}: {e}"
                ),
            }
            assert_eq!(inb.window().highest(), 0, "byte {byte} bit {bit}");
            assert_eq!(inb.lifetime().packets(), 0);
        }
    }
    // the untouched packet still opens in a fresh SA
    assert!(fresh().decapsulate(&mut good.clone(), now).is_ok());
}

#[test]
fn every_truncation_is_refused() {
    let now = Instant::now();
    let good = one_packet(100);
    for len in 0..good.len() {
        let mut inb = fresh();
        let e = inb
            .decapsulate(&mut good[..len].to_vec(), now)
            .expect_err("truncated");
        let ok = match e {
            DecapError::TooShort { len: l, min } => l == len && min == packet::MIN_PACKET,
            DecapError::Misaligned { .. } | DecapError::Integrity { .. } => true,
            _ => false,
        };
        assert!(ok, "length {len}: {e}");
        assert_eq!(inb.window().highest(), 0);
    }
}

#[test]
fn packets_for_another_spi_or_with_sequence_0_are_refused() {
    let now = Instant::now();
    let mut p = seal_raw(
        SPI + 1,
        1,
        [0, 0, 0, 0, 0, 0, 0, 1],
        &trailer(&ipv4(4, 1), 4),
    );
    assert_eq!(
        fresh().decapsulate(&mut p, now),
        Err(DecapError::WrongSpi {
            expected: SPI,
            got: SPI + 1
        })
    );
    let mut p = seal_raw(SPI, 0, [0; 8], &trailer(&ipv4(4, 1), 4));
    assert_eq!(
        fresh().decapsulate(&mut p, now),
        Err(DecapError::ZeroSequence { spi: SPI })
    );
}

#[test]
fn authentic_packets_with_bad_padding_are_refused() {
    let now = Instant::now();
    let inner = ipv4(8, 3); // 28 bytes: 2 bytes of padding
    let cases: Vec<(Vec<u8>, DecapError)> = vec![
        // padding 1, 3 instead of 1, 2
        (
            [&inner[..], &[1, 3, 2, 4]].concat(),
            DecapError::Padding {
                spi: SPI,
                index: 1,
                got: 3,
                expected: 2,
            },
        ),
        // zeros as padding
        (
            [&inner[..], &[0, 0, 2, 4]].concat(),
            DecapError::Padding {
                spi: SPI,
                index: 0,
                got: 0,
                expected: 1,
            },
        ),
        // a pad length beyond the plaintext
        (
            [&inner[..], &[1, 2, 200, 4]].concat(),
            DecapError::PadLength {
                spi: SPI,
                pad_len: 200,
                len: 32,
            },
        ),
        // long but monotonic padding is fine for RFC 4303; the inner packet then is cut short
        (
            [&inner[..24], &[1, 2, 3, 4, 5, 6, 6, 4]].concat(),
            DecapError::Inner {
                spi: SPI,
                source: InnerError::TotalLength {
                    total: 28,
                    len: 24,
                    ihl_bytes: 20,
                },
            },
        ),
    ];
    for (seq, (plain, want)) in cases.into_iter().enumerate() {
        let seq = seq as u32 + 1;
        let mut inb = fresh();
        let mut p = seal_raw(SPI, seq, u64::from(seq).to_be_bytes(), &plain);
        assert_eq!(inb.decapsulate(&mut p, now), Err(want));
        // authentic: the window moved, a replay is refused as such
        assert_eq!(inb.window().highest(), seq);
        let mut p = seal_raw(SPI, seq, u64::from(seq).to_be_bytes(), &plain);
        assert!(matches!(
            inb.decapsulate(&mut p, now),
            Err(DecapError::Replayed { .. })
        ));
    }
}

#[test]
fn next_headers_other_than_4_and_59_are_refused() {
    let now = Instant::now();
    for nh in [0u8, 6, 17, 41, 50, 58, 60, 255] {
        let mut p = seal_raw(SPI, 1, [0, 0, 0, 0, 0, 0, 0, 1], &trailer(&ipv4(8, 1), nh));
        assert_eq!(
            fresh().decapsulate(&mut p, now),
            Err(DecapError::NextHeader { spi: SPI, got: nh })
        );
    }
    let mut p = seal_raw(SPI, 1, [0, 0, 0, 0, 0, 0, 0, 1], &trailer(b"anything", 59));
    assert_eq!(fresh().decapsulate(&mut p, now), Ok(Decapsulated::Dummy));
}

#[test]
fn inner_packets_that_are_not_sane_ipv4_are_refused() {
    let now = Instant::now();
    let good = ipv4(12, 9);
    let mut v6 = good.clone();
    v6[0] = 0x60;
    let mut short_ihl = good.clone();
    short_ihl[0] = 0x44;
    let mut long_ihl = good.clone();
    long_ihl[0] = 0x4f;
    let mut long_total = good.clone();
    long_total[3] = 33;
    let mut short_total = good.clone();
    short_total[3] = 19;
    let cases = [
        (vec![], InnerError::TooShort { len: 0 }),
        (good[..19].to_vec(), InnerError::TooShort { len: 19 }),
        (v6, InnerError::Version { version: 6 }),
        (
            short_ihl,
            InnerError::HeaderLength {
                ihl_bytes: 16,
                len: 32,
            },
        ),
        (
            long_ihl,
            InnerError::HeaderLength {
                ihl_bytes: 60,
                len: 32,
            },
        ),
        (
            long_total,
            InnerError::TotalLength {
                total: 33,
                len: 32,
                ihl_bytes: 20,
            },
        ),
        (
            short_total,
            InnerError::TotalLength {
                total: 19,
                len: 32,
                ihl_bytes: 20,
            },
        ),
    ];
    for (inner, want) in cases {
        let mut p = seal_raw(SPI, 1, [0, 0, 0, 0, 0, 0, 0, 1], &trailer(&inner, 4));
        assert_eq!(
            fresh().decapsulate(&mut p, now),
            Err(DecapError::Inner {
                spi: SPI,
                source: want
            })
        );
    }
}

#[test]
fn the_classifier_tells_ike_keepalive_and_esp_apart() {
    let esp = one_packet(1);
    assert_eq!(
        udp_encap::classify(&esp),
        Ok(Datagram::Esp {
            spi: SPI,
            packet: &esp[..]
        })
    );
    assert_eq!(udp_encap::classify(&[0xff]), Ok(Datagram::NatKeepalive));
    let mut ike = Vec::new();
    udp_encap::ike_datagram(b"IKE header and payloads", &mut ike);
    assert_eq!(&ike[..4], &[0, 0, 0, 0]);
    assert_eq!(
        udp_encap::classify(&ike),
        Ok(Datagram::Ike(&b"IKE header and payloads"[..]))
    );
    assert_eq!(
        udp_encap::classify(&udp_encap::nat_keepalive()),
        Ok(Datagram::NatKeepalive)
    );
    assert_eq!(udp_encap::esp_datagram(&esp), &esp[..]);

    assert_eq!(udp_encap::classify(&[]), Err(ClassifyError::Empty));
    assert_eq!(
        udp_encap::classify(&[0, 0, 0, 0]),
        Err(ClassifyError::EmptyIke)
    );
    for short in [&[0xfe][..], &[0xff, 0xff], &[0, 0], &[1, 2, 3, 4, 5, 6, 7]] {
        assert_eq!(
            udp_encap::classify(short),
            Err(ClassifyError::TooShortForEsp { len: short.len() })
        );
    }
    assert_eq!(
        udp_encap::classify(&[0, 0, 0, 255, 0, 0, 0, 1]),
        Err(ClassifyError::ReservedSpi { spi: 255 })
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_never_open(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let now = Instant::now();
        let mut inb = fresh();
        let _ = udp_encap::classify(&bytes);
        let mut b = bytes.clone();
        // forced onto our SPI so the bytes reach the replay check and the ICV
        if b.len() >= 4 {
            b[..4].copy_from_slice(&SPI.to_be_bytes());
        }
        prop_assert!(inb.decapsulate(&mut b, now).is_err());
        prop_assert_eq!(inb.window().highest(), 0);
    }
}
