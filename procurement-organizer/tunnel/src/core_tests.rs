//! Two cores talking in memory: handshakes, data both ways, cryptokey routing, removal, wrong
//! keys, roaming and hostile datagrams, without sockets or a TUN device.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use rand::SeedableRng;

use crate::core::{Core, Io};
use crate::keys::PrivateKey;
use crate::peer::PeerConfig;
use crate::{NodeError, PublicKey};

#[derive(Default)]
struct MemIo {
    sent: Vec<(Vec<u8>, SocketAddr)>,
    tun: Vec<Vec<u8>>,
}

impl Io for MemIo {
    fn send_to(&mut self, datagram: &[u8], to: SocketAddr) -> io::Result<()> {
        self.sent.push((datagram.to_vec(), to));
        Ok(())
    }
    fn write_tun(&mut self, packet: &[u8]) -> io::Result<()> {
        self.tun.push(packet.to_vec());
        Ok(())
    }
}

struct Side {
    core: Core,
    io: MemIo,
    addr: SocketAddr,
    key: PublicKey,
}

const A_ADDR: &str = "192.0.2.1:51820";
const B_ADDR: &str = "192.0.2.2:51820";
const A_IP: Ipv4Addr = Ipv4Addr::new(10, 90, 0, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(10, 90, 0, 2);

fn side(seed: u64, addr: &str) -> (Side, PrivateKey) {
    let key = PrivateKey::generate(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let core = Core::new(&key, rand::rngs::StdRng::seed_from_u64(seed + 100));
    let s = Side {
        core,
        io: MemIo::default(),
        addr: addr.parse().unwrap(),
        key: key.public_key(),
    };
    (s, key)
}

fn peer(key: PublicKey, endpoint: Option<&str>, ip: Ipv4Addr) -> PeerConfig {
    PeerConfig {
        public_key: key,
        endpoint: endpoint.map(|e| e.parse().unwrap()),
        allowed_ips: vec![(ip, 32)],
        persistent_keepalive: None,
    }
}

/// A pair where A knows B's endpoint (A initiates) and B learns A's.
fn pair() -> (Side, Side) {
    let (mut a, _) = side(1, A_ADDR);
    let (mut b, _) = side(2, B_ADDR);
    b.core.add_peer(&mut b.io, peer(a.key, None, A_IP)).unwrap();
    a.core
        .add_peer(&mut a.io, peer(b.key, Some(B_ADDR), B_IP))
        .unwrap();
    (a, b)
}

/// Delivers everything sent (to the other side's address) until both are quiet.
fn pump(a: &mut Side, b: &mut Side) -> usize {
    let now = SystemTime::now();
    let mut n = 0;
    loop {
        let from_a: Vec<_> = a.io.sent.drain(..).collect();
        let from_b: Vec<_> = b.io.sent.drain(..).collect();
        if from_a.is_empty() && from_b.is_empty() {
            return n;
        }
        for (d, to) in from_a {
            if to == b.addr {
                b.core.on_datagram(&mut b.io, a.addr, &d, now);
                n += 1;
            }
        }
        for (d, to) in from_b {
            if to == a.addr {
                a.core.on_datagram(&mut a.io, b.addr, &d, now);
                n += 1;
            }
        }
    }
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

fn handshaken() -> (Side, Side) {
    let (mut a, mut b) = pair();
    assert_eq!(
        a.io.sent.len(),
        1,
        "A starts a handshake when the peer is added"
    );
    pump(&mut a, &mut b);
    (a, b)
}

#[test]
fn handshake_completes_on_both_sides_and_data_flows_both_ways() {
    let (mut a, mut b) = pair();
    let board = a.core.handshakes();
    assert!(matches!(
        board.wait(&b.key, Duration::ZERO),
        Err(NodeError::HandshakeTimeout { .. })
    ));
    // a waiter on another thread is woken by the handshake
    let waiter = std::thread::spawn({
        let (board, key) = (board.clone(), b.key);
        move || board.wait(&key, Duration::from_secs(10))
    });
    pump(&mut a, &mut b);
    waiter.join().unwrap().expect("A's waiter is woken");
    let a_view = &a.core.peer_stats()[0];
    let b_view = &b.core.peer_stats()[0];
    assert!(a_view.last_handshake.is_some());
    assert!(
        b_view.last_handshake.is_some(),
        "B confirms on A's keepalive"
    );
    assert_eq!(
        b_view.endpoint,
        Some(a.addr),
        "B learnt A's endpoint from the handshake"
    );

    let hello = ipv4(A_IP, B_IP, b"hello through the tunnel");
    a.core.on_tun_packet(&mut a.io, &hello);
    let (wire, to) = a.io.sent[0].clone();
    assert_eq!(to, b.addr);
    assert!(
        !wire.windows(5).any(|w| w == b"hello"),
        "the datagram is encrypted"
    );
    pump(&mut a, &mut b);
    assert_eq!(b.io.tun, vec![hello]);

    let back = ipv4(B_IP, A_IP, b"and back");
    b.core.on_tun_packet(&mut b.io, &back);
    pump(&mut a, &mut b);
    assert_eq!(a.io.tun, vec![back]);
    let a_view = &a.core.peer_stats()[0];
    assert!(a_view.tx_bytes > 0 && a_view.rx_bytes > 0);
    assert_eq!(a_view.dropped, 0);

    // a waiter after the fact returns at once; an unknown key is refused
    b.core.handshakes().wait(&a.key, Duration::ZERO).unwrap();
    assert!(matches!(
        b.core.handshakes().wait(&b.key, Duration::ZERO),
        Err(NodeError::UnknownPeer(_))
    ));
}

#[test]
fn a_packet_with_a_spoofed_inner_source_is_dropped_and_counted() {
    let (mut a, mut b) = handshaken();
    let spoofed = ipv4(Ipv4Addr::new(10, 200, 0, 5), B_IP, b"spoofed");
    a.core.on_tun_packet(&mut a.io, &spoofed);
    pump(&mut a, &mut b);
    assert!(b.io.tun.is_empty(), "nothing reaches B's TUN");
    assert_eq!(b.core.peer_stats()[0].dropped, 1);
    // the same packet with A's own address goes through
    a.core
        .on_tun_packet(&mut a.io, &ipv4(A_IP, B_IP, b"honest"));
    pump(&mut a, &mut b);
    assert_eq!(b.io.tun.len(), 1);
}

#[test]
fn a_packet_for_no_peer_is_not_sent() {
    let (mut a, mut b) = handshaken();
    a.core
        .on_tun_packet(&mut a.io, &ipv4(A_IP, Ipv4Addr::new(10, 91, 0, 1), b"x"));
    a.core.on_tun_packet(&mut a.io, &[0x60; 40]);
    a.core.on_tun_packet(&mut a.io, &[]);
    assert!(a.io.sent.is_empty());
    assert_eq!(a.core.stats().no_route, 3);
    assert_eq!(pump(&mut a, &mut b), 0);
}

#[test]
fn a_removed_peer_is_gone_at_once_and_cannot_come_back_by_itself() {
    let (mut a, mut b) = handshaken();
    b.core.remove_peer(&a.key).unwrap();
    assert!(matches!(
        b.core.handshakes().wait(&a.key, Duration::ZERO),
        Err(NodeError::UnknownPeer(_))
    ));
    assert!(matches!(
        b.core.remove_peer(&a.key),
        Err(NodeError::UnknownPeer(_))
    ));
    a.core
        .on_tun_packet(&mut a.io, &ipv4(A_IP, B_IP, b"after removal"));
    pump(&mut a, &mut b);
    assert!(b.io.tun.is_empty());
    assert_eq!(b.core.stats().unknown_peer, 1);
    // a fresh handshake from A is refused too
    a.core.remove_peer(&b.key).unwrap();
    a.core
        .add_peer(&mut a.io, peer(b.key, Some(B_ADDR), B_IP))
        .unwrap();
    pump(&mut a, &mut b);
    assert!(b.io.sent.is_empty(), "B answers nothing");
    assert_eq!(b.core.stats().unknown_peer, 2);
    assert!(a.core.peer_stats()[0].last_handshake.is_none());
    // until B adds A again
    b.core.add_peer(&mut b.io, peer(a.key, None, A_IP)).unwrap();
    a.core.remove_peer(&b.key).unwrap();
    a.core
        .add_peer(&mut a.io, peer(b.key, Some(B_ADDR), B_IP))
        .unwrap();
    pump(&mut a, &mut b);
    assert!(a.core.peer_stats()[0].last_handshake.is_some());
}

#[test]
fn a_peer_with_the_wrong_key_never_completes_a_handshake() {
    let (mut a, _) = side(1, A_ADDR);
    let (mut b, _) = side(2, B_ADDR);
    let (stranger, _) = side(3, "192.0.2.3:1");
    // B expects `stranger`, not A
    b.core
        .add_peer(&mut b.io, peer(stranger.key, None, A_IP))
        .unwrap();
    a.core
        .add_peer(&mut a.io, peer(b.key, Some(B_ADDR), B_IP))
        .unwrap();
    pump(&mut a, &mut b);
    assert!(b.io.sent.is_empty());
    assert_eq!(b.core.stats().unknown_peer, 1);
    // and A holding a wrong key for B: B's MAC check fails
    let (mut a2, _) = side(4, A_ADDR);
    b.core
        .add_peer(&mut b.io, peer(a2.key, None, Ipv4Addr::new(10, 90, 0, 4)))
        .unwrap();
    a2.core
        .add_peer(&mut a2.io, peer(stranger.key, Some(B_ADDR), B_IP))
        .unwrap();
    pump(&mut a2, &mut b);
    assert!(b.io.sent.is_empty());
    assert_eq!(b.core.stats().invalid, 1);
    assert!(
        b.core
            .peer_stats()
            .iter()
            .all(|p| p.last_handshake.is_none())
    );
}

#[test]
fn the_endpoint_follows_authenticated_packets_only() {
    let (mut a, mut b) = handshaken();
    let moved: SocketAddr = "198.51.100.7:40000".parse().unwrap();
    a.core
        .on_tun_packet(&mut a.io, &ipv4(A_IP, B_IP, b"roamed"));
    let (wire, _) = a.io.sent.pop().unwrap();
    // a forged copy with a flipped byte from elsewhere changes nothing
    let mut forged = wire.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let elsewhere: SocketAddr = "203.0.113.9:1".parse().unwrap();
    b.core
        .on_datagram(&mut b.io, elsewhere, &forged, SystemTime::now());
    assert_eq!(b.core.peer_stats()[0].endpoint, Some(a.addr));
    assert_eq!(b.core.peer_stats()[0].dropped, 1);
    // the authentic one from a new address moves the endpoint
    b.core
        .on_datagram(&mut b.io, moved, &wire, SystemTime::now());
    assert_eq!(b.core.peer_stats()[0].endpoint, Some(moved));
    // and a replay of it is dropped
    b.core
        .on_datagram(&mut b.io, moved, &wire, SystemTime::now());
    assert_eq!(b.io.tun.len(), 1);
    assert_eq!(b.core.peer_stats()[0].dropped, 2);
}

#[test]
fn hostile_datagrams_are_counted_not_fatal() {
    let (mut a, mut b) = handshaken();
    let now = SystemTime::now();
    let from = a.addr;
    let mut seeds = rand::rngs::StdRng::seed_from_u64(9);
    for len in [0usize, 1, 3, 4, 31, 32, 33, 64, 92, 148, 149, 1500] {
        for kind in 0u8..6 {
            let mut d = vec![0u8; len];
            rand::RngCore::fill_bytes(&mut seeds, &mut d);
            if let Some(first) = d.first_mut() {
                *first = kind;
            }
            if len >= 4 {
                d[1..4].fill(0);
            }
            b.core.on_datagram(&mut b.io, from, &d, now);
        }
    }
    let s = b.core.stats();
    assert!(s.invalid > 0 && s.unknown_peer > 0, "{s:?}");
    assert!(b.io.tun.is_empty());
    // the tunnel still works
    a.core
        .on_tun_packet(&mut a.io, &ipv4(A_IP, B_IP, b"still fine"));
    pump(&mut a, &mut b);
    assert_eq!(b.io.tun.len(), 1);
}

#[test]
fn duplicate_keys_and_taken_networks_are_refused() {
    let (mut a, b) = handshaken();
    assert!(matches!(
        a.core.add_peer(&mut a.io, peer(b.key, None, B_IP)),
        Err(NodeError::PeerExists(_))
    ));
    let (other, _) = side(7, "192.0.2.7:1");
    let e = a
        .core
        .add_peer(&mut a.io, peer(other.key, None, B_IP))
        .unwrap_err();
    assert!(matches!(e, NodeError::AllowedIpTaken { .. }), "{e}");
    let mut bad = peer(other.key, None, B_IP);
    bad.allowed_ips = vec![(B_IP, 33)];
    assert!(matches!(
        a.core.add_peer(&mut a.io, bad),
        Err(NodeError::AllowedIp { .. })
    ));
    // a wider network that contains B's /32 is fine: the /32 stays B's
    let mut wide = peer(other.key, None, B_IP);
    wide.allowed_ips = vec![(Ipv4Addr::new(10, 90, 0, 0), 24)];
    a.core.add_peer(&mut a.io, wide).unwrap();
    a.core.on_tun_packet(&mut a.io, &ipv4(A_IP, B_IP, b"to b"));
    assert_eq!(a.io.sent.last().map(|s| s.1), Some(b.addr));
}

#[test]
fn a_handshake_flood_is_answered_with_cookies_and_the_node_recovers() {
    use boringtun::noise::{Tunn, TunnResult};
    let (mut a, mut b) = pair();
    let now = SystemTime::now();
    let from: SocketAddr = "198.51.100.1:5000".parse().unwrap();
    let mut buf = vec![0u8; 2048];
    // 300 initiations with valid MACs from strangers within one second
    for i in 0..300u64 {
        let key = PrivateKey::generate(&mut rand::rngs::StdRng::seed_from_u64(1000 + i));
        let mut t = Tunn::new(key.to_x25519(), b.key.to_x25519(), None, None, 1, None).unwrap();
        if let TunnResult::WriteToNetwork(init) = t.format_handshake_initiation(&mut buf, false) {
            b.core.on_datagram(&mut b.io, from, init, now);
        }
    }
    let s = b.core.stats();
    assert!(s.cookies_sent > 0, "{s:?}");
    assert!(
        s.unknown_peer < 300,
        "not every initiation was decrypted: {s:?}"
    );
    assert!(
        b.io.sent.iter().all(|(d, to)| d.len() == 64 && *to == from),
        "only cookie replies went out"
    );
    b.io.sent.clear();
    // under load even the known peer's initiation gets a cookie (it would retry with MAC2)
    let cookies = s.cookies_sent;
    pump(&mut a, &mut b);
    assert_eq!(b.core.stats().cookies_sent, cookies + 1);
    assert!(a.core.peer_stats()[0].last_handshake.is_none());
    // a second later the count is reset and a fresh initiation gets through
    std::thread::sleep(Duration::from_millis(1100));
    b.core.tick(&mut b.io);
    a.core.remove_peer(&b.key).unwrap();
    a.core
        .add_peer(&mut a.io, peer(b.key, Some(B_ADDR), B_IP))
        .unwrap();
    pump(&mut a, &mut b);
    assert!(a.core.peer_stats()[0].last_handshake.is_some());
}
