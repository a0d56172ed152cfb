//! WireGuard data plane (wg-tunnel) in network namespaces (root): two namespaces joined by a
//! veth (the "data-centre segment", 10.61.0.0/24), a `Node` with a TUN device in each (tunnel
//! 10.62.0.0/24). TCP crosses the tunnel both ways; a bulk transfer with a planted marker
//! crosses the segment only as WireGuard ciphertext; a spoofed inner source is dropped; a
//! removed peer is cut off until it is added again; wrong keys never complete a handshake; a
//! gateway node with two agents keeps them apart (no agent can speak with the other's address).
//! Skipped (with a message) when not root or without /dev/net/tun.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use lab::bench::tunnel::capture::Capture;
use lab::netns::{self, Netns};
use wg_tunnel::{Node, NodeConfig, NodeError, NodeHandle, PeerConfig, PrivateKey, PublicKey, Tun};

const A_DC: Ipv4Addr = Ipv4Addr::new(10, 61, 0, 1);
const B_DC: Ipv4Addr = Ipv4Addr::new(10, 61, 0, 2);
const A_TUN: Ipv4Addr = Ipv4Addr::new(10, 62, 0, 1);
const B_TUN: Ipv4Addr = Ipv4Addr::new(10, 62, 0, 2);
/// B listens on a fixed port (the capture needs it before the nodes start); A on port 0.
const B_PORT: u16 = 51820;
const HANDSHAKE: Duration = Duration::from_secs(5);

fn skip_reason() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, TUN devices)");
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun on this machine");
    }
    None
}

macro_rules! root_or_skip {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// The two namespaces and the segment between them.
struct Segment {
    a: Netns,
    b: Netns,
}

impl Segment {
    fn new() -> Segment {
        let a = Netns::create("wta").unwrap();
        let b = Netns::create("wtb").unwrap();
        netns::veth(&a, "dc0", &b, "dc0").unwrap();
        a.add_addr("dc0", A_DC.into(), 24).unwrap();
        b.add_addr("dc0", B_DC.into(), 24).unwrap();
        Segment { a, b }
    }
}

fn peer(key: PublicKey, endpoint: Option<SocketAddr>, ip: Ipv4Addr) -> PeerConfig {
    PeerConfig {
        public_key: key,
        endpoint,
        allowed_ips: vec![(ip, 32)],
        persistent_keepalive: None,
    }
}

/// A node inside `ns` with TUN `tun` at `addr`/24.
fn node(
    ns: &Netns,
    tun: &str,
    addr: Ipv4Addr,
    key: &PrivateKey,
    port: u16,
    peers: Vec<PeerConfig>,
) -> NodeHandle {
    node_with(ns, tun, addr, key, port, peers, false)
}

/// A node; `plain`: its TUN device without the virtio header (one packet per read and write).
fn node_with(
    ns: &Netns,
    tun: &str,
    addr: Ipv4Addr,
    key: &PrivateKey,
    port: u16,
    peers: Vec<PeerConfig>,
    plain: bool,
) -> NodeHandle {
    let key = key.clone();
    ns.run(
        move || -> Result<NodeHandle, Box<dyn std::error::Error + Send + Sync>> {
            let t = if plain {
                Tun::create_plain(tun)?
            } else {
                Tun::create(tun)?
            };
            t.set_ipv4(addr, 24)?;
            t.set_mtu(1420)?;
            t.up()?;
            Ok(Node::spawn(NodeConfig {
                private_key: key,
                listen: SocketAddr::from(([0, 0, 0, 0], port)),
                tun: t,
                peers,
            })?)
        },
    )
    .unwrap()
    .unwrap()
}

/// Both nodes, A initiating, handshake completed on both sides.
struct Tunnel {
    seg: Segment,
    na: NodeHandle,
    nb: NodeHandle,
    ka: PublicKey,
    kb: PublicKey,
}

impl Tunnel {
    fn up(seg: Segment) -> Tunnel {
        Self::up_with(seg, false)
    }

    /// `b_plain`: B's TUN device without the virtio header (the two kinds must interwork).
    fn up_with(seg: Segment, b_plain: bool) -> Tunnel {
        let (a_key, b_key) = (PrivateKey::generate_os(), PrivateKey::generate_os());
        let (ka, kb) = (a_key.public_key(), b_key.public_key());
        let nb = node_with(
            &seg.b,
            "wg0",
            B_TUN,
            &b_key,
            B_PORT,
            vec![peer(ka, None, A_TUN)],
            b_plain,
        );
        let na = node(&seg.a, "wg0", A_TUN, &a_key, 0, vec![a_to_b(kb)]);
        assert_ne!(na.local_port(), 0, "port 0 resolves to the bound port");
        na.wait_handshake(&kb, HANDSHAKE).unwrap();
        nb.wait_handshake(&ka, HANDSHAKE).unwrap();
        Tunnel {
            seg,
            na,
            nb,
            ka,
            kb,
        }
    }
}

fn a_to_b(kb: PublicKey) -> PeerConfig {
    peer(kb, Some(SocketAddr::from((B_DC, B_PORT))), B_TUN)
}

/// Sends `payload` over UDP from `from` to `to_ip:port` in `to`; what arrived within `wait`.
fn udp_once(
    from: &Netns,
    to: &Netns,
    to_ip: Ipv4Addr,
    port: u16,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let rx = to
        .run(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)))
        .unwrap()
        .unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    from.run(|| {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.send_to(payload, (to_ip, port))
    })
    .unwrap()
    .unwrap();
    let mut buf = [0u8; 2048];
    rx.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

