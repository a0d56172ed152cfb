//! Wake-on-LAN magic packets: finding one in an Ethernet frame as an AF_PACKET socket returns
//! it (UDP over IPv4 or IPv6 to any port, or EtherType 0x0842), and building them.
//!
//! Pure. The listener on the bridge is in [`crate::wol_listener`].
//!
//! A magic packet is 6 bytes 0xFF followed by the target MAC 16 times, anywhere in the payload
//! (a SecureOn password may follow; it is ignored). 802.1Q-tagged frames are not looked into:
//! the lab bridge carries none.

use lm_api::{MacAddr, WakeMethod};

/// EtherType of raw Wake-on-LAN frames.
pub const ETHERTYPE_WOL: u16 = 0x0842;
/// Length of the magic sequence.
pub const MAGIC_LEN: usize = 6 + 16 * 6;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPPROTO_UDP: u8 = 17;

/// How a magic packet arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WakeVia {
    /// In a UDP datagram (IPv4 or IPv6) to this destination port.
    Udp {
        /// Destination port (9 or 7 usually).
        port: u16,
    },
    /// In an Ethernet frame with EtherType 0x0842.
    EtherType,
}

impl WakeVia {
    /// The matching method of the LM's contract (any UDP magic packet counts as the broadcast
    /// method; the destination address is not checked).
    pub fn method(&self) -> WakeMethod {
        match self {
            WakeVia::Udp { .. } => WakeMethod::UdpBroadcast,
            WakeVia::EtherType => WakeMethod::Ethertype0842,
        }
    }
}

/// The 102-byte magic sequence for `target`.
pub fn magic_payload(target: MacAddr) -> Vec<u8> {
    let mut p = vec![0xff; 6];
    for _ in 0..16 {
        p.extend_from_slice(&target.0);
    }
    p
}

/// A broadcast Ethernet frame with EtherType 0x0842 from `src` carrying the magic for `target`.
pub fn ethertype_frame(src: MacAddr, target: MacAddr) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ETHERTYPE_WOL.to_be_bytes());
    f.extend_from_slice(&magic_payload(target));
    f
}

/// The target MAC of the first magic sequence in `payload`; group (multicast/broadcast)
/// addresses never identify a NIC and are skipped.
pub fn find_magic(payload: &[u8]) -> Option<MacAddr> {
    if payload.len() < MAGIC_LEN {
        return None;
    }
    (0..=payload.len() - MAGIC_LEN).find_map(|i| {
        let seq = &payload[i..i + MAGIC_LEN];
        if seq[..6] != [0xff; 6] {
            return None;
        }
        let mac = &seq[6..12];
        let repeated = seq[6..].chunks_exact(6).all(|c| c == mac);
        MacAddr::from_slice(mac).filter(|m| repeated && !m.is_multicast())
    })
}

/// The target MAC and the carrier of a magic packet in Ethernet `frame`, if it holds one.
pub fn parse_frame(frame: &[u8]) -> Option<(MacAddr, WakeVia)> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let l3 = &frame[14..];
    let (port, payload) = match ethertype {
        ETHERTYPE_WOL => return find_magic(l3).map(|mac| (mac, WakeVia::EtherType)),
        ETHERTYPE_IPV4 => udp_in_ipv4(l3)?,
        ETHERTYPE_IPV6 => udp_in_ipv6(l3)?,
        _ => return None,
    };
    find_magic(payload).map(|mac| (mac, WakeVia::Udp { port }))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// (destination port, payload) of a UDP datagram in an IPv4 packet; the packet is bounded by
/// its total length (Ethernet padding excluded) and options are skipped via IHL.
fn udp_in_ipv4(ip: &[u8]) -> Option<(u16, &[u8])> {
    let first = *ip.first()?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 || *ip.get(9)? != IPPROTO_UDP {
        return None;
    }
    let total = usize::from(be16(ip, 2)?);
    if be16(ip, 6)? & 0x1fff != 0 || total < ihl {
        return None; // a later fragment carries no UDP header
    }
    udp(ip.get(ihl..total.min(ip.len()))?)
}

/// Same for IPv6 without extension headers.
fn udp_in_ipv6(ip: &[u8]) -> Option<(u16, &[u8])> {
    if *ip.first()? >> 4 != 6 || *ip.get(6)? != IPPROTO_UDP {
        return None;
    }
    let len = usize::from(be16(ip, 4)?);
    udp(ip.get(40..(40 + len).min(ip.len()))?)
}

fn udp(seg: &[u8]) -> Option<(u16, &[u8])> {
    let port = be16(seg, 2)?;
    let len = usize::from(be16(seg, 4)?);
    if len < 8 || seg.len() < 8 {
        return None;
    }
    Some((port, &seg[8..len.min(seg.len())]))
}

#[cfg(test)]
#[path = "wol_tests.rs"]
mod tests;
