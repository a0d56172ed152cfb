//! Fuzz target: the parsing wg-tunnel does itself before boringtun sees a packet. The input is
//! classified as a WireGuard datagram (type, length, receiver index -> peer slot) and read as
//! an IPv4 header; its bytes, cut in 5-byte records (address, prefix length), also fill a
//! cryptokey routing table that the packet's addresses are looked up in. Nothing may panic;
//! a classified message has its type's exact length; a parsed header lies inside the input;
//! a lookup only returns a network that contains the address, and the longest one. The input
//! is also a TUN read with its virtio header (a single packet passes whole; the segments of a
//! super-packet must be IPv4 and fit the segment buffer) and, in length-prefixed pieces, a stream of
//! decrypted packets through the TCP coalescer, whose output must carry a virtio header and be
//! no longer than a header plus 64 KiB.

#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use wg_tunnel::offload::{self, Coalescer, VNET_HDR_LEN};
use wg_tunnel::packet::{self, Message};
use wg_tunnel::{AllowedIps, Ipv4Net};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = packet::classify(data) {
        let want_ok = match m {
            Message::HandshakeInit => data.len() == packet::HANDSHAKE_INIT_LEN,
            Message::HandshakeResponse { .. } => data.len() == packet::HANDSHAKE_RESPONSE_LEN,
            Message::CookieReply { .. } => data.len() == packet::COOKIE_REPLY_LEN,
            Message::Data { .. } => data.len() >= packet::DATA_MIN_LEN,
        };
        assert!(want_ok, "{m:?} of {} bytes", data.len());
        assert_eq!(m.peer_index(), m.receiver().map(|r| r >> 8));
        assert!(m.peer_index().is_none_or(|p| p < 1 << 24));
    }

    let header = packet::ipv4_addrs(data);
    if header.is_some() {
        assert!(data.len() >= 20 && data[0] >> 4 == 4);
    }

    let mut table = AllowedIps::new();
    let mut nets = Vec::new();
    for (i, rec) in data.chunks_exact(5).take(64).enumerate() {
        let addr = Ipv4Addr::new(rec[0], rec[1], rec[2], rec[3]);
        match Ipv4Net::new(addr, rec[4]) {
            Ok(net) => {
                table.insert(net, i);
                nets.retain(|(n, _)| *n != net);
                nets.push((net, i));
            }
            Err(_) => assert!(rec[4] > 32),
        }
    }
    let mut probes = vec![Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST];
    if let Some(h) = header {
        probes.extend([h.src, h.dst]);
    }
    probes.extend(nets.iter().map(|(n, _)| n.addr()));
    for ip in probes {
        let expect = nets
            .iter()
            .filter(|(n, _)| n.contains(ip))
            .max_by_key(|(n, _)| n.prefix_len())
            .map(|(_, v)| *v);
        assert_eq!(table.lookup(ip), expect, "lookup of {ip}");
    }
    if let Some(&(_, gone)) = nets.first() {
        table.remove_value(gone);
        for (net, v) in &nets {
            if *v == gone {
                assert_eq!(table.get(*net), None);
            }
        }
    }

    let mut read = data.to_vec();
    let mut scratch = vec![0u8; 1500];
    let gso = offload::VnetHdr::parse(data).is_some_and(|h| h.gso_type != 0);
    let _ = offload::split(&mut read, &mut scratch, |seg| {
        // a single packet passes whole; segments of a super-packet fit the segment buffer
        assert!(seg.len() <= data.len() - VNET_HDR_LEN);
        if gso {
            assert!(seg.len() <= 1500 && seg.first().is_some_and(|b| b >> 4 == 4));
        }
    });

    let mut c = Coalescer::default();
    let check = |w: &[u8]| {
        assert!(w.len() >= VNET_HDR_LEN && w.len() <= VNET_HDR_LEN + 65_535);
    };
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (pkt, next) = tail.split_at(n);
        c.push(pkt, check);
        rest = next;
    }
    c.flush(check);
});
