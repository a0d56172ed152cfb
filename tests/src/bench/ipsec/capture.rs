//! A capture of IKEv2 messages on one interface inside a namespace (AF_PACKET with the kernel's
//! receive/transmit timestamps, the socket of [`crate::bench::tunnel::capture`]): IKE on UDP 500
//! and behind the non-ESP marker on UDP 4500, for the handshake times of `lab bench ipsec`.
//! ESP datagrams on 4500 are counted, not kept.
//!
//! [`ike_event`] and [`handshakes_ms`] are pure; [`IkeCapture`] does IO on its own thread.

use anyhow::Result;

use crate::bench::tunnel::capture::FrameCapture;
use crate::netns::Netns;

/// IKE_SA_INIT (RFC 7296 3.1).
pub const IKE_SA_INIT: u8 = 34;
/// IKE_AUTH.
pub const IKE_AUTH: u8 = 35;
const FLAG_RESPONSE: u8 = 0x20;

/// One IKE message seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IkeEvent {
    /// Kernel timestamp, seconds since the epoch.
    pub at: f64,
    pub spi_i: u64,
    pub exchange: u8,
    pub response: bool,
    pub msg_id: u32,
}

/// What a capture saw.
#[derive(Debug, Clone, Default)]
pub struct IkeReport {
    pub frames: u64,
    /// ESP datagrams (UDP 4500, non-zero SPI).
    pub esp: u64,
    /// IKE messages in order (at most 4096).
    pub events: Vec<IkeEvent>,
}

/// The IKE header of an Ethernet/IPv4/UDP frame on port 500, or on 4500 behind the non-ESP
/// marker (`None` for anything else, ESP included); `at` is the frame's timestamp.
pub fn ike_event(frame: &[u8], at: f64) -> Option<IkeEvent> {
    let udp = udp_payload(frame)?;
    let (sport, dport, payload) = udp;
    let ike = if sport == 500 || dport == 500 {
        payload
    } else if sport == 4500 || dport == 4500 {
        match payload {
            [0, 0, 0, 0, ike @ ..] => ike,
            _ => return None,
        }
    } else {
        return None;
    };
    let h = ike.get(..28)?;
    if h[17] != 0x20 {
        return None; // not IKEv2
    }
    let mut spi = [0u8; 8];
    spi.copy_from_slice(&h[..8]);
    Some(IkeEvent {
        at,
        spi_i: u64::from_be_bytes(spi),
        exchange: h[18],
        response: h[19] & FLAG_RESPONSE != 0,
        msg_id: u32::from_be_bytes([h[20], h[21], h[22], h[23]]),
    })
}

/// (source port, destination port, UDP payload) of an Ethernet/IPv4/UDP frame.
fn udp_payload(frame: &[u8]) -> Option<(u16, u16, &[u8])> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if ip.get(9) != Some(&17) || ihl < 20 {
        return None;
    }
    let udp = ip.get(ihl..)?;
    let sport = u16::from_be_bytes([*udp.first()?, *udp.get(1)?]);
    let dport = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    Some((sport, dport, udp.get(8..)?))
}

fn is_esp(frame: &[u8]) -> bool {
    matches!(udp_payload(frame), Some((4500, 4500, p)) if p.len() > 8 && p[..4] != [0; 4])
}

/// For each IKE SA (by the initiator's SPI, in the order first seen): milliseconds from its
/// first IKE_SA_INIT request to the last IKE_AUTH response frame with message id 1 (a
/// fragmented response ends with its last fragment). IKE SAs without both are left out.
pub fn handshakes_ms(events: &[IkeEvent]) -> Vec<f64> {
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for e in events {
        if e.exchange != IKE_SA_INIT || e.response || seen.contains(&e.spi_i) {
            continue;
        }
        seen.push(e.spi_i);
        let end = events
            .iter()
            .filter(|a| {
                a.spi_i == e.spi_i
                    && a.exchange == IKE_AUTH
                    && a.response
                    && a.msg_id == 1
                    && a.at >= e.at
            })
            .map(|a| a.at)
            .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))));
        if let Some(end) = end {
            out.push((end - e.at) * 1000.0);
        }
    }
    out
}

/// A running capture.
#[derive(Debug)]
pub struct IkeCapture(FrameCapture<IkeReport>);

