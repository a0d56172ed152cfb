//! Interop, issue 6's refusals on the wire: real ESP-in-UDP packets between our tunnel and
//! strongSwan's charon (kernel-libipsec), captured on the underlay veth and written back onto
//! it (AF_PACKET) replayed or altered, each side in its own network namespace (root; skipped
//! with a reason otherwise).
//!
//! - charon -> us, replayed: every copy is counted `replayed` by our endpoint, nothing reaches
//!   the TUN (a UDP listener on our inner address receives no duplicate), fresh traffic flows.
//! - charon -> us, altered: packets charon sent are held back from our endpoint (a blackhole
//!   policy rule drops them after the capture tap), then injected with one ICV byte flipped,
//!   one ciphertext byte flipped, or the sequence number raised by 2^30: each counted
//!   `integrity`, nothing delivered; the genuine held packets (the same sequence numbers) are
//!   then accepted and delivered, so neither the altered copies nor the far-ahead sequence
//!   number moved the window; later fresh traffic flows.
//! - us -> charon, the same two checks against charon: a listener behind charon receives no
//!   replay and no altered copy; charon logs "ESP sequence number verification failed" per
//!   replay (with our SPI and its sequence number) and "ESP decryption or ICV verification
//!   failed" per altered copy, and accepts the genuine held packets afterwards.
//!
//! Injected frames are the captured bytes with the UDP checksum set to 0 (RFC 3948 2.1: it
//! SHOULD be sent as zero; a capture taken before checksum offload may hold a partial one).
//! The ESP bytes, IP header and MAC addresses are as captured.

#[allow(dead_code)]
#[path = "../../ike/tests/common/ca.rs"]
mod ca;
mod common;
#[allow(dead_code)]
#[path = "../../ike/tests/common/strongswan.rs"]
mod strongswan;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use agent_esp::LifetimeLimits;
use agent_esp::io::Counters;
use agent_ike::{
    DhGroup, LocalCredential, PeerTrust, RetransmitPolicy, SystemEntropy, TrafficSelector,
};
use agent_ipsec::{IkeConfig, InnerAddress, LifeConfig, SystemClock, Tunnel, TunnelConfig};
use ca::Ca;
use common::net::{Capture, in_ns, interfaces, ping, udp_of};
use strongswan::{Lab, RESPONDER, skip_reason};

const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const INNER: Ipv4Addr = Ipv4Addr::new(10, 30, 0, 5);
const BEHIND: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);
/// UDP ports of the listeners inside the tunnel: ours on INNER, charon's side's on BEHIND.
const PORT_US: u16 = 9000;
const PORT_THEM: u16 = 9001;
const ICV_LEN: usize = 16;
/// SPI, sequence number and the 8-byte IV (AES-GCM) precede the ciphertext.
const CIPHERTEXT_AT: usize = 16;
const REPLAYED_LOG: &str = "ESP sequence number verification failed";
const INTEGRITY_LOG: &str = "ESP decryption or ICV verification failed";

