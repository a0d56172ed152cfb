//! Unit tests of `wol`: magic packets in every carrier, and hostile frames (short, almost
//! magic, IPv4 options, fragments, lying length fields). No IO.

use super::*;

const TARGET: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x77, 0x00, 0x01]);
const SENDER: MacAddr = MacAddr([0x02, 0x77, 0x00, 0x00, 0x00, 0x01]);

fn eth(ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&SENDER.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

fn udp_seg(port: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = vec![0xc0, 0x00];
    u.extend_from_slice(&port.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// IPv4 packet with `opt_words` 32-bit words of options (NOPs) around a UDP datagram.
fn ipv4_udp(opt_words: u8, port: u16, payload: &[u8]) -> Vec<u8> {
    let seg = udp_seg(port, payload);
    let ihl = 5 + opt_words;
    let total = (usize::from(ihl) * 4 + seg.len()) as u16;
    let mut ip = vec![0x40 | ihl, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[
        0, 1, 0x40, 0, 64, 17, 0, 0, 10, 77, 0, 1, 255, 255, 255, 255,
    ]);
    ip.extend(std::iter::repeat_n(1u8, usize::from(opt_words) * 4));
    ip.extend_from_slice(&seg);
    ip
}

fn ipv6_udp(port: u16, payload: &[u8]) -> Vec<u8> {
    let seg = udp_seg(port, payload);
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[17, 64]);
    ip.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ip.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ip.extend_from_slice(&seg);
    ip
}

#[test]
fn finds_every_carrier() {
    let magic = magic_payload(TARGET);
    assert_eq!(magic.len(), MAGIC_LEN);
    let frame = ethertype_frame(SENDER, TARGET);
    assert_eq!(&frame[12..14], &[0x08, 0x42]);
    assert_eq!(parse_frame(&frame), Some((TARGET, WakeVia::EtherType)));
    let udp4 = eth(0x0800, &ipv4_udp(0, 9, &magic));
    assert_eq!(parse_frame(&udp4), Some((TARGET, WakeVia::Udp { port: 9 })));
    let udp6 = eth(0x86dd, &ipv6_udp(7, &magic));
    assert_eq!(parse_frame(&udp6), Some((TARGET, WakeVia::Udp { port: 7 })));
    assert_eq!(WakeVia::Udp { port: 7 }.method(), WakeMethod::UdpBroadcast);
    assert_eq!(WakeVia::EtherType.method(), WakeMethod::Ethertype0842);
}

#[test]
fn skips_ipv4_options_and_ignores_padding_past_total_length() {
    let magic = magic_payload(TARGET);
    for words in [1, 10] {
        let mut frame = eth(0x0800, &ipv4_udp(words, 40000, &magic));
        frame.extend_from_slice(&[0xaa; 30]); // Ethernet trailer/padding
        assert_eq!(
            parse_frame(&frame),
            Some((TARGET, WakeVia::Udp { port: 40000 })),
            "{words}"
        );
    }
    // the magic only in bytes past the IPv4 total length (padding) does not count
    let mut short = ipv4_udp(0, 9, &[]);
    short.extend_from_slice(&magic);
    assert_eq!(parse_frame(&eth(0x0800, &short)), None);
}

#[test]
fn finds_magic_anywhere_with_extra_ff_and_password() {
    let mut p = vec![0x00, 0x13, 0xff, 0xff];
    p.extend_from_slice(&[0xff; 3]); // 7 x 0xff before the MAC
    p.extend_from_slice(&magic_payload(TARGET)[2..]);
    p.extend_from_slice(&[1, 2, 3, 4, 5, 6]); // SecureOn password
    assert_eq!(find_magic(&p), Some(TARGET));
}

#[test]
fn almost_magic_is_not_magic() {
    let magic = magic_payload(TARGET);
    assert_eq!(
        find_magic(&magic[..MAGIC_LEN - 1]),
        None,
        "15 repetitions and a bit"
    );
    for flip in [0, 5, 6, 50, MAGIC_LEN - 1] {
        let mut m = magic.clone();
        m[flip] ^= 0x01;
        assert_eq!(find_magic(&m), None, "byte {flip} changed");
    }
    assert_eq!(find_magic(&[0xff; 200]), None, "broadcast target");
    let mcast = MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]);
    assert_eq!(find_magic(&magic_payload(mcast)), None, "multicast target");
    assert_eq!(find_magic(&[]), None);
}

#[test]
fn hostile_frames_do_not_panic_or_match() {
    let magic = magic_payload(TARGET);
    let good = eth(0x0800, &ipv4_udp(2, 9, &magic));
    for cut in 0..good.len() {
        assert_eq!(parse_frame(&good[..cut]), None, "cut at {cut}");
    }
    let ip_start = 14;
    let mut bad_ihl = good.clone();
    bad_ihl[ip_start] = 0x44; // IHL 4 words < 20 bytes
    assert_eq!(parse_frame(&bad_ihl), None);
    let mut huge_ihl = good.clone();
    huge_ihl[ip_start] = 0x4f; // IHL 60 bytes runs into the payload
    assert_eq!(parse_frame(&huge_ihl), None);
    let mut v6_in_v4 = good.clone();
    v6_in_v4[ip_start] = 0x67;
    assert_eq!(parse_frame(&v6_in_v4), None);
    let mut fragment = good.clone();
    fragment[ip_start + 7] = 1; // fragment offset 8 bytes
    assert_eq!(parse_frame(&fragment), None);
    let mut tcp = good.clone();
    tcp[ip_start + 9] = 6;
    assert_eq!(parse_frame(&tcp), None);
    let mut total_small = good.clone();
    total_small[ip_start + 2..ip_start + 4].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(parse_frame(&total_small), None);
    let udp_start = ip_start + 28;
    let mut udp_len_small = good.clone();
    udp_len_small[udp_start + 4..udp_start + 6].copy_from_slice(&7u16.to_be_bytes());
    assert_eq!(parse_frame(&udp_len_small), None);
    let mut udp_len_short = good.clone();
    udp_len_short[udp_start + 4..udp_start + 6].copy_from_slice(&50u16.to_be_bytes());
    assert_eq!(
        parse_frame(&udp_len_short),
        None,
        "payload cut to 42 bytes by the UDP length"
    );
    let mut udp_len_huge = good.clone();
    udp_len_huge[udp_start + 4..udp_start + 6].copy_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(
        parse_frame(&udp_len_huge),
        Some((TARGET, WakeVia::Udp { port: 9 }))
    );
    // a VLAN tag is not looked into
    let mut vlan = eth(0x8100, &[0x00, 0x05, 0x08, 0x42]);
    vlan.extend_from_slice(&magic);
    assert_eq!(parse_frame(&vlan), None);
    assert_eq!(
        parse_frame(&eth(0x0842, &magic[..50])),
        None,
        "short 0x0842 payload"
    );
    let v6 = eth(0x86dd, &ipv6_udp(9, &magic));
    for cut in 0..v6.len() {
        assert_eq!(parse_frame(&v6[..cut]), None, "IPv6 cut at {cut}");
    }
}
