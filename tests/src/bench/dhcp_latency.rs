//! A DHCP latency probe: DORA exchanges from a relay address at a fixed rate (open loop), each
//! with its own MAC, timing DISCOVER->OFFER and REQUEST->ACK per exchange so p50/p99 can be
//! given (perfdhcp reports only min/avg/max). IO: one UDP socket in the client namespace.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dhcproto::{Decodable, Decoder, Encodable, Encoder, v4};

use crate::netns::Netns;

/// Latency figures of one probe run.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    pub rate: u32,
    pub started: usize,
    pub completed: usize,
    pub do_ms: Vec<f64>,
    pub ra_ms: Vec<f64>,
}

/// The `p`-th percentile (0..=100) of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x5a, b[0], b[1], b[2], b[3]]
}

fn message(
    i: u32,
    giaddr: Ipv4Addr,
    kind: v4::MessageType,
    offer: Option<(Ipv4Addr, Ipv4Addr)>,
) -> Vec<u8> {
    let mut m = v4::Message::default();
    m.set_xid(0x5a00_0000 ^ i)
        .set_giaddr(giaddr)
        .set_hops(1)
        .set_chaddr(&mac(i));
    m.opts_mut().insert(v4::DhcpOption::MessageType(kind));
    if let Some((yiaddr, server)) = offer {
        m.opts_mut()
            .insert(v4::DhcpOption::RequestedIpAddress(yiaddr));
        m.opts_mut()
            .insert(v4::DhcpOption::ServerIdentifier(server));
    }
    let mut buf = Vec::with_capacity(300);
    let _ = m.encode(&mut Encoder::new(&mut buf));
    buf
}

/// Runs `rate` exchanges per second for `duration` from `local:67` (relay) to `server:67`.
pub fn probe(
    ns: &Netns,
    local: Ipv4Addr,
    server: Ipv4Addr,
    rate: u32,
    duration: Duration,
) -> Result<Latency> {
    ns.run(move || -> Result<Latency> {
        let sock = UdpSocket::bind(SocketAddrV4::new(local, 67))
            .context("binding the probe to port 67")?;
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let rx = sock.try_clone()?;
        let dest = SocketAddrV4::new(server, 67);
        let sent: Arc<Mutex<HashMap<u32, Instant>>> = Arc::default();
        let total = (rate as f64 * duration.as_secs_f64()) as u32;
        let s2 = sent.clone();
        let sender = std::thread::spawn(move || {
            let t0 = Instant::now();
            for i in 0..total {
                let due = t0 + Duration::from_secs_f64(i as f64 / rate as f64);
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
                let b = message(i, local, v4::MessageType::Discover, None);
                s2.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(0x5a00_0000 ^ i, Instant::now());
                let _ = sock.send_to(&b, dest);
            }
        });
        let mut out = Latency {
            rate,
            started: total as usize,
            ..Default::default()
        };
        let mut req_sent: HashMap<u32, Instant> = HashMap::new();
        let deadline = Instant::now() + duration + Duration::from_secs(2);
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            let Ok((n, _)) = rx.recv_from(&mut buf) else {
                continue;
            };
            let now = Instant::now();
            let Ok(m) = v4::Message::decode(&mut Decoder::new(&buf[..n])) else {
                continue;
            };
            let xid = m.xid();
            match m.opts().msg_type() {
                Some(v4::MessageType::Offer) => {
                    let Some(t) = sent.lock().unwrap_or_else(|p| p.into_inner()).remove(&xid)
                    else {
                        continue;
                    };
                    out.do_ms.push((now - t).as_secs_f64() * 1e3);
                    let server_id = match m.opts().get(v4::OptionCode::ServerIdentifier) {
                        Some(v4::DhcpOption::ServerIdentifier(s)) => *s,
                        _ => server,
                    };
                    let i = xid ^ 0x5a00_0000;
                    let b = message(
                        i,
                        local,
                        v4::MessageType::Request,
                        Some((m.yiaddr(), server_id)),
                    );
                    req_sent.insert(xid, Instant::now());
                    let _ = rx.send_to(&b, dest);
                }
                Some(v4::MessageType::Ack) => {
                    if let Some(t) = req_sent.remove(&xid) {
                        out.ra_ms.push((now - t).as_secs_f64() * 1e3);
                        out.completed += 1;
                    }
                }
                _ => {}
            }
        }
        let _ = sender.join();
        out.do_ms.sort_by(f64::total_cmp);
        out.ra_ms.sort_by(f64::total_cmp);
        Ok(out)
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 51.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn messages_decode_as_relayed_dhcp() {
        let b = message(
            7,
            Ipv4Addr::new(10, 88, 0, 2),
            v4::MessageType::Request,
            Some((Ipv4Addr::new(10, 88, 1, 5), Ipv4Addr::new(10, 88, 0, 1))),
        );
        let m = v4::Message::decode(&mut Decoder::new(&b)).unwrap();
        assert_eq!(m.giaddr(), Ipv4Addr::new(10, 88, 0, 2));
        assert_eq!(m.chaddr()[..6], mac(7));
        assert_eq!(m.opts().msg_type(), Some(v4::MessageType::Request));
    }
}