impl IkeCapture {
    /// Starts capturing on `iface` in `ns`.
    pub fn start(ns: &Netns, iface: &str) -> Result<IkeCapture> {
        FrameCapture::start(ns, iface, IkeReport::default(), |r, frame, at| {
            r.frames += 1;
            if let Some(e) = ike_event(frame, at) {
                if r.events.len() < 4096 {
                    r.events.push(e);
                }
            } else if is_esp(frame) {
                r.esp += 1;
            }
        })
        .map(IkeCapture)
    }

    /// Stops after the frames queued so far and returns the report.
    pub fn finish(self) -> Result<IkeReport> {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[9] = 17;
        f.extend(ip);
        f.extend(sport.to_be_bytes());
        f.extend(dport.to_be_bytes());
        f.extend([0u8; 4]);
        f.extend(payload);
        f
    }

    fn ike(spi: u64, exchange: u8, flags: u8, msg_id: u32) -> Vec<u8> {
        let mut h = spi.to_be_bytes().to_vec();
        h.extend([0u8; 8]);
        h.extend([33, 0x20, exchange, flags]);
        h.extend(msg_id.to_be_bytes());
        h.extend(28u32.to_be_bytes());
        h
    }

    #[test]
    fn ike_is_recognised_on_500_and_behind_the_marker_on_4500() {
        let init = ike(7, IKE_SA_INIT, 0x08, 0);
        let e = ike_event(&frame(500, 500, &init), 1.5).unwrap();
        assert_eq!(
            (e.spi_i, e.exchange, e.response, e.msg_id),
            (7, 34, false, 0)
        );
        let mut marked = vec![0u8; 4];
        marked.extend(ike(7, IKE_AUTH, 0x20, 1));
        let e = ike_event(&frame(4500, 4500, &marked), 2.0).unwrap();
        assert_eq!((e.exchange, e.response, e.msg_id), (35, true, 1));
        // ESP, a keepalive, other ports, IKEv1, truncated headers and non-UDP frames are not IKE
        let esp = [0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1, 9, 9, 9, 9];
        assert!(ike_event(&frame(4500, 4500, &esp), 0.0).is_none());
        assert!(is_esp(&frame(4500, 4500, &esp)));
        assert!(ike_event(&frame(4500, 4500, &[0xff]), 0.0).is_none());
        assert!(ike_event(&frame(501, 502, &init), 0.0).is_none());
        let mut v1 = init.clone();
        v1[17] = 0x10;
        assert!(ike_event(&frame(500, 500, &v1), 0.0).is_none());
        assert!(ike_event(&frame(500, 500, &init[..27]), 0.0).is_none());
        assert!(ike_event(&[0u8; 10], 0.0).is_none());
        let mut tcp = frame(500, 500, &init);
        tcp[23] = 6;
        assert!(ike_event(&tcp, 0.0).is_none());
    }

    #[test]
    fn handshake_runs_from_the_first_init_request_to_the_last_auth_response() {
        let ev = |at, spi_i, exchange, response, msg_id| IkeEvent {
            at,
            spi_i,
            exchange,
            response,
            msg_id,
        };
        let events = [
            ev(10.000, 1, IKE_SA_INIT, false, 0),
            ev(10.001, 1, IKE_SA_INIT, true, 0),
            ev(10.002, 1, IKE_AUTH, false, 1),
            ev(10.003, 1, IKE_AUTH, true, 1),
            ev(10.0035, 1, IKE_AUTH, true, 1), // a second fragment
            ev(10.010, 1, 37, false, 2),       // an INFORMATIONAL later: ignored
            ev(20.000, 2, IKE_SA_INIT, false, 0),
            ev(20.001, 2, IKE_SA_INIT, true, 0), // no IKE_AUTH: left out
            ev(30.000, 3, IKE_SA_INIT, false, 0),
            ev(30.0005, 3, IKE_SA_INIT, false, 0), // a retransmission: the first counts
            ev(30.004, 3, IKE_AUTH, true, 1),
        ];
        let ms = handshakes_ms(&events);
        assert_eq!(ms.len(), 2, "{ms:?}");
        assert!((ms[0] - 3.5).abs() < 1e-6, "{ms:?}");
        assert!((ms[1] - 4.0).abs() < 1e-6, "{ms:?}");
        assert!(handshakes_ms(&[]).is_empty());
    }
}
