//! The charon lab of the IKE SA life tests (included by `#[path]`): charon's swanctl.conf
//! with a firewall certificate (P-256 or another), our tunnel up against it, a paced TCP
//! transfer both ways through it, fast timers.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use agent_esp::LifetimeLimits;
use agent_ike::{
    DhGroup, LocalCredential, PeerTrust, RetransmitPolicy, SystemEntropy, TrafficSelector,
};
use agent_ipsec::{
    IkeConfig, InnerAddress, LifeConfig, SystemClock, Tunnel, TunnelConfig, TunnelError,
};

use crate::ca::Ca;
use crate::common::net::in_ns;
use crate::strongswan::{Lab, RESPONDER, skip_reason};

pub const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
pub const INNER: Ipv4Addr = Ipv4Addr::new(10, 30, 0, 5);
pub const BEHIND: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);
pub const CHUNK: usize = 32 * 1024;

pub fn swanctl(child_extra: &str, conn_extra: &str) -> String {
    format!(
        "connections {{\n  agent {{\n    version = 2\n    local_addrs = {RESPONDER}\n    \
         remote_addrs = {LOCAL}\n    proposals = aes256gcm16-prfsha256-x25519\n    {conn_extra}\n    \
         local {{ auth = pubkey\n      certs = fw.pem }}\n    \
         remote {{ auth = pubkey\n      cacerts = ca.pem }}\n    \
         children {{ c {{ local_ts = 10.20.0.0/16\n      remote_ts = {INNER}/32\n      \
         esp_proposals = aes256gcm16\n      {child_extra} }} }}\n  }}\n}}\n"
    )
}

pub fn sh(args: &[&str]) {
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

pub fn chunk(i: usize) -> Vec<u8> {
    (0..CHUNK).map(|j| (i * 31 + j * 7) as u8).collect()
}

/// `chunks` chunks each way at once, one every `pace`: the transfer spans chunks * pace.
pub fn paced_tcp_both_ways(lab: &Lab, chunks: usize, pace: Duration) {
    let listener = in_ns(&lab.ns_r, || {
        TcpListener::bind(SocketAddrV4::new(BEHIND, 7001)).expect("listen behind charon")
    });
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut w = s.try_clone().expect("clone");
        let writer = std::thread::spawn(move || {
            for i in 0..chunks {
                w.write_all(&chunk(i)).expect("server write");
                std::thread::sleep(pace);
            }
        });
        let mut buf = vec![0u8; CHUNK];
        for i in 0..chunks {
            s.read_exact(&mut buf).expect("server read");
            assert!(buf == chunk(i), "upload chunk {i} altered");
        }
        writer.join().expect("server writer");
    });
    let mut conn = in_ns(&lab.ns_i, || {
        TcpStream::connect_timeout(&SocketAddr::from((BEHIND, 7001)), Duration::from_secs(5))
            .expect("connect through the tunnel")
    });
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut w = conn.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        for i in 0..chunks {
            w.write_all(&chunk(i)).expect("client write");
            std::thread::sleep(pace);
        }
    });
    let mut buf = vec![0u8; CHUNK];
    for i in 0..chunks {
        conn.read_exact(&mut buf).expect("client read");
        assert!(buf == chunk(i), "download chunk {i} altered");
    }
    writer.join().expect("client writer");
    server.join().expect("server");
}

pub fn lab(child_extra: &str, conn_extra: &str) -> Option<(Lab, Ca)> {
    let ca = Ca::new("ipsec life CA");
    let (_, fw_pem, _, fw_key) = ca.issue("tenant firewall", "fw.tenant.test");
    lab_with(child_extra, conn_extra, ca, &fw_pem, &fw_key)
}

/// [`lab`] with the CA and charon's certificate and key (PEM) given.
pub fn lab_with(
    child_extra: &str,
    conn_extra: &str,
    ca: Ca,
    fw_pem: &str,
    fw_key: &str,
) -> Option<(Lab, Ca)> {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return None;
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        eprintln!("skipped: /dev/net/tun missing");
        return None;
    }
    let files = [
        ("x509ca/ca.pem", ca.cert_pem.as_str()),
        ("x509/fw.pem", fw_pem),
        ("private/fw.key", fw_key),
    ];
    let lab = Lab::start_with(&[LOCAL], &swanctl(child_extra, conn_extra), "", "", &files);
    sh(&[
        "ip",
        "-n",
        &lab.ns_r,
        "addr",
        "add",
        &format!("{BEHIND}/16"),
        "dev",
        "lo",
    ]);
    Some((lab, ca))
}

pub fn up(lab: &Lab, ca: &Ca, limits: LifetimeLimits, life: LifeConfig) -> Tunnel {
    try_up(lab, ca, PeerTrust::Ca(ca.cert_der.clone()), limits, life)
        .unwrap_or_else(|e| panic!("tunnel: {e}\n--- charon log ---\n{}", lab.log()))
}

/// Our tunnel up against the lab's charon with an agent certificate from `ca`, trusting
/// charon's certificate per `trust`.
pub fn try_up(
    lab: &Lab,
    ca: &Ca,
    trust: PeerTrust,
    limits: LifetimeLimits,
    life: LifeConfig,
) -> Result<Tunnel, TunnelError> {
    let (agent_der, _, agent_key, _) = ca.issue("agent 52:54:00:12:34:57", "agent.lease.test");
    let cfg = TunnelConfig {
        ike: IkeConfig {
            local: LOCAL,
            peer: RESPONDER,
            groups: vec![DhGroup::Curve25519],
            credential: LocalCredential::new(&agent_der, &agent_key).expect("credential"),
            trust,
            peer_id: None,
            inner: InnerAddress::Fixed(INNER),
            remote_ts: vec![TrafficSelector::v4([10, 20, 0, 0], [10, 20, 255, 255])],
            retransmit: RetransmitPolicy {
                initial: Duration::from_millis(500),
                factor_percent: 200,
                max: Duration::from_secs(2),
                tries: 3,
            },
        },
        tun_name: "ipsec-life".into(),
        mtu: 1400,
        esp_limits: limits,
    };
    in_ns(&lab.ns_i, || {
        Tunnel::up_with(cfg, life, &SystemClock, &mut SystemEntropy::default())
    })
}

pub fn fast_life() -> LifeConfig {
    LifeConfig {
        dpd_idle: Duration::from_secs(1),
        retransmit: RetransmitPolicy {
            initial: Duration::from_millis(500),
            factor_percent: 200,
            max: Duration::from_secs(1),
            tries: 2,
        },
        overlap: Duration::from_millis(500),
        ike_rekey: None,
    }
}
