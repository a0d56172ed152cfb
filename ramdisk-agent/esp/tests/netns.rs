//! Two userspace ESP endpoints (`agent_esp::io::Endpoint`) in two network namespaces joined by
//! a veth pair, each with its own TUN device, SAs with hand-made keys in opposite directions
//! (root; skipped with a reason otherwise). Shows ICMP echo and TCP both ways through ESP in
//! UDP/4500; that a capture on the underlay (AF_PACKET on the veth) holds only ARP and
//! UDP 4500 <-> 4500 frames and no byte of a marker planted in the inner traffic; that a
//! re-sent ESP datagram is dropped as a replay; and that IKE behind the non-ESP marker reaches
//! the IKE channel. No external tools but `ip` and `sysctl`. Interop with strongSwan follows
//! when the IKE layer negotiates child SAs and hands over their keys.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::net::{self, Capture, in_ns, udp_of};

use agent_esp::io::{Counters, Endpoint, EndpointConfig, IkeDatagram, TunDevice};
use agent_esp::{InboundSa, LifetimeLimits, OutboundSa, SaKey};

const MARKER: &[u8] = b"ESP-MARKER-7f3a9c-INNER-PLAINTEXT";
const UNDER_A: Ipv4Addr = Ipv4Addr::new(10, 94, 0, 1);
const UNDER_B: Ipv4Addr = Ipv4Addr::new(10, 94, 0, 2);
const INNER_A: Ipv4Addr = Ipv4Addr::new(10, 93, 0, 1);
const INNER_B: Ipv4Addr = Ipv4Addr::new(10, 93, 0, 2);
const SPI_TO_B: u32 = 0x0001_000b;
const SPI_TO_A: u32 = 0x0001_000a;

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, TUN)".into());
    }
    for p in ["/usr/sbin/ip", "/dev/net/tun"] {
        if !Path::new(p).exists() {
            return Some(format!("{p} missing"));
        }
    }
    None
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespaces, deleted on drop (which also removes the veth pair).
struct Lab {
    a: String,
    b: String,
}

