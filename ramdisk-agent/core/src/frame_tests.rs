//! Tests of frame building and parsing, including hostile frames. No IO.

use super::*;
use proptest::prelude::*;

const CLIENT: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);

fn sample(payload: &[u8]) -> Vec<u8> {
    build_udp(
        &UdpFrame {
            dst_mac: BROADCAST_MAC,
            src_mac: CLIENT,
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::BROADCAST,
            src_port: 68,
            dst_port: 67,
            payload,
        },
        0x1234,
    )
    .unwrap()
}

/// Recomputes the IP header checksum after a deliberate edit.
fn fix_ip_checksum(f: &mut [u8]) {
    let ihl = usize::from(f[ETH_HEADER] & 0x0f) * 4;
    f[ETH_HEADER + 10] = 0;
    f[ETH_HEADER + 11] = 0;
    let sum = internet_checksum(&[&f[ETH_HEADER..ETH_HEADER + ihl]]);
    f[ETH_HEADER + 10..ETH_HEADER + 12].copy_from_slice(&sum.to_be_bytes());
}

#[test]
fn checksum_matches_known_vectors() {
    // RFC 1071 section 3 example: the sum is 0xddf2, so the checksum is its complement.
    assert_eq!(
        internet_checksum(&[&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]]),
        !0xddf2
    );
    // A classic IPv4 header (192.168.0.1 -> 192.168.0.199, UDP) whose checksum is 0xb861.
    let hdr = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];
    assert_eq!(internet_checksum(&[&hdr]), 0xb861);
    // Splitting the input at an odd boundary does not change the sum.
    assert_eq!(internet_checksum(&[&hdr[..3], &hdr[3..]]), 0xb861);
}

