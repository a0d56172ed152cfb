//! The gateway in IPsec mode in a network namespace (root): `run::start` with
//! `gateway.tunnel = "ipsec"` starts charon (kernel-libipsec, private /run, stopped by PID),
//! renders the strongSwan configuration for the approved lease and loads it; `swanctl
//! --list-conns` shows exactly that agent's connection with its certificate's DN as the remote
//! id and the LM CA; after this organizer releases the lease, the watcher's reload drops it.
//! In between, a second charon in another namespace plays the agent with strongSwan's own
//! `swanctl --initiate`: with an LM-style certificate of the approved lease it is admitted
//! (CHILD_SA up), with one of a lease this organizer never requested it is refused, and so is
//! one naming the approved lease but issued by another CA. Then the LM revokes the admitted
//! certificate: within a CRL refresh the gateway terminates the IKE SA that was up (charon
//! itself never re-checks an established SA) and charon refuses a new IKE_AUTH with it,
//! logging the revocation; the server's re-issued certificate is admitted again and survives
//! a later CRL that still lists the old serial.
//! Skipped (with a message) when not root or without strongSwan.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::time::{Duration, Instant, SystemTime};

use common::{agent, crl};
use lab::netns::{self, Netns};
use lm_api::{LeaseId, LeaseServer, LeaseState, LeaseView, MacAddr, Tunnel};
use lm_pki::Authority;
use procurement_organizer::config::{Config, example};
use procurement_organizer::gateway::ipsec::Charon;
use procurement_organizer::gateway::ipsec::{Swanctl, vici_uri};
use procurement_organizer::gateway::source::FakeLm;
use procurement_organizer::record::{RecordFile, RequestedLease};

const DC: Ipv4Addr = Ipv4Addr::new(10, 61, 0, 2);
const PEER_DC: Ipv4Addr = Ipv4Addr::new(10, 61, 0, 50);
const CONN: &str = "po-l-00000000000000aa-vm1";

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, charon)".into());
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

fn view(id: u64) -> LeaseView {
    view_with_serial(id, "51")
}

fn view_with_serial(id: u64, serial: &str) -> LeaseView {
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
            cert_serial: Some(serial.into()),
        }],
        tunnel: Tunnel::Ipsec,
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

fn requested(id: u64) -> RequestedLease {
    RequestedLease {
        id: LeaseId::from_random(id),
        requested_ms: 0,
        count: 1,
        duration_s: 3600,
        tunnel: Tunnel::Ipsec,
        role: None,
        image: None,
        released_ms: None,
    }
}