impl Lab {
    fn new() -> Lab {
        let id = std::process::id() % 100_000;
        let lab = Lab {
            a: format!("espa{id}"),
            b: format!("espb{id}"),
        };
        run("ip", &["netns", "add", &lab.a]);
        run("ip", &["netns", "add", &lab.b]);
        for ns in [&lab.a, &lab.b] {
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
            );
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        run(
            "ip",
            &[
                "-n", &lab.a, "link", "add", "under", "type", "veth", "peer", "name", "under",
                "netns", &lab.b,
            ],
        );
        for (ns, addr) in [(&lab.a, UNDER_A), (&lab.b, UNDER_B)] {
            run(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{addr}/24"),
                    "dev",
                    "under",
                ],
            );
            run("ip", &["-n", ns, "link", "set", "under", "up"]);
        }
        lab
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn sa_key(fill: u8) -> SaKey {
    SaKey::new([fill; 32], [fill ^ 0x55; 4])
}

struct Running {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("endpoint thread");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where one endpoint sits: its namespace, underlay and inner addresses and the peer's.
struct Side<'a> {
    ns: &'a str,
    under: Ipv4Addr,
    peer: Ipv4Addr,
    inner: Ipv4Addr,
    peer_inner: Ipv4Addr,
}

/// An endpoint in `side.ns`: TUN `esp0` with `inner` <-> `peer_inner`, socket `under`:4500.
fn endpoint(
    side: Side<'_>,
    (out_spi, out_key): (u32, SaKey),
    (in_spi, in_key): (u32, SaKey),
    ike: Option<mpsc::Sender<IkeDatagram>>,
) -> Running {
    let Side {
        ns,
        under,
        peer,
        inner,
        peer_inner,
    } = side;
    let (tun, sock) = in_ns(ns, || {
        (
            TunDevice::create("esp0").expect("TUN"),
            UdpSocket::bind(SocketAddrV4::new(under, 4500)).expect("bind 4500"),
        )
    });
    run(
        "ip",
        &[
            "-n",
            ns,
            "addr",
            "add",
            &inner.to_string(),
            "peer",
            &format!("{peer_inner}/32"),
            "dev",
            "esp0",
        ],
    );
    run(
        "ip",
        &["-n", ns, "link", "set", "esp0", "mtu", "1400", "up"],
    );
    let now = Instant::now();
    let limits = LifetimeLimits::default();
    let config = EndpointConfig {
        peer: SocketAddr::from((peer, 4500)),
        outbound: OutboundSa::new(out_spi, &out_key, limits, now).expect("outbound"),
        inbound: InboundSa::new(in_spi, &in_key, limits, now).expect("inbound"),
    };
    let mut ep = Endpoint::new(sock, tun, config, ike).expect("endpoint");
    let stop = Arc::new(AtomicBool::new(false));
    let counters = ep.counters();
    let flag = Arc::clone(&stop);
    let thread = std::thread::spawn(move || ep.run(&flag).expect("endpoint loop"));
    Running {
        stop,
        counters,
        thread: Some(thread),
    }
}

/// Sends ICMP echo requests carrying the marker from `ns` to `to`; true when a reply with the
/// same payload comes back.
fn ping(ns: &str, to: Ipv4Addr, seq: u16) -> bool {
    in_ns(ns, || net::ping(to, seq, MARKER).is_some())
}

/// Opens a TCP connection from `client_ns` to `server_ns`'s `server`, sends 256 KiB of marker
/// lines and reads them back from the echoing server.
fn tcp_echo(server_ns: &str, server: Ipv4Addr, client_ns: &str) {
    let listener = in_ns(server_ns, || {
        TcpListener::bind(SocketAddrV4::new(server, 7000)).expect("listen")
    });
    let echo = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 65_536];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => s.write_all(&buf[..n]).expect("echo"),
            }
        }
    });
    let mut conn = in_ns(client_ns, || {
        TcpStream::connect_timeout(&SocketAddr::from((server, 7000)), Duration::from_secs(5))
            .expect("connect through ESP")
    });
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let data: Vec<u8> = MARKER
        .iter()
        .chain(b"\n")
        .copied()
        .cycle()
        .take(256 * 1024)
        .collect();
    let writer = {
        let mut w = conn.try_clone().expect("clone");
        let data = data.clone();
        std::thread::spawn(move || {
            w.write_all(&data).expect("send");
            w.shutdown(std::net::Shutdown::Write).expect("shutdown");
        })
    };
    let mut back = Vec::new();
    conn.read_to_end(&mut back).expect("read echo");
    writer.join().expect("writer");
    echo.join().expect("echo server");
    assert_eq!(back.len(), data.len());
    assert!(back == data, "TCP bytes came back altered");
}