#[test]
fn builds_the_frame_a_dhcp_client_sends() {
    let f = sample(b"hello");
    assert_eq!(f.len(), ETH_HEADER + IPV4_HEADER + UDP_HEADER + 5);
    assert_eq!(&f[..6], &[0xff; 6]);
    assert_eq!(&f[6..12], &CLIENT.octets());
    assert_eq!(&f[12..14], &[0x08, 0x00]);
    assert_eq!(f[14], 0x45);
    assert_eq!(&f[16..18], &(33u16).to_be_bytes());
    assert_eq!(&f[18..20], &[0x12, 0x34]);
    assert_eq!(f[20], 0x40, "DF");
    assert_eq!(f[22], 64, "TTL");
    assert_eq!(&f[26..30], &[0, 0, 0, 0]);
    assert_eq!(&f[30..34], &[255; 4]);
    assert_eq!(&f[34..38], &[0, 68, 0, 67]);
    assert_ne!(&f[40..42], &[0, 0], "UDP checksum is filled in");
    let p = parse_udp(&f).unwrap();
    assert_eq!((p.src_port, p.dst_port, p.payload), (68, 67, &b"hello"[..]));
    assert_eq!((p.src_mac, p.dst_mac), (CLIENT, BROADCAST_MAC));
    assert_eq!(
        (p.src_ip, p.dst_ip),
        (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
    );
}

#[test]
fn refuses_oversized_payloads() {
    let big = vec![0u8; MAX_PAYLOAD + 1];
    let f = UdpFrame {
        dst_mac: BROADCAST_MAC,
        src_mac: CLIENT,
        src_ip: Ipv4Addr::UNSPECIFIED,
        dst_ip: Ipv4Addr::BROADCAST,
        src_port: 68,
        dst_port: 67,
        payload: &big,
    };
    assert_eq!(
        build_udp(&f, 0),
        Err(FrameError::PayloadTooLarge {
            len: MAX_PAYLOAD + 1,
            max: MAX_PAYLOAD
        })
    );
    assert!(
        build_udp(
            &UdpFrame {
                payload: &big[1..],
                ..f
            },
            0
        )
        .is_ok()
    );
}

#[test]
fn ethernet_padding_is_ignored_and_ip_options_skipped() {
    let mut f = sample(b"x");
    f.extend_from_slice(&[0u8; 17]);
    assert_eq!(parse_udp(&f).unwrap().payload, b"x");

    // Insert a 4-byte IP option (NOP NOP NOP EOL) and fix up lengths and the checksum.
    let f = sample(b"abc");
    let mut g = f[..ETH_HEADER + IPV4_HEADER].to_vec();
    g.extend_from_slice(&[1, 1, 1, 0]);
    g.extend_from_slice(&f[ETH_HEADER + IPV4_HEADER..]);
    g[ETH_HEADER] = 0x46;
    let total = u16::from_be_bytes([g[16], g[17]]) + 4;
    g[16..18].copy_from_slice(&total.to_be_bytes());
    fix_ip_checksum(&mut g);
    assert_eq!(parse_udp(&g).unwrap().payload, b"abc");
}

#[test]
fn hostile_frames_are_refused_with_the_reason() {
    let good = sample(b"payload!");
    let edit = |f: fn(&mut Vec<u8>), fix: bool| {
        let mut g = good.clone();
        f(&mut g);
        if fix {
            fix_ip_checksum(&mut g);
        }
        parse_udp(&g).map(|f| f.payload.to_vec())
    };
    assert!(matches!(parse_udp(&[]), Err(FrameError::TooShort { .. })));
    assert_eq!(
        edit(|g| g[12] = 0x86, false),
        Err(FrameError::NotIpv4(0x8600))
    );
    assert_eq!(edit(|g| g[14] = 0x65, true), Err(FrameError::IpVersion(6)));
    assert_eq!(
        edit(|g| g[14] = 0x44, true),
        Err(FrameError::IpHeaderLength(4))
    );
    assert_eq!(
        edit(|g| g[16..18].copy_from_slice(&1000u16.to_be_bytes()), true),
        Err(FrameError::IpTotalLength {
            total: 1000,
            available: 36
        })
    );
    assert!(matches!(
        edit(|g| g[16..18].copy_from_slice(&20u16.to_be_bytes()), true),
        Err(FrameError::TooShort {
            len: 20,
            need: 28,
            ..
        })
    ));
    assert_eq!(
        edit(|g| g[20] = 0x20, true),
        Err(FrameError::Fragment),
        "more fragments"
    );
    assert_eq!(
        edit(|g| g[21] = 0x08, true),
        Err(FrameError::Fragment),
        "offset"
    );
    assert_eq!(edit(|g| g[23] = 6, true), Err(FrameError::NotUdp(6)));
    assert_eq!(edit(|g| g[22] = 1, false), Err(FrameError::IpChecksum));
    assert_eq!(edit(|g| g[45] ^= 1, false), Err(FrameError::UdpChecksum));
    assert_eq!(
        edit(|g| g[38..40].copy_from_slice(&9u16.to_be_bytes()), false),
        Err(FrameError::UdpLength { udp: 9, ip: 16 })
    );
    assert_eq!(
        edit(|g| g[38..40].copy_from_slice(&4u16.to_be_bytes()), false),
        Err(FrameError::UdpLength { udp: 4, ip: 16 })
    );
    // A zero UDP checksum means "not computed" (RFC 768) and is accepted.
    let g = edit(|g| g[40..42].copy_from_slice(&[0, 0]), false).unwrap();
    assert_eq!(g, b"payload!");
    // A checksum the kernel reports as "not ready" (offload) is not checked; the IP one still is.
    let mut partial = good.clone();
    partial[40] ^= 0x5a;
    assert_eq!(parse_udp(&partial), Err(FrameError::UdpChecksum));
    assert_eq!(
        parse_udp_with(&partial, UdpChecksum::NotReady)
            .unwrap()
            .payload,
        b"payload!"
    );
    partial[22] = 1;
    assert_eq!(
        parse_udp_with(&partial, UdpChecksum::NotReady),
        Err(FrameError::IpChecksum)
    );
    // Every truncation fails cleanly.
    for n in 0..good.len() {
        assert!(
            parse_udp(&good[..n]).is_err(),
            "prefix of {n} bytes accepted"
        );
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_udp(&bytes);
    }

    #[test]
    fn near_valid_frames_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 42..120)) {
        bytes[12] = 0x08;
        bytes[13] = 0x00;
        bytes[14] = 0x45;
        let _ = parse_udp(&bytes);
    }

    #[test]
    fn round_trips(payload in proptest::collection::vec(any::<u8>(), 0..MAX_PAYLOAD), id: u16,
                   src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16) {
        let f = UdpFrame {
            dst_mac: BROADCAST_MAC,
            src_mac: CLIENT,
            src_ip: Ipv4Addr::from(src),
            dst_ip: Ipv4Addr::from(dst),
            src_port: sp,
            dst_port: dp,
            payload: &payload,
        };
        let bytes = build_udp(&f, id).unwrap();
        prop_assert_eq!(parse_udp(&bytes).unwrap(), f);
    }

    /// One's-complement checksums catch every single-bit error in the IP and UDP parts (except
    /// one that turns the UDP checksum into zero, which means "no checksum").
    #[test]
    fn single_bit_flips_are_caught(payload in proptest::collection::vec(any::<u8>(), 0..64),
                                   pos in 14usize..1000, bit in 0u8..8) {
        let mut bytes = sample(&payload);
        let pos = 14 + pos % (bytes.len() - 14);
        bytes[pos] ^= 1 << bit;
        let zero_udp_sum = bytes[40] == 0 && bytes[41] == 0;
        prop_assert!(parse_udp(&bytes).is_err() || zero_udp_sum);
    }
}
