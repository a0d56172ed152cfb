//! Segmentation and coalescing against independent checks: checksums verified by summing, a
//! super-packet cut and merged back to the same bytes, hostile TUN reads refused.

use super::offload::*;

/// RFC 1071 the slow way: 16-bit words, end-around carry.
fn verify(data: &[u8], pseudo: &[u8]) -> bool {
    let mut all = pseudo.to_vec();
    all.extend_from_slice(data);
    if all.len() % 2 == 1 {
        all.push(0);
    }
    let mut sum: u32 = 0;
    for w in all.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

fn pseudo(ip: &[u8], proto: u8) -> Vec<u8> {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let len = (ip.len() - ihl) as u16;
    let mut p = ip[12..20].to_vec();
    p.extend([0, proto]);
    p.extend(len.to_be_bytes());
    p
}

fn tcp_ok(seg: &[u8]) -> bool {
    verify(&seg[..20], &[]) && verify(&seg[20..], &pseudo(seg, 6))
}

/// An IPv4/TCP packet with timestamps-sized options, `payload` bytes, checksums left to fill.
fn tcp_packet(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + 32];
    p[0] = 0x45;
    let total = (52 + payload.len()) as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&[10, 89, 0, 2]);
    p[16..20].copy_from_slice(&[10, 89, 0, 1]);
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&5201u16.to_be_bytes());
    p[24..28].copy_from_slice(&seq.to_be_bytes());
    p[28..32].copy_from_slice(&77u32.to_be_bytes());
    p[32] = 8 << 4;
    p[33] = flags;
    p[34..36].copy_from_slice(&502u16.to_be_bytes());
    p[40..52].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7]);
    p.extend_from_slice(payload);
    p
}

