//! What crosses the data-centre segment during an IPsec lease, frame by frame: a capture on
//! the gateway's bridge port that parses every IPv4 frame between the gateway and a lease
//! server with ipsec-parser (UDP 500: an IKEv2 header; UDP 4500: RFC 3948, the non-ESP marker
//! and an IKEv2 header, or an ESP header), allows only the registration service's TLS besides,
//! and looks for markers of the image plaintext in every frame.
//!
//! Pure classification ([`classify`]) and an IO shell ([`WireCapture`]) on its own thread.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::Result;
use ipsec_parser::{ESPData, parse_esp_encapsulated, parse_ikev2_header};

use crate::bench::tunnel::capture::FrameCapture;
use crate::netns::Netns;

/// One frame, as far as the IPsec lease is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// Not IPv4, or not between the gateway and a lease server (the gateway's own LM polls,
    /// ARP, the LM's DHCP): not the tunnel's business.
    Other,
    /// IKEv2 on 500 or 4500 (exchange type).
    Ike { exchange: u8 },
    /// ESP in UDP 4500 with this SPI.
    Esp { spi: u32 },
    /// An RFC 3948 NAT keepalive (one 0xff byte).
    Keepalive,
    /// TCP to or from the registration service (before the tunnel: pinned TLS).
    Registration,
    /// Between the gateway and a lease server, and none of the above: a failure.
    Unexpected(String),
}

/// Classifies an Ethernet frame seen on the gateway's port (`gw` the gateway's data-centre
/// address, `lm` the LM's, `register_port` the registration service's TCP port).
pub fn classify(frame: &[u8], gw: Ipv4Addr, lm: Ipv4Addr, register_port: u16) -> Class {
    let Some(ip) = frame
        .get(14..)
        .filter(|_| frame.get(12..14) == Some(&[0x08, 0x00]))
    else {
        return Class::Other;
    };
    let Some(&vihl) = ip.first() else {
        return Class::Other;
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    let (Some(proto), Some(src), Some(dst)) = (ip.get(9), ip.get(12..16), ip.get(16..20)) else {
        return Class::Other;
    };
    let src = Ipv4Addr::new(src[0], src[1], src[2], src[3]);
    let dst = Ipv4Addr::new(dst[0], dst[1], dst[2], dst[3]);
    let peer = match (src == gw, dst == gw) {
        (true, false) => dst,
        (false, true) => src,
        _ => return Class::Other,
    };
    if peer == lm || peer.is_broadcast() || peer.is_multicast() {
        return Class::Other;
    }
    // A fragment other than the first has no transport header to classify.
    let frag = ip
        .get(6..8)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]) & 0x1fff);
    if ihl < 20 || frag != 0 {
        return Class::Unexpected(format!("IPv4 fragment or bad header from {src} to {dst}"));
    }
    let Some(l4) = ip.get(ihl..) else {
        return Class::Unexpected(format!("truncated IPv4 from {src} to {dst}"));
    };
    let ports = l4.get(..4).map(|p| {
        (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        )
    });
    match (*proto, ports) {
        (6, Some((s, d))) if s == register_port || d == register_port => Class::Registration,
        (17, Some((s, d))) => {
            let payload = l4.get(8..).unwrap_or_default();
            if s == 500 || d == 500 {
                match parse_ikev2_header(payload) {
                    Ok((_, h)) => Class::Ike {
                        exchange: h.exch_type.0,
                    },
                    Err(e) => Class::Unexpected(format!("UDP 500 that is not IKEv2: {e:?}")),
                }
            } else if s == 4500 || d == 4500 {
                if payload == [0xff] {
                    return Class::Keepalive;
                }
                // ipsec-parser 0.7's parse_esp_encapsulated reads the IKE header from the
                // non-ESP marker itself (four bytes early), so IKE behind it is parsed here.
                if let Some(ike) = payload.strip_prefix(&[0, 0, 0, 0]) {
                    return match parse_ikev2_header(ike) {
                        Ok((_, h)) => Class::Ike {
                            exchange: h.exch_type.0,
                        },
                        Err(e) => {
                            Class::Unexpected(format!("UDP 4500 IKE that does not parse: {e:?}"))
                        }
                    };
                }
                match parse_esp_encapsulated(payload) {
                    Ok((_, ESPData::IKE(_))) => {
                        Class::Unexpected("UDP 4500 with SPI 0 but no marker".into())
                    }
                    Ok((_, ESPData::ESP(e))) => {
                        let spi = e
                            .spi_index
                            .get(..4)
                            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                        Class::Esp { spi }
                    }
                    Err(e) => Class::Unexpected(format!("UDP 4500 that is neither: {e:?}")),
                }
            } else {
                Class::Unexpected(format!("UDP {s} -> {d} between {src} and {dst}"))
            }
        }
        (p, _) => Class::Unexpected(format!("IP protocol {p} between {src} and {dst}")),
    }
}

