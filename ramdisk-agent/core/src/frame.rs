//! Ethernet II / IPv4 / UDP frames for the DHCP client, built and parsed with checksums.
//!
//! Pure, no IO: the `/init` shell moves these bytes through an AF_PACKET socket, which hands
//! over whole Ethernet frames (no VLAN tag: the kernel strips it into metadata).
//!
//! ```text
//!  0        6        12    14                     34         42
//!  +--------+--------+-----+----------------------+----------+-------------+--------+
//!  | dst    | src    | 0800| IPv4 header (IHL*4)  | UDP (8)  | payload     | pad    |
//!  +--------+--------+-----+----------------------+----------+-------------+--------+
//! ```
//! Parsing checks, in order: lengths, EtherType 0x0800, IP version 4, IHL >= 5, total length
//! within the frame, no fragments, protocol 17, header checksum (RFC 791), UDP length within the
//! IP payload exactly, UDP checksum when non-zero (RFC 768) unless the kernel says it was never
//! computed ([`UdpChecksum::NotReady`]). Bytes after the IP total length are the
//! Ethernet padding of short frames and are ignored; nothing else is.

use std::net::Ipv4Addr;

use lm_api::MacAddr;

/// Ethernet header length.
pub const ETH_HEADER: usize = 14;
/// IPv4 header length without options.
pub const IPV4_HEADER: usize = 20;
/// UDP header length.
pub const UDP_HEADER: usize = 8;
/// Largest UDP payload this module builds: a 1500-byte MTU minus IP and UDP headers.
pub const MAX_PAYLOAD: usize = 1500 - IPV4_HEADER - UDP_HEADER;
/// The Ethernet broadcast address.
pub const BROADCAST_MAC: MacAddr = MacAddr([0xff; 6]);

const ETHERTYPE_IPV4: u16 = 0x0800;
const PROTO_UDP: u8 = 17;

/// A UDP datagram inside an Ethernet frame, borrowed from the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpFrame<'a> {
    pub dst_mac: MacAddr,
    pub src_mac: MacAddr,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

/// Why bytes are not a well-formed IPv4/UDP frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is too short for {what} (needs {need})")]
    TooShort {
        what: &'static str,
        len: usize,
        need: usize,
    },
    #[error("EtherType {0:#06x} is not IPv4")]
    NotIpv4(u16),
    #[error("IP version {0} is not 4")]
    IpVersion(u8),
    #[error("IP header length {0} words is below the minimum of 5")]
    IpHeaderLength(u8),
    #[error("IP total length {total} does not fit the {available} bytes after the Ethernet header")]
    IpTotalLength { total: usize, available: usize },
    #[error("IP fragments are not accepted")]
    Fragment,
    #[error("IP protocol {0} is not UDP")]
    NotUdp(u8),
    #[error("IP header checksum is wrong")]
    IpChecksum,
    #[error("UDP length {udp} is not the IP payload length {ip}")]
    UdpLength { udp: usize, ip: usize },
    #[error("UDP checksum is wrong")]
    UdpChecksum,
    #[error("payload of {len} bytes is more than the {max} that fit one frame")]
    PayloadTooLarge { len: usize, max: usize },
}

/// Internet checksum (RFC 1071) over the concatenation of `parts`.
pub fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in *part {
            match odd.take() {
                Some(hi) => sum += u64::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u64::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // `sum` is at most 0xffff here, so the cast keeps every bit.
    !(sum as u16)
}

fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let len = u16::try_from(udp.len()).unwrap_or(u16::MAX).to_be_bytes();
    let pseudo = [0, PROTO_UDP, len[0], len[1]];
    internet_checksum(&[&src.octets(), &dst.octets(), &pseudo, udp])
}

/// Builds an Ethernet/IPv4/UDP frame (DF set, TTL 64, both checksums filled in).
pub fn build_udp(f: &UdpFrame<'_>, ip_id: u16) -> Result<Vec<u8>, FrameError> {
    if f.payload.len() > MAX_PAYLOAD {
        return Err(FrameError::PayloadTooLarge {
            len: f.payload.len(),
            max: MAX_PAYLOAD,
        });
    }
    let udp_len = UDP_HEADER + f.payload.len();
    let total = IPV4_HEADER + udp_len;
    // Both fit u16: total <= 1500.
    let udp_len16 = u16::try_from(udp_len).unwrap_or(u16::MAX);
    let total16 = u16::try_from(total).unwrap_or(u16::MAX);

    let mut ip = [0u8; IPV4_HEADER];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total16.to_be_bytes());
    ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = PROTO_UDP;
    ip[12..16].copy_from_slice(&f.src_ip.octets());
    ip[16..20].copy_from_slice(&f.dst_ip.octets());
    let ip_sum = internet_checksum(&[&ip]);
    ip[10..12].copy_from_slice(&ip_sum.to_be_bytes());

    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&f.src_port.to_be_bytes());
    udp.extend_from_slice(&f.dst_port.to_be_bytes());
    udp.extend_from_slice(&udp_len16.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(f.payload);
    let sum = match udp_checksum(f.src_ip, f.dst_ip, &udp) {
        0 => 0xffff, // RFC 768: a computed zero is sent as all ones
        s => s,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());

    let mut out = Vec::with_capacity(ETH_HEADER + total);
    out.extend_from_slice(&f.dst_mac.octets());
    out.extend_from_slice(&f.src_mac.octets());
    out.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    out.extend_from_slice(&ip);
    out.extend_from_slice(&udp);
    Ok(out)
}

fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

fn ipv4(b: &[u8], at: usize) -> Ipv4Addr {
    match b.get(at..at + 4) {
        Some(&[a, c, d, e]) => Ipv4Addr::new(a, c, d, e),
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

fn mac(b: &[u8], at: usize) -> MacAddr {
    b.get(at..)
        .and_then(MacAddr::from_slice)
        .unwrap_or_default()
}

/// How to treat the UDP checksum of a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpChecksum {
    /// Verify it when it is non-zero: a frame from the wire.
    Verify,
    /// Skip it: the kernel reports the checksum as not filled in yet (`TP_STATUS_CSUMNOTREADY`,
    /// a frame from a local or virtual sender with checksum offload, e.g. a veth peer or a
    /// virtio-net host), so the field holds only the pseudo-header's partial sum.
    NotReady,
}

/// Parses an Ethernet frame holding one IPv4/UDP datagram (see the module doc for the checks).
pub fn parse_udp(frame: &[u8]) -> Result<UdpFrame<'_>, FrameError> {
    parse_udp_with(frame, UdpChecksum::Verify)
}

/// [`parse_udp`] with an explicit UDP checksum policy (the IP header checksum is always checked).
pub fn parse_udp_with(frame: &[u8], csum: UdpChecksum) -> Result<UdpFrame<'_>, FrameError> {
    let need = ETH_HEADER + IPV4_HEADER;
    if frame.len() < need {
        return Err(FrameError::TooShort {
            what: "Ethernet + IPv4 headers",
            len: frame.len(),
            need,
        });
    }
    let ethertype = be16(frame, 12);
    if ethertype != ETHERTYPE_IPV4 {
        return Err(FrameError::NotIpv4(ethertype));
    }
    let ip_all = frame.get(ETH_HEADER..).unwrap_or_default();
    let first = ip_all.first().copied().unwrap_or(0);
    if first >> 4 != 4 {
        return Err(FrameError::IpVersion(first >> 4));
    }
    let ihl = first & 0x0f;
    if ihl < 5 {
        return Err(FrameError::IpHeaderLength(ihl));
    }
    let header_len = usize::from(ihl) * 4;
    let total = usize::from(be16(ip_all, 2));
    if total > ip_all.len() {
        return Err(FrameError::IpTotalLength {
            total,
            available: ip_all.len(),
        });
    }
    if total < header_len + UDP_HEADER {
        return Err(FrameError::TooShort {
            what: "IPv4 + UDP headers",
            len: total,
            need: header_len + UDP_HEADER,
        });
    }
    let ip = ip_all.get(..total).unwrap_or_default();
    let header = ip.get(..header_len).unwrap_or_default();
    let frag = be16(header, 6);
    if frag & 0x2000 != 0 || frag & 0x1fff != 0 {
        return Err(FrameError::Fragment);
    }
    let protocol = header.get(9).copied().unwrap_or(0);
    if protocol != PROTO_UDP {
        return Err(FrameError::NotUdp(protocol));
    }
    if internet_checksum(&[header]) != 0 {
        return Err(FrameError::IpChecksum);
    }
    let src_ip = ipv4(header, 12);
    let dst_ip = ipv4(header, 16);
    let udp_all = ip.get(header_len..).unwrap_or_default();
    let udp_len = usize::from(be16(udp_all, 4));
    if udp_len != udp_all.len() {
        return Err(FrameError::UdpLength {
            udp: udp_len,
            ip: udp_all.len(),
        });
    }
    let udp = udp_all.get(..udp_len).unwrap_or_default();
    if csum == UdpChecksum::Verify && be16(udp, 6) != 0 && udp_checksum(src_ip, dst_ip, udp) != 0 {
        return Err(FrameError::UdpChecksum);
    }
    Ok(UdpFrame {
        dst_mac: mac(frame, 0),
        src_mac: mac(frame, 6),
        src_ip,
        dst_ip,
        src_port: be16(udp, 0),
        dst_port: be16(udp, 2),
        payload: udp.get(UDP_HEADER..).unwrap_or_default(),
    })
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