/// A TCP echo across the tunnel from `client` to `server_ip:port` in `server`.
fn tcp_echo(client: &Netns, server: &Netns, server_ip: Ipv4Addr, port: u16) {
    let listener = server
        .run(|| TcpListener::bind((server_ip, port)))
        .unwrap()
        .unwrap();
    let echo = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        s.write_all(&buf[..n]).unwrap();
    });
    let mut c = client
        .run(|| TcpStream::connect_timeout(&SocketAddr::from((server_ip, port)), HANDSHAKE))
        .unwrap()
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"echo through the tunnel").unwrap();
    let mut back = [0u8; 23];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"echo through the tunnel");
    echo.join().unwrap();
}

#[test]
fn tcp_crosses_both_ways_and_the_segment_carries_only_ciphertext() {
    root_or_skip!();
    let seg = Segment::new();
    let marker = format!("WG-PLAINTEXT-MARKER-{:016x}", rand_u64());
    let cap = Capture::start(&seg.b, "dc0", B_PORT, marker.as_bytes()).unwrap();
    let t = Tunnel::up(seg);
    tcp_echo(&t.seg.a, &t.seg.b, B_TUN, 7001);
    tcp_echo(&t.seg.b, &t.seg.a, A_TUN, 7002);

    // 4 MiB from A to B with the marker planted every 4 KiB
    let mut block = vec![b'.'; 4096];
    block[..marker.len()].copy_from_slice(marker.as_bytes());
    const BLOCKS: usize = 1024;
    let listener = t
        .seg
        .b
        .run(|| TcpListener::bind((B_TUN, 7003)))
        .unwrap()
        .unwrap();
    let sink = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        all
    });
    let mut c = t
        .seg
        .a
        .run(|| TcpStream::connect_timeout(&SocketAddr::from((B_TUN, 7003)), HANDSHAKE))
        .unwrap()
        .unwrap();
    for _ in 0..BLOCKS {
        c.write_all(&block).unwrap();
    }
    drop(c);
    let got = sink.join().unwrap();
    assert_eq!(got.len(), BLOCKS * block.len());
    assert!(
        got.chunks(block.len()).all(|c| c == block),
        "the stream arrived intact"
    );
    let seen = got
        .windows(marker.len())
        .filter(|w| *w == marker.as_bytes())
        .count();
    assert_eq!(seen, BLOCKS, "every marker arrived through the tunnel");

    // control: the same marker in a plain datagram on the segment is seen by the capture
    udp_once(&t.seg.a, &t.seg.b, B_DC, 9999, marker.as_bytes()).unwrap();
    let report = cap.finish().unwrap();
    eprintln!(
        "capture: {} frames, WireGuard by type {:?}, {} WireGuard bytes, {} with the marker",
        report.frames, report.wg_frames, report.wg_bytes, report.marker_frames
    );
    assert_eq!(
        report.marker_frames, 1,
        "only the plain control datagram shows the marker"
    );
    assert!(
        report.wg_frames[1] >= 1 && report.wg_frames[2] >= 1,
        "handshake seen"
    );
    assert!(report.wg_frames[4] > 100, "data messages seen");
    assert!(
        report.wg_bytes > (BLOCKS * block.len()) as u64,
        "the transfer crossed as WireGuard"
    );
    let a_view = t.na.peers().unwrap();
    assert_eq!(a_view.len(), 1);
    assert!(a_view[0].tx_bytes > (BLOCKS * block.len()) as u64);
    assert_eq!(a_view[0].endpoint, Some(SocketAddr::from((B_DC, B_PORT))));
    let b_view = t.nb.peers().unwrap();
    assert_eq!(
        b_view[0].endpoint.map(|e| e.ip()),
        Some(A_DC.into()),
        "B learnt A's endpoint"
    );
    assert!(b_view[0].last_handshake.is_some());
    t.na.shutdown().unwrap();
    t.nb.shutdown().unwrap();
}