/// What a capture saw.
#[derive(Debug, Clone, Default)]
pub struct WireReport {
    pub frames: u64,
    pub other: u64,
    pub registration: u64,
    pub keepalives: u64,
    /// IKE messages by exchange type.
    pub ike: BTreeMap<u8, u64>,
    /// ESP packets by SPI, and their UDP payload bytes.
    pub esp: BTreeMap<u32, u64>,
    pub esp_bytes: u64,
    /// The first unexpected frames (at most 20) and how many there were.
    pub unexpected: Vec<String>,
    pub unexpected_count: u64,
    /// Frames holding each marker (by index), in any frame at all.
    pub marker_frames: Vec<u64>,
}

/// A running capture.
#[derive(Debug)]
pub struct WireCapture(FrameCapture<WireReport>);

impl WireCapture {
    /// Captures on `iface` in `ns` (see [`classify`] for the addresses), searching every frame
    /// for each of `markers`.
    pub fn start(
        ns: &Netns,
        iface: &str,
        gw: Ipv4Addr,
        lm: Ipv4Addr,
        register_port: u16,
        markers: Vec<Vec<u8>>,
    ) -> Result<WireCapture> {
        let report = WireReport {
            marker_frames: vec![0; markers.len()],
            ..WireReport::default()
        };
        FrameCapture::start(ns, iface, report, move |r, frame, _| {
            r.frames += 1;
            for (i, m) in markers.iter().enumerate() {
                if !m.is_empty() && frame.windows(m.len()).any(|w| w == m.as_slice()) {
                    r.marker_frames[i] += 1;
                }
            }
            match classify(frame, gw, lm, register_port) {
                Class::Other => r.other += 1,
                Class::Registration => r.registration += 1,
                Class::Keepalive => r.keepalives += 1,
                Class::Ike { exchange } => *r.ike.entry(exchange).or_default() += 1,
                Class::Esp { spi } => {
                    *r.esp.entry(spi).or_default() += 1;
                    r.esp_bytes += frame.len().saturating_sub(42) as u64;
                }
                Class::Unexpected(why) => {
                    r.unexpected_count += 1;
                    if r.unexpected.len() < 20 {
                        r.unexpected.push(why);
                    }
                }
            }
        })
        .map(WireCapture)
    }

    /// Stops after the frames queued so far and returns the report.
    pub fn finish(self) -> Result<WireReport> {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
    const LM: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const SRV: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 100);

    fn frame(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, sport: u16, dport: u16, p: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        f.extend(ip);
        f.extend(sport.to_be_bytes());
        f.extend(dport.to_be_bytes());
        f.extend([0u8; 4]);
        f.extend(p);
        f
    }

    fn ike_header(exchange: u8) -> Vec<u8> {
        let mut h = vec![1u8; 16]; // SPIi, SPIr
        h.extend([0x21, 0x20, exchange, 0x08]); // next payload, version 2.0, exchange, flags
        h.extend(0u32.to_be_bytes()); // message id
        h.extend(28u32.to_be_bytes()); // length
        h
    }

    #[test]
    fn ike_esp_and_registration_are_recognised() {
        let ike = ike_header(34);
        assert_eq!(
            classify(&frame(SRV, GW, 17, 500, 500, &ike), GW, LM, 7443),
            Class::Ike { exchange: 34 }
        );
        let mut floated = vec![0u8; 4];
        floated.extend(ike_header(35));
        assert_eq!(
            classify(&frame(GW, SRV, 17, 4500, 4500, &floated), GW, LM, 7443),
            Class::Ike { exchange: 35 }
        );
        let mut esp = 0xc0ff_ee01u32.to_be_bytes().to_vec();
        esp.extend(7u32.to_be_bytes());
        esp.extend([0xaa; 40]);
        assert_eq!(
            classify(&frame(SRV, GW, 17, 4500, 4500, &esp), GW, LM, 7443),
            Class::Esp { spi: 0xc0ff_ee01 }
        );
        assert_eq!(
            classify(&frame(SRV, GW, 17, 4500, 4500, &[0xff]), GW, LM, 7443),
            Class::Keepalive
        );
        assert_eq!(
            classify(&frame(SRV, GW, 6, 40000, 7443, b"tls"), GW, LM, 7443),
            Class::Registration
        );
    }

    #[test]
    fn anything_else_between_gateway_and_server_is_unexpected() {
        for f in [
            frame(SRV, GW, 6, 40000, 8080, b"GET /v1/images"),
            frame(GW, SRV, 17, 53, 40000, b"dns"),
            frame(SRV, GW, 17, 4500, 4500, &[0, 0, 0, 0, 1]),
            frame(SRV, GW, 17, 500, 500, b"not ike"),
            frame(SRV, GW, 1, 0, 0, b"ping"),
        ] {
            assert!(
                matches!(classify(&f, GW, LM, 7443), Class::Unexpected(_)),
                "{:?}",
                classify(&f, GW, LM, 7443)
            );
        }
        // Not between the gateway and a server: not judged.
        assert_eq!(
            classify(&frame(GW, LM, 6, 40000, 8443, b"poll"), GW, LM, 7443),
            Class::Other
        );
        assert_eq!(
            classify(&frame(SRV, LM, 6, 40000, 8443, b"hb"), GW, LM, 7443),
            Class::Other
        );
        assert_eq!(classify(&[0u8; 10], GW, LM, 7443), Class::Other);
        let mut arp = frame(SRV, GW, 17, 1, 1, b"");
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(classify(&arp, GW, LM, 7443), Class::Other);
    }
}