/// Polls `--list-conns` until `ok` holds (or 15 s pass); the last listing.
fn wait_conns(s: &Swanctl, ok: impl Fn(&str) -> bool) -> (bool, String) {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let out = s.run(&["--list-conns".into()]).unwrap_or_else(|e| e);
        if ok(&out) {
            return (true, out);
        }
        if Instant::now() > until {
            return (false, out);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ipsec_mode_loads_the_approved_agent_and_drops_it_at_release() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let gw_ns = Netns::create("pig").unwrap();
    let peer_ns = Netns::create("pip").unwrap();
    netns::veth(&gw_ns, "dc0", &peer_ns, "dc0").unwrap();
    gw_ns.add_addr("dc0", DC.into(), 24).unwrap();
    peer_ns.add_addr("dc0", PEER_DC.into(), 24).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let text = example(
        "b.json",
        "state",
        DC,
        "10.62.0.0/24".parse().unwrap(),
        &["10.60.0.0/16".parse().unwrap()],
    )
    .replace("# lm_poll_secs = 3", "lm_poll_secs = 1")
    .replace("# crl_refresh_secs = 10", "crl_refresh_secs = 1")
    .replace("# tun_name = \"po-wg0\"", "tun_name = \"ipsec0\"")
    .replace("# tunnel = \"wireguard\"", "tunnel = \"ipsec\"");
    let cfg = Config::parse(&text, &dir.path().join("organizer.toml")).unwrap();
    RecordFile::new(&cfg.state_dir)
        .update(|r| r.add(requested(0xaa)))
        .unwrap();
    let ca = Authority::generate(SystemTime::now(), 1u64.into())
        .unwrap()
        .0;
    let lm = Arc::new(FakeLm::default());
    lm.put(view(0xaa));
    // A lease the LM shows for this tenant that this organizer never requested.
    lm.put(view(0xbb));
    *lm.crl.lock().unwrap() = Some(crl(&ca, &[]));

    let gw = common::RunningGateway::start(&gw_ns, &cfg, lm.clone(), ca.cert_pem());
    let charon_pid = gw.charon_pid.expect("the gateway started charon");
    let swanctl = Swanctl {
        program: cfg.gateway.ipsec.swanctl.clone(),
        uri: vici_uri(&cfg.state_dir, &cfg.gateway),
    };

    // Approved, but not registered yet: no connection.
    std::thread::sleep(Duration::from_millis(1500));
    let before = swanctl.run(&["--list-conns".into()]).unwrap_or_else(|e| e);
    assert!(
        !before.contains(CONN),
        "a connection before the agent registered:\n{before}"
    );
    // The agent registers (no WireGuard key): the gateway answers once charon holds its
    // connection with exactly its tunnel address.
    let good = agent(
        &ca,
        "urn:lease-appliance:agent:l-00000000000000aa:vm1",
        0x51,
    );
    let gw_cert = CertificateDer::from_pem_slice(
        &std::fs::read(cfg.state_dir.join("gateway/tls-cert.pem")).unwrap(),
    )
    .unwrap();
    let address = common::register_ipsec(&peer_ns, cfg.gateway.register_listen, &gw_cert, &good);
    let (ok, listing) = wait_conns(&swanctl, |o| o.contains(CONN));
    eprintln!("--- swanctl --list-conns (approved and registered: {address}) ---\n{listing}");
    let conf = std::fs::read_to_string(cfg.state_dir.join("gateway/ipsec/swanctl.conf"))
        .unwrap_or_default();
    assert!(
        ok,
        "the approved agent's connection was not loaded:\n{conf}"
    );
    let names: Vec<&str> = listing
        .lines()
        .filter(|l| !l.starts_with(' ') && l.contains(':'))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(names, [CONN], "exactly the approved agent's connection");
    assert!(
        listing.contains("id: CN=agent vm1 for l-00000000000000aa"),
        "remote id is the agent certificate's DN"
    );
    assert!(
        listing.contains("cacerts: CN=Lease Manager CA"),
        "the LM CA is the only trust anchor of the connection"
    );
    assert!(listing.contains("id: CN=tenant gateway"), "local id");
    assert!(listing.contains("10.62.0.1/32 10.60.0.0/16"), "local_ts");
    let creds = swanctl
        .run(&["--list-certs".into(), "--type".into(), "x509crl".into()])
        .unwrap_or_else(|e| e);
    assert!(
        creds.contains("Lease Manager CA"),
        "the LM's CRL is loaded:\n{creds}"
    );

    // strongSwan as the agent: the approved lease's certificate is admitted, another lease's
    // is refused.
    assert!(
        listing.contains(&format!("{address}/32")),
        "the connection admits exactly the registered address"
    );
    // strongSwan as the agent proposes that address as TSi; its kernel-libipsec routes with it
    // as the source, so it must be on the peer (the agent puts it on its TUN device).
    peer_ns.add_addr("lo", address.into(), 32).unwrap();
    let peer_dir = tempfile::tempdir().unwrap();
    let other = agent(
        &ca,
        "urn:lease-appliance:agent:l-00000000000000bb:vm1",
        0x52,
    );
    let foreign_ca = Authority::generate(SystemTime::now(), 1u64.into())
        .unwrap()
        .0;
    let foreign = agent(
        &foreign_ca,
        "urn:lease-appliance:agent:l-00000000000000aa:vm1",
        0x51,
    );
    let renewed = agent(
        &ca,
        "urn:lease-appliance:agent:l-00000000000000aa:vm1",
        0x54,
    );
    for (sub, name, bytes) in [
        ("x509", "good.der", good.chain[0].to_vec()),
        ("private", "good.key", good.key.secret_der().to_vec()),
        ("x509", "other.der", other.chain[0].to_vec()),
        ("private", "other.key", other.key.secret_der().to_vec()),
        ("x509", "foreign.der", foreign.chain[0].to_vec()),
        ("private", "foreign.key", foreign.key.secret_der().to_vec()),
        ("x509", "renewed.der", renewed.chain[0].to_vec()),
        ("private", "renewed.key", renewed.key.secret_der().to_vec()),
        (
            "x509",
            "gw.pem",
            std::fs::read(cfg.state_dir.join("gateway/tls-cert.pem")).unwrap(),
        ),
    ] {
        std::fs::create_dir_all(peer_dir.path().join(sub)).unwrap();
        std::fs::write(peer_dir.path().join(sub).join(name), bytes).unwrap();
    }
    let conn = |name: &str, cert: &str, lease: &str| {
        format!(
            "  {name} {{\n    version = 2\n    local_addrs = {PEER_DC}\n    remote_addrs = {DC}\n    \
             proposals = aes256gcm16-prfsha256-x25519\n    encap = yes\n    \
             local {{ auth = pubkey\n      certs = {cert}\n      id = \"CN=agent vm1 for {lease}\" }}\n    \
             remote {{ auth = pubkey\n      certs = gw.pem\n      id = \"CN=tenant gateway\" }}\n    \
             children {{ {name} {{ local_ts = {address}/32\n      remote_ts = 10.62.0.1/32\n      esp_proposals = aes256gcm16 }} }}\n  }}\n"
        )
    };
    std::fs::write(
        peer_dir.path().join("swanctl.conf"),
        format!(
            "connections {{\n{}{}{}{}}}\n",
            conn("good", "good.der", "l-00000000000000aa"),
            conn("other", "other.der", "l-00000000000000bb"),
            conn("foreign", "foreign.der", "l-00000000000000aa"),
            conn("renewed", "renewed.der", "l-00000000000000aa")
        ),
    )
    .unwrap();
    let peer_socket = peer_dir.path().join("charon.vici");
    let peer_charon = {
        let (name, d, sock) = (
            peer_ns.name().to_string(),
            peer_dir.path().to_path_buf(),
            peer_socket.clone(),
        );
        std::thread::spawn(move || {
            Netns::existing(&name)
                .unwrap()
                .enter_current_thread()
                .unwrap();
            Charon::start(Path::new("/usr/lib/ipsec/charon"), &d, &sock).unwrap()
        })
        .join()
        .unwrap()
    };
    let peer = Swanctl {
        program: "/usr/sbin/swanctl".into(),
        uri: format!("unix://{}", peer_socket.display()),
    };
    peer.run(&[
        "--load-all".into(),
        "--file".into(),
        peer_dir.path().join("swanctl.conf").into(),
    ])
    .unwrap();
    let admitted = peer.run(&["--initiate".into(), "--child".into(), "good".into()]);
    eprintln!("--- agent of the approved lease: swanctl --initiate ---\n{admitted:?}");
    let sas = swanctl.run(&["--list-sas".into()]).unwrap_or_else(|e| e);
    eprintln!("--- gateway: swanctl --list-sas ---\n{sas}");
    assert!(
        admitted.as_ref().is_ok_and(|o| o.contains("established")),
        "the approved lease's agent was not admitted: {admitted:?}"
    );
    assert!(sas.contains(CONN) && sas.contains("INSTALLED"), "{sas}");
    let refused = peer.run(&["--initiate".into(), "--child".into(), "other".into()]);
    eprintln!("--- agent of an unrequested lease: swanctl --initiate ---\n{refused:?}");
    assert!(
        refused.is_err(),
        "an unrequested lease's agent was admitted"
    );
    assert!(
        refused.unwrap_err().contains("AUTHENTICATION_FAILED"),
        "refused by authentication"
    );
    let gw_log = cfg.state_dir.join("gateway/ipsec/charon.log");
    let log_since = |from: usize| {
        let all = std::fs::read_to_string(&gw_log).unwrap_or_default();
        all.get(from..).unwrap_or_default().to_string()
    };
    let log_len = || std::fs::metadata(&gw_log).map_or(0, |m| m.len() as usize);

    // The approved lease's DN, but a certificate of another CA.
    let mark = log_len();
    let refused = peer.run(&["--initiate".into(), "--child".into(), "foreign".into()]);
    eprintln!("--- agent with a foreign CA's certificate: swanctl --initiate ---\n{refused:?}");
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("AUTHENTICATION_FAILED")),
        "a foreign CA's certificate was not refused: {refused:?}"
    );
    let said = log_since(mark);
    eprintln!("--- gateway charon.log (foreign CA) ---\n{said}");
    assert!(
        said.contains("no trusted") || said.contains("no issuer"),
        "charon names the missing trust chain:\n{said}"
    );
    let sas = swanctl.run(&["--list-sas".into()]).unwrap_or_else(|e| e);
    assert!(
        sas.contains(CONN) && sas.contains("INSTALLED"),
        "the refused attempt left the admitted SA up:\n{sas}"
    );

    // The LM revokes the admitted certificate: the next CRL refresh ends the SA that is up
    // (charon checks revocation only at authentication) and a new IKE_AUTH is refused.
    let mark = log_len();
    *lm.crl.lock().unwrap() = Some(crl(&ca, &[&good.serial]));
    let until = Instant::now() + Duration::from_secs(10);
    let sas = loop {
        let sas = swanctl.run(&["--list-sas".into()]).unwrap_or_else(|e| e);
        if !sas.contains(CONN) || Instant::now() > until {
            break sas;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        !sas.contains(CONN),
        "the revoked certificate's IKE SA is still up:\n{sas}"
    );
    let (still, _) = wait_conns(&swanctl, |o| o.contains(CONN));
    assert!(
        still,
        "the connection stays loaded for the re-issued certificate"
    );
    let refused = peer.run(&["--initiate".into(), "--child".into(), "good".into()]);
    eprintln!("--- agent with its revoked certificate: swanctl --initiate ---\n{refused:?}");
    eprintln!("--- gateway charon.log (revoked) ---\n{}", log_since(mark));
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("AUTHENTICATION_FAILED")),
        "the revoked certificate was admitted again: {refused:?}"
    );
    let said = log_since(mark);
    assert!(
        said.contains("certificate was revoked"),
        "charon logs the revocation:\n{said}"
    );

    // The server's re-issued certificate is admitted; a later CRL that still lists the old
    // serial leaves its SA alone.
    lm.put(view_with_serial(0xaa, &renewed.serial));
    let admitted = peer.run(&["--initiate".into(), "--child".into(), "renewed".into()]);
    assert!(
        admitted.as_ref().is_ok_and(|o| o.contains("established")),
        "the re-issued certificate was not admitted: {admitted:?}"
    );
    let mark = log_len();
    *lm.crl.lock().unwrap() = Some(crl(&ca, &[&good.serial]));
    std::thread::sleep(Duration::from_millis(2500));
    let said = log_since(mark);
    assert!(
        said.contains("is newer"),
        "the later CRL was loaded:\n{said}"
    );
    let sas = swanctl.run(&["--list-sas".into()]).unwrap_or_else(|e| e);
    assert!(
        sas.contains(CONN) && sas.contains("INSTALLED"),
        "the re-issued certificate's SA was ended by a CRL that revokes only the old one:\n{sas}"
    );

    // This organizer releases the lease: the next sync drops the connection.
    RecordFile::new(&cfg.state_dir)
        .update(|r| r.mark_released(LeaseId::from_random(0xaa), 1))
        .unwrap();
    let (gone, listing) = wait_conns(&swanctl, |o| !o.contains(CONN));
    eprintln!("--- swanctl --list-conns (released) ---\n{listing}");
    assert!(gone, "the released lease's connection is still loaded");
    assert!(!listing.contains("po-"), "no connection left");
    let sas = swanctl.run(&["--list-sas".into()]).unwrap_or_else(|e| e);
    assert!(
        !sas.contains(CONN),
        "the released lease's IKE SA was terminated:\n{sas}"
    );
    drop(peer_charon);

    gw.stop();
    // charon was stopped by its PID.
    let alive = Path::new(&format!("/proc/{charon_pid}")).exists();
    assert!(
        !alive,
        "charon ({charon_pid}) still runs after the gateway stopped"
    );
}