fn fill_checksums(p: &mut [u8]) {
    p[10..12].fill(0);
    let c = !fold_sum(&p[..20], &[]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[36..38].fill(0);
    let ps = pseudo(p, 6);
    let c = !fold_sum(&p[20..], &ps);
    p[36..38].copy_from_slice(&c.to_be_bytes());
}

fn fold_sum(data: &[u8], pseudo: &[u8]) -> u16 {
    let mut all = pseudo.to_vec();
    all.extend_from_slice(data);
    if all.len() % 2 == 1 {
        all.push(0);
    }
    let mut sum: u32 = 0;
    for w in all.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn super_packet(data: &[u8], mss: u16, flags: u8) -> Vec<u8> {
    let hdr = VnetHdr {
        flags: 1,
        gso_type: 1,
        hdr_len: 52,
        gso_size: mss,
        csum_start: 20,
        csum_offset: 16,
    };
    let mut v = hdr.bytes().to_vec();
    v.extend(tcp_packet(1000, flags, data));
    v
}

#[test]
fn a_super_packet_is_cut_into_valid_segments() {
    let data = payload(5000);
    let mut read = super_packet(&data, 1368, 0x18 | 0x01); // ACK PSH FIN
    let mut scratch = vec![0u8; 1500];
    let mut segs = Vec::new();
    split(&mut read, &mut scratch, |s| segs.push(s.to_vec())).unwrap();
    assert_eq!(segs.len(), 4);
    let mut joined = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        assert!(tcp_ok(s), "segment {i} checksums");
        let len = u16::from_be_bytes([s[2], s[3]]) as usize;
        assert_eq!(len, s.len());
        assert_eq!(
            u32::from_be_bytes([s[24], s[25], s[26], s[27]]),
            1000 + (i * 1368) as u32
        );
        assert_eq!(u16::from_be_bytes([s[4], s[5]]), 0x1234 + i as u16);
        let last = i == segs.len() - 1;
        assert_eq!(s[33] & 0x09 != 0, last, "PSH/FIN only on the last");
        assert_eq!(&s[40..52], &[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7]);
        joined.extend_from_slice(&s[52..]);
    }
    assert_eq!(joined, data);
}

#[test]
fn a_partial_checksum_is_finished() {
    // UDP 10.0.0.1:1 -> 10.0.0.2:2 with the pseudo-header sum in its checksum field
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    let body = b"hello partial checksum";
    let udp_len = (8 + body.len()) as u16;
    ip[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
    let mut udp = vec![0, 1, 0, 2];
    udp.extend(udp_len.to_be_bytes());
    udp.extend([0, 0]);
    udp.extend_from_slice(body);
    let mut pkt = ip.clone();
    pkt.extend(&udp);
    let ps = pseudo(&pkt, 17);
    let partial = fold_sum(&[], &ps);
    pkt[26..28].copy_from_slice(&partial.to_be_bytes());
    let hdr = VnetHdr {
        flags: 1,
        gso_type: 0,
        csum_start: 20,
        csum_offset: 6,
        ..VnetHdr::default()
    };
    let mut read = hdr.bytes().to_vec();
    read.extend(&pkt);
    let mut out = Vec::new();
    split(&mut read, &mut [0u8; 64], |p| out.push(p.to_vec())).unwrap();
    assert_eq!(out.len(), 1);
    assert!(verify(&out[0][20..], &pseudo(&out[0], 17)));
}

#[test]
fn segments_coalesce_back_into_the_super_packet() {
    let data = payload(5000);
    let mut read = super_packet(&data, 1368, 0x18);
    let mut scratch = vec![0u8; 1500];
    let mut segs = Vec::new();
    split(&mut read, &mut scratch, |s| segs.push(s.to_vec())).unwrap();
    let mut c = Coalescer::default();
    let mut written = Vec::new();
    for s in &segs {
        c.push(s, |w| written.push(w.to_vec()));
    }
    assert!(written.is_empty(), "held until flushed");
    c.flush(|w| written.push(w.to_vec()));
    assert_eq!(written.len(), 1);
    let hdr = VnetHdr::parse(&written[0]).unwrap();
    assert_eq!((hdr.gso_type, hdr.gso_size, hdr.hdr_len), (1, 1368, 52));
    assert_eq!((hdr.csum_start, hdr.csum_offset, hdr.flags), (20, 16, 1));
    let merged = &written[0][10..];
    assert_eq!(&merged[52..], &data[..]);
    assert!(verify(&merged[..20], &[]), "IP checksum");
    assert_eq!(merged[33] & 0x08, 0x08, "PSH of the last segment kept");
    // and cut again (as the kernel would, forwarding it) it gives the same segments
    let mut again = Vec::new();
    let mut w = written[0].clone();
    split(&mut w, &mut scratch, |s| again.push(s.to_vec())).unwrap();
    assert_eq!(again, segs);
}

#[test]
fn only_in_order_segments_of_one_flow_coalesce() {
    let mut a = tcp_packet(1000, 0x10, &payload(100));
    fill_checksums(&mut a);
    let mut gap = tcp_packet(1200, 0x10, &payload(100)); // 1100 missing
    fill_checksums(&mut gap);
    let mut udp = a.clone();
    udp[9] = 17;
    let mut syn = tcp_packet(5, 0x02, &[]);
    fill_checksums(&mut syn);
    let mut c = Coalescer::default();
    let mut written = Vec::new();
    for p in [&a, &gap, &udp, &syn] {
        c.push(p, |w| written.push(w.to_vec()));
    }
    c.flush(|w| written.push(w.to_vec()));
    let bodies: Vec<&[u8]> = written.iter().map(|w| &w[10..]).collect();
    assert_eq!(
        bodies,
        [&a[..], &gap[..], &udp[..], &syn[..]],
        "all alone, in order"
    );
    assert!(
        written.iter().all(|w| w[..10] == [0; 10]),
        "plain header on singles"
    );
    // a shorter segment ends a run; the next starts a new one
    let mut c = Coalescer::default();
    let mut written = Vec::new();
    let mut seq = 1000;
    for len in [100, 100, 40, 100, 100] {
        let mut p = tcp_packet(seq, 0x10, &payload(len));
        fill_checksums(&mut p);
        seq += len as u32;
        c.push(&p, |w| written.push(w.to_vec()));
    }
    c.flush(|w| written.push(w.to_vec()));
    let sizes: Vec<usize> = written.iter().map(|w| w.len() - 10 - 52).collect();
    assert_eq!(sizes, [240, 200]);
}

#[test]
fn hostile_tun_reads_are_refused() {
    let mut scratch = vec![0u8; 1500];
    let mut none = |_: &[u8]| panic!("nothing may come out");
    assert!(split(&mut [0u8; 5], &mut scratch, &mut none).is_err());
    // checksum offset beyond the packet
    let hdr = VnetHdr {
        flags: 1,
        csum_start: 30,
        csum_offset: 16,
        ..VnetHdr::default()
    };
    let mut r = hdr.bytes().to_vec();
    r.extend([0x45u8; 40]);
    assert!(split(&mut r, &mut scratch, &mut none).is_err());
    // TCP super-packets with bad headers or sizes
    for (mss, edit) in [
        (0u16, None),
        (1500, None),
        (1000, Some((0usize, 0x65u8))),
        (1000, Some((9, 17))),
        (1000, Some((32, 0x10))),
    ] {
        let mut r = super_packet(&payload(3000), mss, 0x10);
        if let Some((at, v)) = edit {
            r[10 + at] = v;
        }
        assert!(
            split(&mut r, &mut scratch, &mut none).is_err(),
            "mss {mss} edit {edit:?}"
        );
    }
    let mut r = super_packet(&payload(100), 1000, 0x10);
    r[1] = 4; // GSO TCPv6
    assert!(split(&mut r, &mut scratch, &mut none).is_err());
    r.truncate(40);
    r[1] = 1;
    assert!(split(&mut r, &mut scratch, &mut none).is_err());
}
