//! Our agent's IPsec stack against the organizer's own gateway (root; skipped with a reason
//! otherwise). The gateway runs in IPsec mode as `run::start` starts it (charon with
//! kernel-libipsec) with a fake LM that shows an approved lease. The agent registers over the
//! pinned TLS with an agent certificate that lm-pki issues for that lease (the DN the LM
//! writes) and no WireGuard key; the gateway answers only once charon holds a connection for
//! it with exactly the tunnel address it gave. In another namespace agent-ipsec's `Tunnel::up`
//! proposes that address as TSi and sets it on its TUN device; TCP through the tunnel to a
//! listener on the gateway's tunnel address (where the image store and key service sit)
//! carries data both ways. Refused: the same certificate proposing another address
//! (TS_UNACCEPTABLE), and the certificate of a lease this organizer never requested (our
//! client reports the gateway's AUTHENTICATION_FAILED as a typed refusal).

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use agent_esp::LifetimeLimits;
use agent_ike::cert::sha256;
use agent_ike::{
    AuthFailure, DhGroup, LocalCredential, PeerTrust, Refusal, RetransmitPolicy, SystemEntropy,
    TrafficSelector,
};
use agent_ipsec::{IkeConfig, InnerAddress, SystemClock, Tunnel, TunnelConfig, TunnelError};
use common::{agent, crl};
use lab::netns::{self, Netns};
use lm_api::{LeaseId, LeaseServer, LeaseState, LeaseView, MacAddr, Tunnel as LeaseTunnel};
use lm_pki::Authority;
use procurement_organizer::config::{Config, example};
use procurement_organizer::gateway::ipsec::{Swanctl, vici_uri};
use procurement_organizer::gateway::source::FakeLm;
use procurement_organizer::record::{RecordFile, RequestedLease};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

const DC: Ipv4Addr = Ipv4Addr::new(10, 61, 0, 2);
const AGENT_DC: Ipv4Addr = Ipv4Addr::new(10, 61, 0, 50);
/// The gateway's tunnel address (the example's tunnel network 10.62.0.0/24, first host).
const TUNNEL_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 62, 0, 1);
const CONN: &str = "po-l-00000000000000aa-vm1";
const PORT: u16 = 7443;
const MARKER: &[u8] = b"AGENT-TO-GATEWAY-IPSEC-MARKER-0b9c";
const TRANSFER: usize = 512 << 10;

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, charon, TUN)".into());
    }
    for p in [
        "/usr/lib/ipsec/charon",
        "/usr/sbin/swanctl",
        "/usr/bin/unshare",
        "/dev/net/tun",
    ] {
        if !Path::new(p).exists() {
            return Some(format!("{p} missing: run scripts/setup.sh"));
        }
    }
    None
}

/// A lease the fake LM shows for tenant acme with one server vm1 in `tunneling`.
fn view(id: u64) -> LeaseView {
    LeaseView {
        id: LeaseId::from_random(id),
        tenant: "acme".parse().unwrap(),
        state: LeaseState::Active,
        reason: None,
        count: 1,
        waiting: 0,
        servers: vec![LeaseServer {
            name: "vm1".into(),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            state: "tunneling".into(),
            cert_serial: Some("51".into()),
        }],
        tunnel: LeaseTunnel::Ipsec,
        role: None,
        image: None,
        gateway: None,
        created_ms: 0,
        starts_ms: 0,
        ends_ms: u64::MAX / 2,
        ended_ms: None,
        renewals: 0,
    }
}

fn payload(len: usize) -> Vec<u8> {
    MARKER
        .iter()
        .chain(b"\n")
        .copied()
        .cycle()
        .take(len)
        .collect()
}