fn rand_u64() -> u64 {
    let k = PrivateKey::generate_os();
    let b = k.as_bytes();
    u64::from_le_bytes([b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8]])
}

/// An IPv4/UDP packet (UDP checksum 0 = none; the kernel fills in the IP checksum).
fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = vec![0u8; 28];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[20..22].copy_from_slice(&5555u16.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Sends raw IPv4 packets (IP_HDRINCL) from inside `ns`.
fn send_raw(ns: &Netns, packets: &[Vec<u8>]) {
    ns.run(|| {
        // SAFETY: plain socket(2); the fd is closed below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        for p in packets {
            let dst = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes([p[16], p[17], p[18], p[19]]),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `p` and `dst` are live for the call; sizes passed match.
            let n = unsafe {
                libc::sendto(
                    fd,
                    p.as_ptr().cast(),
                    p.len(),
                    0,
                    (&raw const dst).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            assert_eq!(n, p.len() as isize, "{}", std::io::Error::last_os_error());
        }
        // SAFETY: closes the fd opened above.
        unsafe { libc::close(fd) };
    })
    .unwrap();
}

#[test]
fn a_spoofed_inner_source_is_dropped() {
    root_or_skip!();
    // B without the TUN offloads, A with them: TCP crosses between the two kinds
    let t = Tunnel::up_with(Segment::new(), true);
    tcp_echo(&t.seg.a, &t.seg.b, B_TUN, 7011);
    tcp_echo(&t.seg.b, &t.seg.a, A_TUN, 7012);
    let rx = t
        .seg
        .b
        .run(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 7777)))
        .unwrap()
        .unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let dropped_before = t.nb.peers().unwrap()[0].dropped;
    // 10.62.0.99 is routed into A's tunnel (10.62.0.0/24 on wg0) and on B's side it is on
    // B's wg0 subnet too, so only the node's allowed-IPs check stands between it and B
    let spoofed = udp_packet(Ipv4Addr::new(10, 62, 0, 99), B_TUN, 7777, b"spoofed");
    let genuine = udp_packet(A_TUN, B_TUN, 7777, b"genuine");
    send_raw(
        &t.seg.a,
        &[spoofed.clone(), spoofed.clone(), spoofed, genuine],
    );
    let mut buf = [0u8; 64];
    let (n, from) = rx.recv_from(&mut buf).expect("the genuine packet arrives");
    assert_eq!(&buf[..n], b"genuine", "from {from}");
    assert_eq!(from.ip(), std::net::IpAddr::from(A_TUN));
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(rx.recv_from(&mut buf).is_err(), "nothing else arrives");
    assert_eq!(t.nb.peers().unwrap()[0].dropped, dropped_before + 3);
    assert!(t.na.peers().unwrap()[0].dropped == 0);
}