fn swanctl() -> String {
    format!(
        "connections {{\n  agent {{\n    version = 2\n    local_addrs = {RESPONDER}\n    \
         remote_addrs = {LOCAL}\n    proposals = aes256gcm16-prfsha256-x25519\n    \
         local {{ auth = pubkey\n      certs = fw.pem }}\n    \
         remote {{ auth = pubkey\n      cacerts = ca.pem }}\n    \
         children {{ c {{ local_ts = 10.20.0.0/16\n      remote_ts = {INNER}/32\n      \
         esp_proposals = aes256gcm16 }} }}\n  }}\n}}\n"
    )
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lab (IPv6 off, BEHIND on charon's loopback, the `local` policy rule moved to
/// preference 100 so a [`Hold`] can go before it) and our tunnel up against charon.
fn lab_and_tunnel() -> (Lab, Tunnel) {
    let ca = Ca::new("ipsec refusals CA");
    let (_, fw_pem, _, fw_key) = ca.issue("tenant firewall", "fw.tenant.test");
    let files = [
        ("x509ca/ca.pem", ca.cert_pem.as_str()),
        ("x509/fw.pem", fw_pem.as_str()),
        ("private/fw.key", fw_key.as_str()),
    ];
    let lab = Lab::start_with(&[LOCAL], &swanctl(), "", "", &files);
    for ns in [&lab.ns_i, &lab.ns_r] {
        sh(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        sh(&[
            "ip", "-n", ns, "rule", "add", "pref", "100", "lookup", "local",
        ]);
        sh(&["ip", "-n", ns, "rule", "del", "pref", "0"]);
    }
    let behind = format!("{BEHIND}/16");
    sh(&["ip", "-n", &lab.ns_r, "addr", "add", &behind, "dev", "lo"]);
    let (agent_der, _, agent_key, _) = ca.issue("agent 52:54:00:12:34:56", "agent.lease.test");
    let cfg = TunnelConfig {
        ike: IkeConfig {
            local: LOCAL,
            peer: RESPONDER,
            groups: vec![DhGroup::Curve25519],
            credential: LocalCredential::new(&agent_der, &agent_key).expect("credential"),
            trust: PeerTrust::Ca(ca.cert_der.clone()),
            peer_id: None,
            inner: InnerAddress::Fixed(INNER),
            remote_ts: vec![TrafficSelector::v4([10, 0, 0, 0], [10, 255, 255, 255])],
            retransmit: RetransmitPolicy {
                initial: Duration::from_millis(500),
                factor_percent: 200,
                max: Duration::from_secs(2),
                tries: 3,
            },
        },
        tun_name: "ipsec-agent".into(),
        mtu: 1400,
        esp_limits: LifetimeLimits::default(),
    };
    // No liveness check of ours while packets are held: the only IKE traffic is the handshake.
    let life = LifeConfig {
        dpd_idle: Duration::from_secs(600),
        ..LifeConfig::default()
    };
    let tunnel = in_ns(&lab.ns_i, || {
        Tunnel::up_with(cfg, life, &SystemClock, &mut SystemEntropy::default())
    })
    .unwrap_or_else(|e| panic!("tunnel: {e}\n--- charon log ---\n{}", lab.log()));
    (lab, tunnel)
}

/// The veth of namespace `ns` whose name starts with `prefix`.
fn veth(ns: &str, prefix: &str) -> String {
    in_ns(ns, interfaces)
        .into_iter()
        .find(|n| n.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}* interface in {ns}"))
}

/// One captured ESP-in-UDP frame (Ethernet, IPv4, UDP 4500 -> 4500), its UDP checksum zeroed.
#[derive(Debug, Clone)]
struct EspFrame {
    frame: Vec<u8>,
    /// Where the ESP header (the SPI) starts in the frame.
    esp: usize,
}

impl EspFrame {
    fn seq(&self) -> u32 {
        let s = &self.frame[self.esp + 4..self.esp + 8];
        u32::from_be_bytes([s[0], s[1], s[2], s[3]])
    }

    /// A copy with byte `at` of the ESP packet (0 = the SPI's first) XORed with `mask`.
    fn altered(&self, at: usize, mask: u8) -> Vec<u8> {
        let mut f = self.frame.clone();
        f[self.esp + at] ^= mask;
        f
    }

    fn esp_len(&self) -> usize {
        self.frame.len() - self.esp
    }
}

/// The ESP-in-UDP frames from `src` with `spi` among `frames`, in capture order.
fn esp_frames(frames: &[Vec<u8>], src: Ipv4Addr, spi: u32) -> Vec<EspFrame> {
    frames
        .iter()
        .filter_map(|f| {
            let (s, _, sp, dp, p) = udp_of(f)?;
            let ip_len = usize::from(u16::from_be_bytes([f[16], f[17]]));
            let esp = f.len() - p.len();
            let ours = s == src && (sp, dp) == (4500, 4500) && ip_len == f.len() - 14;
            (ours && p.len() > CIPHERTEXT_AT + ICV_LEN && p[..4] == spi.to_be_bytes()).then(|| {
                let mut frame = f.clone();
                frame[esp - 2..esp].fill(0);
                EspFrame { frame, esp }
            })
        })
        .collect()
}

/// Writes each frame as it is out of interface `dev` of namespace `ns` (AF_PACKET): it
/// arrives at the veth's other end as if sent by that side's stack.
fn inject(ns: &str, dev: &str, frames: &[Vec<u8>]) {
    in_ns(ns, || {
        // SAFETY: plain socket(2); protocol 0: this socket only sends.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = std::ffi::CString::new(dev).expect("name");
        // SAFETY: the name is NUL-terminated.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(index > 0, "no interface {dev} in {ns}");
        for f in frames {
            // SAFETY: sockaddr_ll is plain data.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
            sll.sll_ifindex = index as i32;
            sll.sll_halen = 6;
            sll.sll_addr[..6].copy_from_slice(&f[..6]);
            // SAFETY: sends a live buffer to a live sockaddr_ll of the right size.
            let n = unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    f.as_ptr().cast(),
                    f.len(),
                    0,
                    (&raw const sll).cast(),
                    size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            assert_eq!(
                n,
                f.len() as isize,
                "inject on {dev}: {}",
                std::io::Error::last_os_error()
            );
        }
    });
}

/// While alive, UDP 4500 -> 4500 datagrams from `from` arriving in namespace `ns` are dropped
/// by a blackhole policy rule: after the AF_PACKET tap (they are captured), before the socket.
struct Hold<'a> {
    ns: &'a str,
}

impl<'a> Hold<'a> {
    fn new(ns: &'a str, from: Ipv4Addr) -> Self {
        let from = from.to_string();
        sh(&[
            "ip",
            "-n",
            ns,
            "rule",
            "add",
            "pref",
            "10",
            "from",
            &from,
            "ipproto",
            "udp",
            "sport",
            "4500",
            "dport",
            "4500",
            "blackhole",
        ]);
        Hold { ns }
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let ok = Command::new("ip")
            .args(["-n", self.ns, "rule", "del", "pref", "10"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("could not delete the hold rule in {}", self.ns);
        }
    }
}

/// A UDP socket bound to `addr` in namespace `ns`.
fn udp(ns: &str, addr: Ipv4Addr, port: u16) -> UdpSocket {
    let s = in_ns(ns, || {
        UdpSocket::bind(SocketAddrV4::new(addr, port)).expect("bind")
    });
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    s
}

/// What arrives on `sock` until `quiet` passes without a datagram, or `want` have arrived.
fn datagrams(sock: &UdpSocket, want: usize, quiet: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let mut last = Instant::now();
    let mut buf = [0u8; 2048];
    while got.len() < want && last.elapsed() < quiet {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            last = Instant::now();
        }
    }
    got
}

/// Sends each message on `from` to `to` (through the tunnel), 20 ms apart: one ESP packet each.
fn send_all(from: &UdpSocket, to: SocketAddrV4, msgs: &[String]) {
    for m in msgs {
        from.send_to(m.as_bytes(), to)
            .expect("send into the tunnel");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn msgs(tag: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{tag}-{i}")).collect()
}

/// The endpoint's counters this test looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    received: u64,
    replayed: u64,
    integrity: u64,
    malformed: u64,
    unclassified: u64,
}

fn seen(c: &Counters) -> Seen {
    Seen {
        received: c.received.load(Ordering::Relaxed),
        replayed: c.replayed.load(Ordering::Relaxed),
        integrity: c.integrity.load(Ordering::Relaxed),
        malformed: c.malformed.load(Ordering::Relaxed),
        unclassified: c.unclassified.load(Ordering::Relaxed),
    }
}

/// Packets the inbound SA `spi` authenticated (its lifetime count).
fn opened(tunnel: &Tunnel, spi: u32) -> u64 {
    let status = tunnel.sa_status();
    let sa = status.inbound.iter().find(|(s, _)| *s == spi);
    sa.map_or(0, |(_, packets)| *packets)
}

/// The counters once `want` holds (or 3 s passed), after a further 300 ms for stragglers.
fn settle(c: &Counters, want: Seen) -> Seen {
    let until = Instant::now() + Duration::from_secs(3);
    while seen(c) != want && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    seen(c)
}

/// One direction of the tunnel: the datagrams' sender and listener, the ESP they travel in,
/// where a [`Hold`] drops it and where copies are injected from.
struct Way<'a> {
    from: &'a UdpSocket,
    to: SocketAddrV4,
    listener: &'a UdpSocket,
    esp_src: Ipv4Addr,
    spi: u32,
    /// The ESP receiver's namespace.
    rx_ns: &'a str,
    /// The ESP sender's namespace and veth.
    tx_ns: &'a str,
    tx_dev: &'a str,
}

impl Way<'_> {
    /// `msgs` through the tunnel, each received by the listener; their ESP as captured on our
    /// veth (`dev` in `ns`).
    fn genuine(&self, ns: &str, dev: &str, msgs: &[String]) -> Vec<EspFrame> {
        let capture = Capture::start(ns, dev);
        send_all(self.from, self.to, msgs);
        let got = datagrams(self.listener, msgs.len(), Duration::from_secs(3));
        let frames = capture.finish();
        assert_eq!(got, msgs, "datagrams through the tunnel");
        let esp = esp_frames(&frames, self.esp_src, self.spi);
        assert_eq!(esp.len(), msgs.len(), "one ESP packet per datagram");
        esp
    }

    /// Like [`Way::genuine`] with the ESP dropped before the receiver's socket: the listener
    /// gets nothing.
    fn held(&self, ns: &str, dev: &str, msgs: &[String]) -> Vec<EspFrame> {
        let hold = Hold::new(self.rx_ns, self.esp_src);
        let capture = Capture::start(ns, dev);
        send_all(self.from, self.to, msgs);
        let leaked = datagrams(self.listener, msgs.len(), Duration::from_millis(300));
        let frames = capture.finish();
        drop(hold);
        assert!(leaked.is_empty(), "held ESP was delivered: {leaked:?}");
        let esp = esp_frames(&frames, self.esp_src, self.spi);
        assert_eq!(esp.len(), msgs.len(), "one held ESP packet per message");
        esp
    }

    fn inject(&self, frames: &[Vec<u8>]) {
        inject(self.tx_ns, self.tx_dev, frames);
    }

    /// Whatever reaches the listener within 300 ms.
    fn leaked(&self) -> Vec<String> {
        datagrams(self.listener, 1, Duration::from_millis(300))
    }

    /// One fresh datagram through the tunnel, received.
    fn carries(&self, tag: &str) {
        let m = msgs(tag, 1);
        send_all(self.from, self.to, &m);
        let got = datagrams(self.listener, 1, Duration::from_secs(3));
        assert_eq!(got, m, "fresh traffic after the refusals");
    }
}

fn frames(esp: &[EspFrame]) -> Vec<Vec<u8>> {
    esp.iter().map(|e| e.frame.clone()).collect()
}

/// Each frame twice: in order, then in reverse.
fn replays(esp: &[EspFrame]) -> Vec<Vec<u8>> {
    let mut f = frames(esp);
    f.extend(frames(esp).into_iter().rev());
    f
}

/// The first three packets altered: one ICV byte, one ciphertext byte, the sequence number
/// 2^30 ahead (authenticated data: the ICV check fails; a window moved there would refuse
/// the genuine packets as too old).
fn altered(esp: &[EspFrame]) -> Vec<Vec<u8>> {
    vec![
        esp[0].altered(esp[0].esp_len() - ICV_LEN, 0x01),
        esp[1].altered(CIPHERTEXT_AT, 0x80),
        esp[2].altered(4, 0x40),
    ]
}

fn seqs(esp: &[EspFrame]) -> Vec<u32> {
    esp.iter().map(EspFrame::seq).collect()
}

#[test]
fn replayed_and_altered_esp_refused_both_ways_against_strongswan() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        eprintln!("skipped: /dev/net/tun missing");
        return;
    }
    let (lab, mut tunnel) = lab_and_tunnel();
    let info = tunnel.info().clone();
    let (veth_i, veth_r) = (veth(&lab.ns_i, "ikvi"), veth(&lab.ns_r, "ikvr"));
    let (ns_i, ns_r) = (lab.ns_i.as_str(), lab.ns_r.as_str());
    let counters = tunnel.counters();
    let us = udp(ns_i, INNER, PORT_US);
    let them = udp(ns_r, BEHIND, PORT_THEM);
    eprintln!(
        "tunnel up: SPIs in {:08x} out {:08x}",
        info.spi_in, info.spi_out
    );
    let inbound = Way {
        from: &them,
        to: SocketAddrV4::new(INNER, PORT_US),
        listener: &us,
        esp_src: RESPONDER,
        spi: info.spi_in,
        rx_ns: ns_i,
        tx_ns: ns_r,
        tx_dev: &veth_r,
    };
    let outbound = Way {
        from: &us,
        to: SocketAddrV4::new(BEHIND, PORT_THEM),
        listener: &them,
        esp_src: LOCAL,
        spi: info.spi_out,
        rx_ns: ns_r,
        tx_ns: ns_i,
        tx_dev: &veth_i,
    };

    // 1. charon -> us, replayed: counted `replayed`, nothing else moves.
    let esp = inbound.genuine(ns_i, &veth_i, &msgs("charon-fresh", 5));
    let copies = replays(&esp);
    let before = seen(&counters);
    inbound.inject(&copies);
    let want = Seen {
        replayed: before.replayed + copies.len() as u64,
        ..before
    };
    let after = settle(&counters, want);
    let dup = inbound.leaked();
    eprintln!(
        "1. {} replays of charon's ESP seq {:?}: counters {before:?} -> {after:?}; listener got {dup:?}",
        copies.len(),
        seqs(&esp)
    );
    assert_eq!(after, want, "each replay counted `replayed`, nothing else");
    assert_eq!(
        opened(&tunnel, info.spi_in),
        after.received,
        "the inbound SA counted only the genuine packets"
    );
    assert!(dup.is_empty(), "a replay reached the TUN: {dup:?}");
    inbound.carries("charon-after-replay");
    assert!(in_ns(ns_i, || ping(BEHIND, 1, b"after replay")).is_some());

    // 2. charon -> us, altered: held from our endpoint, injected altered, then genuine.
    let held = msgs("charon-held", 3);
    let esp = inbound.held(ns_i, &veth_i, &held);
    let bad = altered(&esp);
    let before = seen(&counters);
    inbound.inject(&bad);
    let want = Seen {
        integrity: before.integrity + bad.len() as u64,
        ..before
    };
    let after = settle(&counters, want);
    let leaked = inbound.leaked();
    eprintln!(
        "2. ICV, ciphertext, sequence number altered in held seq {:?}: counters {before:?} -> {after:?}; listener got {leaked:?}",
        seqs(&esp)
    );
    assert_eq!(after, want, "each altered copy counted `integrity`");
    assert_eq!(opened(&tunnel, info.spi_in), after.received);
    assert!(leaked.is_empty(), "an altered packet reached the TUN");
    inbound.inject(&frames(&esp));
    assert_eq!(
        datagrams(&us, held.len(), Duration::from_secs(3)),
        held,
        "the genuine held packets (the altered ones' sequence numbers) are accepted"
    );
    inbound.carries("charon-after-altered");
    let end = seen(&counters);
    assert_eq!(
        (end.received, end.replayed, end.integrity),
        (after.received + 4, after.replayed, after.integrity)
    );

    // 3. us -> charon, replayed: charon logs each and delivers none.
    let logged = |needle: &str| lab.log().matches(needle).count();
    let esp = outbound.genuine(ns_i, &veth_i, &msgs("agent-fresh", 5));
    let (replays_before, integrity_before) = (logged(REPLAYED_LOG), logged(INTEGRITY_LOG));
    let copies = replays(&esp);
    outbound.inject(&copies);
    let refused = lab.wait_log(
        REPLAYED_LOG,
        replays_before + copies.len(),
        Duration::from_secs(3),
    );
    let dup = outbound.leaked();
    let log = lab.log();
    eprintln!(
        "3. {} replays of our ESP seq {:?}: listener got {dup:?}",
        copies.len(),
        seqs(&esp)
    );
    for l in log.lines().filter(|l| l.contains("[seq ")) {
        eprintln!("charon: {l}");
    }
    assert!(dup.is_empty(), "charon delivered a replay: {dup:?}");
    assert!(refused, "charon logged fewer than {} replays", copies.len());
    assert_eq!(logged(REPLAYED_LOG), replays_before + copies.len());
    for e in &esp {
        let line = format!("SPI {:08x} [seq {}]", info.spi_out, e.seq());
        assert_eq!(log.matches(&line).count(), 2, "charon's log of {line}");
    }
    outbound.carries("agent-after-replay");

    // 4. us -> charon, altered: held from charon, injected altered, then genuine.
    let held = msgs("agent-held", 3);
    let esp = outbound.held(ns_i, &veth_i, &held);
    let bad = altered(&esp);
    outbound.inject(&bad);
    let refused = lab.wait_log(
        INTEGRITY_LOG,
        integrity_before + bad.len(),
        Duration::from_secs(3),
    );
    let leaked = outbound.leaked();
    eprintln!(
        "4. ICV, ciphertext, sequence number altered in our held seq {:?}: charon logged {} \"{INTEGRITY_LOG}\"; listener got {leaked:?}",
        seqs(&esp),
        logged(INTEGRITY_LOG) - integrity_before
    );
    assert!(leaked.is_empty(), "charon delivered an altered packet");
    assert!(refused, "charon logged fewer than {} failures", bad.len());
    assert_eq!(logged(INTEGRITY_LOG), integrity_before + bad.len());
    outbound.inject(&frames(&esp));
    assert_eq!(
        datagrams(&them, held.len(), Duration::from_secs(3)),
        held,
        "charon accepts the genuine held packets"
    );
    outbound.carries("agent-after-altered");
    assert_eq!(logged(REPLAYED_LOG), replays_before + copies.len());

    let c = seen(&counters);
    tunnel.stop().expect("endpoint ended cleanly");
    eprintln!("endpoint counters at the end: {c:?}");
    assert_eq!((c.malformed, c.unclassified), (0, 0));
    drop(tunnel);
    drop(lab);
}