#[test]
fn esp_endpoints_carry_ping_and_tcp_and_drop_replays() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let lab = Lab::new();
    let capture = Capture::start(&lab.a, "under");
    let (ike_tx, ike_rx) = mpsc::channel();
    let mut a = endpoint(
        Side {
            ns: &lab.a,
            under: UNDER_A,
            peer: UNDER_B,
            inner: INNER_A,
            peer_inner: INNER_B,
        },
        (SPI_TO_B, sa_key(0xb0)),
        (SPI_TO_A, sa_key(0xa0)),
        None,
    );
    let mut b = endpoint(
        Side {
            ns: &lab.b,
            under: UNDER_B,
            peer: UNDER_A,
            inner: INNER_B,
            peer_inner: INNER_A,
        },
        (SPI_TO_A, sa_key(0xa0)),
        (SPI_TO_B, sa_key(0xb0)),
        Some(ike_tx),
    );
    // TunDevice sets a long transmit queue (packets waiting for the endpoint to read them)
    let link = Command::new("ip")
        .args(["-n", &lab.a, "link", "show", "esp0"])
        .output()
        .expect("ip link show");
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(
        link.contains(&format!("qlen {}", agent_esp::io::TX_QUEUE_LEN)),
        "{link}"
    );

    assert!(ping(&lab.a, INNER_B, 1), "no echo reply from B through ESP");
    assert!(ping(&lab.b, INNER_A, 2), "no echo reply from A through ESP");
    tcp_echo(&lab.b, INNER_B, &lab.a);
    tcp_echo(&lab.a, INNER_A, &lab.b);

    // stop capturing, then replay an ESP datagram A sent to B
    std::thread::sleep(Duration::from_millis(200));
    let frames = capture.finish();
    let replayed_before = b.counters.replayed.load(Ordering::Relaxed);
    let received_before = b.counters.received.load(Ordering::Relaxed);
    let esp_to_b: Vec<&[u8]> = frames
        .iter()
        .filter_map(|f| udp_of(f))
        .filter(|(s, d, sp, dp, p)| {
            *s == UNDER_A && *d == UNDER_B && *sp == 4500 && *dp == 4500 && p.len() > 8
        })
        .map(|(.., p)| p)
        .collect();
    assert!(
        esp_to_b.len() > 100,
        "ESP datagrams A -> B: {}",
        esp_to_b.len()
    );
    let replay = esp_to_b[esp_to_b.len() / 2].to_vec();
    in_ns(&lab.a, || {
        let s = UdpSocket::bind(SocketAddrV4::new(UNDER_A, 0)).expect("bind");
        for _ in 0..3 {
            s.send_to(&replay, SocketAddrV4::new(UNDER_B, 4500))
                .expect("replay");
        }
    });
    let until = Instant::now() + Duration::from_secs(5);
    while b.counters.replayed.load(Ordering::Relaxed) < replayed_before + 3 {
        assert!(
            Instant::now() < until,
            "replays not counted: {:?}",
            b.counters
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(b.counters.received.load(Ordering::Relaxed), received_before);

    // (after the capture, as it comes from another port) IKE behind the non-ESP marker reaches B's IKE channel; a keepalive is counted
    in_ns(&lab.a, || {
        let s = UdpSocket::bind(SocketAddrV4::new(UNDER_A, 0)).expect("bind");
        let mut d = Vec::new();
        agent_esp::udp_encap::ike_datagram(b"an IKE message", &mut d);
        s.send_to(&d, SocketAddrV4::new(UNDER_B, 4500))
            .expect("send IKE");
        s.send_to(&[0xff], SocketAddrV4::new(UNDER_B, 4500))
            .expect("send keepalive");
    });
    let ike = ike_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("IKE message on the channel");
    assert_eq!(ike.message, b"an IKE message");
    assert_eq!(ike.from.ip(), std::net::IpAddr::V4(UNDER_A));

    // the underlay: ARP and UDP 4500 <-> 4500 only, no byte of the marker anywhere
    let mut esp = 0;
    for f in &frames {
        assert!(
            !f.windows(MARKER.len()).any(|w| w == MARKER),
            "marker in clear on the underlay"
        );
        assert!(
            !f.windows(12).any(|w| w == &MARKER[..12]),
            "part of the marker in clear on the underlay"
        );
        if f.get(12..14) == Some(&[0x08, 0x06]) {
            continue; // ARP
        }
        let (_, _, sp, dp, payload) = udp_of(f)
            .unwrap_or_else(|| panic!("not UDP on the underlay: {:02x?}", &f[..f.len().min(64)]));
        assert_eq!((sp, dp), (4500, 4500), "UDP ports");
        match agent_esp::udp_encap::classify(payload) {
            Ok(agent_esp::udp_encap::Datagram::Esp { spi, .. }) => {
                assert!(spi == SPI_TO_A || spi == SPI_TO_B);
                esp += 1;
            }
            other => panic!("not ESP between the endpoints: {other:?}"),
        }
    }
    eprintln!(
        "{} frames captured, {esp} ESP; A: {:?}; B: {:?}",
        frames.len(),
        a.counters,
        b.counters
    );
    a.stop();
    b.stop();
    for c in [&a.counters, &b.counters] {
        assert_eq!(c.integrity.load(Ordering::Relaxed), 0);
        assert_eq!(c.malformed.load(Ordering::Relaxed), 0);
        assert!(c.sent.load(Ordering::Relaxed) > 100);
    }
    drop((a, b));
    drop(lab);
}