#[test]
fn a_removed_peer_is_cut_off_until_it_is_added_again() {
    root_or_skip!();
    let t = Tunnel::up(Segment::new());
    let (a, b) = (&t.seg.a, &t.seg.b);
    assert_eq!(
        udp_once(a, b, B_TUN, 7101, b"before").as_deref(),
        Some(&b"before"[..])
    );

    t.nb.remove_peer(&t.ka).unwrap();
    assert!(t.nb.peers().unwrap().is_empty());
    assert!(matches!(
        t.nb.wait_handshake(&t.ka, Duration::from_millis(10)),
        Err(NodeError::UnknownPeer(_))
    ));
    let unknown_before = t.nb.stats().unwrap().unknown_peer;
    assert_eq!(udp_once(a, b, B_TUN, 7102, b"after removal"), None);
    assert!(t.nb.stats().unwrap().unknown_peer > unknown_before);
    assert_eq!(udp_once(b, a, A_TUN, 7103, b"no way back"), None);

    // A starts a fresh session: B does not answer
    t.na.remove_peer(&t.kb).unwrap();
    t.na.add_peer(a_to_b(t.kb)).unwrap();
    assert!(matches!(
        t.na.wait_handshake(&t.kb, Duration::from_secs(2)),
        Err(NodeError::HandshakeTimeout { .. })
    ));
    assert_eq!(udp_once(a, b, B_TUN, 7104, b"still cut off"), None);

    // until B adds A again
    t.nb.add_peer(peer(t.ka, None, A_TUN)).unwrap();
    t.na.remove_peer(&t.kb).unwrap();
    t.na.add_peer(a_to_b(t.kb)).unwrap();
    t.na.wait_handshake(&t.kb, HANDSHAKE).unwrap();
    assert_eq!(
        udp_once(a, b, B_TUN, 7105, b"back").as_deref(),
        Some(&b"back"[..])
    );
    assert_eq!(
        udp_once(b, a, A_TUN, 7106, b"both ways").as_deref(),
        Some(&b"both ways"[..])
    );
}

#[test]
fn wrong_keys_never_complete_a_handshake() {
    root_or_skip!();
    let seg = Segment::new();
    let (a_key, b_key) = (PrivateKey::generate_os(), PrivateKey::generate_os());
    let kb = b_key.public_key();
    let nb = node(
        &seg.b,
        "wg0",
        B_TUN,
        &b_key,
        B_PORT,
        vec![peer(a_key.public_key(), None, A_TUN)],
    );
    // an impostor with its own key, claiming A's tunnel address
    let impostor = node(
        &seg.a,
        "wg0",
        A_TUN,
        &PrivateKey::generate_os(),
        0,
        vec![a_to_b(kb)],
    );
    // A itself, but holding a wrong key for B
    let wrong_b = PrivateKey::generate_os().public_key();
    let misconfigured = node(
        &seg.a,
        "wg1",
        Ipv4Addr::new(10, 63, 0, 1),
        &a_key,
        0,
        vec![peer(wrong_b, Some(SocketAddr::from((B_DC, B_PORT))), B_TUN)],
    );
    // 6 s covers a retransmitted initiation (REKEY_TIMEOUT is 5 s)
    assert!(matches!(
        impostor.wait_handshake(&kb, Duration::from_secs(6)),
        Err(NodeError::HandshakeTimeout { .. })
    ));
    assert!(matches!(
        misconfigured.wait_handshake(&wrong_b, Duration::from_millis(200)),
        Err(NodeError::HandshakeTimeout { .. })
    ));
    let s = nb.stats().unwrap();
    eprintln!("B's counters: {s:?}");
    assert!(
        s.unknown_peer >= 1,
        "the impostor's initiation named an unknown key"
    );
    assert!(
        s.invalid >= 1,
        "the initiation for another key failed B's MAC check"
    );
    let view = nb.peers().unwrap();
    assert!(view[0].last_handshake.is_none());
    assert_eq!(view[0].rx_bytes, 0, "nothing was ever accepted for A");
    assert!(impostor.peers().unwrap()[0].last_handshake.is_none());
}