fn tunnel_config(cred: LocalCredential, gateway_cert: &[u8], inner: InnerAddress) -> TunnelConfig {
    TunnelConfig {
        ike: IkeConfig {
            local: AGENT_DC,
            peer: DC,
            groups: vec![DhGroup::Curve25519, DhGroup::Ecp256],
            credential: cred,
            // The gateway's self-signed certificate, pinned as the agent pins it from the
            // lease's gateway spec.
            trust: PeerTrust::Pin(sha256(gateway_cert)),
            peer_id: None,
            inner,
            // Wider than the gateway's local_ts: it narrows to its tunnel address and networks.
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
    }
}

#[test]
fn our_agent_registers_gets_its_address_and_talks_tcp_to_the_gateway() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let gw_ns = Netns::create("pag").unwrap();
    let agent_ns = Netns::create("paa").unwrap();
    netns::veth(&gw_ns, "dc0", &agent_ns, "dc0").unwrap();
    gw_ns.add_addr("dc0", DC.into(), 24).unwrap();
    agent_ns.add_addr("dc0", AGENT_DC.into(), 24).unwrap();
    // The tenant's private network behind the gateway. kernel-libipsec installs the route to
    // the agent's address with a source inside local_ts; without an address in 10.60.0.0/16
    // charon answers a child SA that includes it with TS_UNACCEPTABLE ("error installing
    // route with policy 10.60.0.0/16 === 10.62.0.2/32").
    gw_ns
        .add_addr("lo", Ipv4Addr::new(10, 60, 0, 1).into(), 16)
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let text = example(
        "b.json",
        "state",
        DC,
        "10.62.0.0/24".parse().unwrap(),
        &["10.60.0.0/16".parse().unwrap()],
    )
    .replace("# lm_poll_secs = 3", "lm_poll_secs = 1")
    .replace("# tun_name = \"po-wg0\"", "tun_name = \"ipsec0\"")
    .replace("# tunnel = \"wireguard\"", "tunnel = \"ipsec\"");
    let cfg = Config::parse(&text, &dir.path().join("organizer.toml")).unwrap();
    RecordFile::new(&cfg.state_dir)
        .update(|r| {
            r.add(RequestedLease {
                id: LeaseId::from_random(0xaa),
                requested_ms: 0,
                count: 1,
                duration_s: 3600,
                tunnel: LeaseTunnel::Ipsec,
                role: None,
                image: None,
                released_ms: None,
            })
        })
        .unwrap();
    let ca = Authority::generate(SystemTime::now(), 1u64.into())
        .unwrap()
        .0;
    let lm = Arc::new(FakeLm::default());
    lm.put(view(0xaa));
    // Shown by the LM for this tenant, never requested by this organizer.
    lm.put(view(0xbb));
    *lm.crl.lock().unwrap() = Some(crl(&ca, &[]));

    let gw = common::RunningGateway::start(&gw_ns, &cfg, lm.clone(), ca.cert_pem());
    let charon_pid = gw.charon_pid.expect("the gateway started charon");
    let swanctl = Swanctl {
        program: cfg.gateway.ipsec.swanctl.clone(),
        uri: vici_uri(&cfg.state_dir, &cfg.gateway),
    };
    let gateway_pem = std::fs::read(cfg.state_dir.join("gateway/tls-cert.pem")).unwrap();
    let gateway_cert = CertificateDer::from_pem_slice(&gateway_pem).unwrap();
    let gateway_der = gateway_cert.to_vec();
    // The agent of the approved lease registers (no WireGuard key) and gets its address; the
    // gateway answers once charon holds the connection for exactly that address.
    let good = agent(
        &ca,
        "urn:lease-appliance:agent:l-00000000000000aa:vm1",
        0x51,
    );
    let registered =
        common::register_ipsec(&agent_ns, cfg.gateway.register_listen, &gateway_cert, &good);
    assert!(
        swanctl
            .run(&["--list-conns".into()])
            .unwrap_or_default()
            .contains(CONN),
        "the registration was answered before charon loaded the agent's connection"
    );
    let credential = |a: &common::Agent| {
        LocalCredential::new(&a.chain[0], a.key.secret_der()).expect("an LM-style credential")
    };

    // The listener on the gateway's tunnel address: reads the upload, answers with its own.
    let listener = gw_ns
        .run(|| TcpListener::bind(SocketAddrV4::new(TUNNEL_ADDRESS, PORT)))
        .unwrap()
        .expect("listen on the gateway's tunnel address");
    let server = std::thread::spawn(move || {
        let (mut s, from) = listener.accept().expect("accept");
        let mut got = Vec::with_capacity(TRANSFER);
        s.read_to_end(&mut got).expect("read upload");
        s.write_all(&payload(TRANSFER)).expect("send download");
        s.shutdown(std::net::Shutdown::Write).expect("shutdown");
        (from, got == payload(TRANSFER), got.len())
    });

    let started = Instant::now();
    let tunnel = agent_ns
        .run(|| {
            Tunnel::up(
                tunnel_config(
                    credential(&good),
                    &gateway_der,
                    InnerAddress::Fixed(registered),
                ),
                &SystemClock,
                &mut SystemEntropy::default(),
            )
        })
        .unwrap();
    let sas = swanctl.run(&["--list-sas".into()]).unwrap_or_else(|e| e);
    eprintln!("--- gateway: swanctl --list-sas ---\n{sas}");
    let charon_log = || {
        std::fs::read_to_string(cfg.state_dir.join("gateway/ipsec/charon.log")).unwrap_or_default()
    };
    let mut tunnel = tunnel.unwrap_or_else(|e| {
        panic!(
            "tunnel to the gateway: {e}\n--- charon log ---\n{}",
            charon_log()
        )
    });
    let info = tunnel.info().clone();
    eprintln!(
        "tunnel up in {:?} (handshake {:?}): inner {} (registered), routes {:?}, SPIs in {:08x} out {:08x}",
        started.elapsed(),
        info.handshake.total(),
        info.inner,
        info.routes,
        info.spi_in,
        info.spi_out
    );
    let inner = info.inner;
    assert_eq!(
        inner, registered,
        "the tunnel carries the registered address"
    );
    assert!(
        inner.octets()[..3] == [10, 62, 0] && inner != TUNNEL_ADDRESS && inner.octets()[3] != 0,
        "{inner} is not a host of the tunnel network 10.62.0.0/24 other than the gateway's"
    );
    assert_eq!(
        info.local_ts,
        vec![TrafficSelector::v4(inner.octets(), inner.octets())],
        "TSi is exactly the registered address"
    );
    let routes: Vec<String> = info.routes.iter().map(ToString::to_string).collect();
    assert_eq!(routes, ["10.62.0.1/32", "10.60.0.0/16"]);
    assert!(
        sas.contains(CONN) && sas.contains("INSTALLED") && sas.contains(&inner.to_string()),
        "the gateway lists our SA with the registered address"
    );
    // The address is on our TUN device.
    let addrs = agent_ns
        .ip(&["-4", "addr", "show", "dev", "ipsec-agent"])
        .unwrap();
    assert!(addrs.contains(&format!("inet {inner}/32")), "{addrs}");

    // TCP both ways through the tunnel.
    let mut conn = agent_ns
        .run(|| {
            TcpStream::connect_timeout(
                &SocketAddr::from((TUNNEL_ADDRESS, PORT)),
                Duration::from_secs(5),
            )
        })
        .unwrap()
        .expect("connect to the gateway's tunnel address through the tunnel");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let t = Instant::now();
    conn.write_all(&payload(TRANSFER)).expect("upload");
    conn.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut back = Vec::with_capacity(TRANSFER);
    conn.read_to_end(&mut back).expect("download");
    let took = t.elapsed();
    let (from, upload_intact, upload_len) = server.join().expect("server");
    eprintln!(
        "TCP {} KiB each way in {took:?}; the gateway saw the connection from {from}",
        TRANSFER >> 10
    );
    assert_eq!(
        from.ip(),
        std::net::IpAddr::V4(inner),
        "from the assigned address"
    );
    assert!(upload_intact, "upload altered ({upload_len} bytes)");
    assert!(
        back == payload(TRANSFER),
        "download altered ({} bytes)",
        back.len()
    );
    let counters = tunnel.counters();
    tunnel.stop().expect("endpoint ended cleanly");
    eprintln!("endpoint counters: {counters:?}");
    drop(tunnel);

    // Another address than the registered one is refused (charon's remote_ts is its /32).
    let other = std::net::Ipv4Addr::from(u32::from(registered) + 1);
    let wrong = agent_ns
        .run(|| {
            Tunnel::up(
                tunnel_config(credential(&good), &gateway_der, InnerAddress::Fixed(other)),
                &SystemClock,
                &mut SystemEntropy::default(),
            )
        })
        .unwrap();
    match &wrong {
        Err(TunnelError::Child(_)) => {}
        Err(e) => panic!("{other} instead of {registered}: wrong error: {e}"),
        Ok(t) => panic!(
            "a child SA for {other}, not the registered {registered}, was admitted: {:?}",
            t.info()
        ),
    }
    eprintln!(
        "{other} instead of {registered}: {}",
        wrong.err().map(|e| e.to_string()).unwrap_or_default()
    );
    // A certificate for a lease this organizer never requested: no connection has its DN, the
    // gateway answers AUTHENTICATION_FAILED, our client reports the typed refusal.
    let refused = agent_ns
        .run(|| {
            Tunnel::up(
                tunnel_config(
                    credential(&agent(
                        &ca,
                        "urn:lease-appliance:agent:l-00000000000000bb:vm1",
                        0x52,
                    )),
                    &gateway_der,
                    InnerAddress::Fixed(registered),
                ),
                &SystemClock,
                &mut SystemEntropy::default(),
            )
        })
        .unwrap();
    match refused {
        Err(TunnelError::Auth(AuthFailure::Refused(Refusal::AuthenticationFailed))) => {
            eprintln!("another lease's certificate: refused (AUTHENTICATION_FAILED)");
        }
        Err(e) => panic!("another lease's certificate: wrong error: {e}"),
        Ok(t) => panic!("another lease's certificate was admitted: {:?}", t.info()),
    }

    gw.stop();
    let alive = Path::new(&format!("/proc/{charon_pid}")).exists();
    assert!(
        !alive,
        "charon ({charon_pid}) still runs after the gateway stopped"
    );
}