#[test]
fn a_gateway_node_serves_several_peers_and_keeps_them_apart() {
    root_or_skip!();
    let gw = Netns::create("wtg").unwrap();
    let agents = [Netns::create("wt1").unwrap(), Netns::create("wt2").unwrap()];
    let gw_tun = Ipv4Addr::new(10, 62, 0, 1);
    let agent_tun = [Ipv4Addr::new(10, 62, 0, 11), Ipv4Addr::new(10, 62, 0, 12)];
    let gw_key = PrivateKey::generate_os();
    let keys = [PrivateKey::generate_os(), PrivateKey::generate_os()];
    for (i, ns) in agents.iter().enumerate() {
        let gw_if = format!("dc{}", i + 1);
        netns::veth(&gw, &gw_if, ns, "dc0").unwrap();
        gw.add_addr(&gw_if, Ipv4Addr::new(10, 61, i as u8 + 1, 1).into(), 24)
            .unwrap();
        ns.add_addr("dc0", Ipv4Addr::new(10, 61, i as u8 + 1, 2).into(), 24)
            .unwrap();
    }
    let gw_node = node(
        &gw,
        "wg0",
        gw_tun,
        &gw_key,
        B_PORT,
        vec![
            peer(keys[0].public_key(), None, agent_tun[0]),
            peer(keys[1].public_key(), None, agent_tun[1]),
        ],
    );
    let agent_nodes: Vec<NodeHandle> = (0..2)
        .map(|i| {
            let endpoint = SocketAddr::from((Ipv4Addr::new(10, 61, i as u8 + 1, 1), B_PORT));
            let mut to_gw = peer(gw_key.public_key(), Some(endpoint), gw_tun);
            to_gw.allowed_ips = vec![(Ipv4Addr::new(10, 62, 0, 0), 24)];
            to_gw.persistent_keepalive = Some(25);
            node(&agents[i], "wg0", agent_tun[i], &keys[i], 0, vec![to_gw])
        })
        .collect();
    for (i, n) in agent_nodes.iter().enumerate() {
        n.wait_handshake(&gw_key.public_key(), HANDSHAKE).unwrap();
        gw_node
            .wait_handshake(&keys[i].public_key(), HANDSHAKE)
            .unwrap();
    }
    // each agent reaches the gateway, and the gateway each agent, by its own key
    for i in 0..2 {
        let msg = format!("to agent {i}");
        assert_eq!(
            udp_once(&gw, &agents[i], agent_tun[i], 7200, msg.as_bytes()).as_deref(),
            Some(msg.as_bytes())
        );
        let msg = format!("from agent {i}");
        assert_eq!(
            udp_once(&agents[i], &gw, gw_tun, 7201, msg.as_bytes()).as_deref(),
            Some(msg.as_bytes())
        );
    }
    // agent 0 cannot pass itself off as agent 1 inside the tunnel
    let dropped_before = gw_node
        .peers()
        .unwrap()
        .iter()
        .find(|p| p.public_key == keys[0].public_key())
        .unwrap()
        .dropped;
    let rx = gw
        .run(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 7202)))
        .unwrap()
        .unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    send_raw(
        &agents[0],
        &[udp_packet(agent_tun[1], gw_tun, 7202, b"i am agent 1")],
    );
    let mut buf = [0u8; 64];
    assert!(
        rx.recv_from(&mut buf).is_err(),
        "the impersonation was dropped"
    );
    let view = gw_node.peers().unwrap();
    assert_eq!(view.len(), 2);
    let p0 = view
        .iter()
        .find(|p| p.public_key == keys[0].public_key())
        .unwrap();
    assert_eq!(p0.dropped, dropped_before + 1);
    assert_eq!(
        p0.endpoint.map(|e| e.ip()),
        Some(Ipv4Addr::new(10, 61, 1, 2).into())
    );
    // removing agent 0 leaves agent 1 working
    gw_node.remove_peer(&keys[0].public_key()).unwrap();
    assert_eq!(udp_once(&agents[0], &gw, gw_tun, 7203, b"gone"), None);
    assert_eq!(
        udp_once(&agents[1], &gw, gw_tun, 7204, b"still here").as_deref(),
        Some(&b"still here"[..])
    );
}
