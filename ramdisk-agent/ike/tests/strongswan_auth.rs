//! Interop, second slice: IKE_SA_INIT + IKE_AUTH with X.509 certificates against strongSwan's
//! charon as responder (kernel-libipsec, own namespace; root, skipped otherwise). Certificates
//! are made here with rcgen: a test CA, charon's certificate, the agent's P-256 certificate,
//! and a rogue CA with its own certificates. Shows: charon logs the IKE SA and the CHILD SA as
//! established, we verified charon's RFC 7427 AUTH, our child SPIs and keys are the ones
//! charon installs (its `chd = 4` log prints them), and the refusals both ways.

#[path = "common/ca.rs"]
mod ca;
#[path = "common/strongswan.rs"]
mod strongswan;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use agent_ike::cert::sha256;
use agent_ike::consts::auth;
use agent_ike::{
    Action, AuthAction, AuthConfig, AuthDone, AuthFailure, AuthInitiator, CertError, DhGroup,
    InitiatorConfig, LocalCredential, PeerTrust, Refusal, RetransmitPolicy, SaInitDone,
    SaInitiator, SystemEntropy, Timeout, TrafficSelector,
};
use ca::Ca;
use strongswan::{Lab, RESPONDER, skip_reason};

/// Our address for the connection whose charon certificate comes from the test CA.
const GOOD: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// Our address for the connection whose charon certificate comes from the rogue CA.
const ROGUE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 3);

fn retransmit() -> RetransmitPolicy {
    RetransmitPolicy {
        initial: Duration::from_millis(500),
        factor_percent: 200,
        max: Duration::from_secs(2),
        tries: 3,
    }
}

/// charon's swanctl.conf, the credential files for it, and its certificate's DER.
fn swanctl(ca: &Ca, rogue_ca: &Ca) -> (String, Vec<(String, String)>, Vec<u8>) {
    let (fw_der, fw_pem, _, fw_key) = ca.issue("tenant firewall", "fw.tenant.test");
    let (_, rogue_pem, _, rogue_key) = rogue_ca.issue("tenant firewall", "fw.tenant.test");
    let files = vec![
        ("x509ca/ca.pem".to_string(), ca.cert_pem.clone()),
        ("x509/fw.pem".to_string(), fw_pem),
        ("private/fw.key".to_string(), fw_key),
        ("x509/rogue.pem".to_string(), rogue_pem),
        ("private/rogue.key".to_string(), rogue_key),
    ];
    let conn = |name: &str, addr: Ipv4Addr, cert: &str| {
        format!(
            "  {name} {{\n    version = 2\n    local_addrs = {RESPONDER}\n    remote_addrs = {addr}\n    \
             proposals = aes256gcm16-prfsha256-x25519-ecp256\n    \
             local {{ auth = pubkey\n      certs = {cert} }}\n    \
             remote {{ auth = pubkey\n      cacerts = ca.pem }}\n    \
             children {{ c {{ local_ts = 10.20.0.0/16\n      remote_ts = 10.30.0.5/32\n      \
             esp_proposals = aes256gcm16 }} }}\n  }}\n"
        )
    };
    let conf = format!(
        "connections {{\n{}{}}}\n",
        conn("good", GOOD, "fw.pem"),
        conn("rogue", ROGUE, "rogue.pem"),
    );
    (conf, files, fw_der)
}

fn connect(lab: &Lab, local: Ipv4Addr) -> UdpSocket {
    let sock = lab.bind(SocketAddr::from((local, 500)));
    sock.connect(SocketAddr::from((RESPONDER, 500)))
        .expect("connect");
    sock
}

/// Waits for a datagram until `deadline`; None on timeout.
fn recv(sock: &UdpSocket, buf: &mut [u8], deadline: Instant) -> Option<usize> {
    let wait = deadline.saturating_duration_since(Instant::now());
    sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))))
        .unwrap();
    match sock.recv(buf) {
        Ok(n) => Some(n),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(e) => panic!("recv: {e}"),
    }
}

fn wait_deadline(t: Timeout, sock: &UdpSocket) -> Option<Instant> {
    match t {
        Timeout::WaitUntil(t) => Some(t),
        Timeout::Resend(req) => {
            sock.send(&req).unwrap();
            None
        }
        other => panic!("gave up: {other:?}"),
    }
}

fn sa_init(sock: &UdpSocket, local: Ipv4Addr) -> SaInitDone {
    let cfg = InitiatorConfig {
        groups: vec![DhGroup::Curve25519],
        local: SocketAddr::from((local, 500)),
        remote: SocketAddr::from((RESPONDER, 500)),
        nonce_len: 32,
        retransmit: retransmit(),
    };
    let mut init = SaInitiator::new(cfg, &mut SystemEntropy::default()).unwrap();
    sock.send(&init.start(Instant::now()).unwrap()).unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        let Some(deadline) = wait_deadline(init.next_timeout(Instant::now()), sock) else {
            continue;
        };
        let Some(n) = recv(sock, &mut buf, deadline) else {
            continue;
        };
        match init.on_message(&buf[..n], Instant::now()) {
            Action::Established(done) => return *done,
            other => panic!("IKE_SA_INIT: {other:?}"),
        }
    }
}

/// IKE_SA_INIT then IKE_AUTH with `cred` and `trust`; the IKE_AUTH outcome and our ESP SPI.
fn establish(
    lab: &Lab,
    local: Ipv4Addr,
    cred: LocalCredential,
    trust: PeerTrust,
) -> (AuthAction, u32) {
    let sock = connect(lab, local);
    let done = sa_init(&sock, local);
    assert!(
        done.peer_signature_hashes.contains(&2),
        "charon offers SHA2-256"
    );
    let cfg = AuthConfig {
        credential: cred,
        trust,
        peer_id: None,
        local_ts: vec![TrafficSelector::v4([10, 30, 0, 5], [10, 30, 0, 5])],
        // Wider than charon's 10.20.0.0/16: it narrows.
        remote_ts: vec![TrafficSelector::v4([10, 0, 0, 0], [10, 255, 255, 255])],
        initial_contact: true,
        request_address: false,
        retransmit: retransmit(),
    };
    let mut a = AuthInitiator::new(done, cfg, &mut SystemEntropy::default()).unwrap();
    let t = Instant::now();
    sock.send(&a.start(Instant::now()).unwrap()).unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        let Some(deadline) = wait_deadline(a.next_timeout(Instant::now()), &sock) else {
            continue;
        };
        let Some(n) = recv(&sock, &mut buf, deadline) else {
            continue;
        };
        match a.on_message(&buf[..n], SystemTime::now()) {
            AuthAction::Drop(d) => eprintln!("dropped: {d}"),
            outcome => {
                eprintln!("IKE_AUTH answered in {:?}", t.elapsed());
                return (outcome, a.spi_in());
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The hex bytes of the `%B` dump charon logs after `label` (the last occurrence).
fn logged_bytes(log: &str, label: &str) -> Option<String> {
    let start = log.rfind(label)?;
    let mut out = String::new();
    for line in log[start..].lines().skip(1) {
        // Dump lines look like "HH:MM:SS 04[CHD]    0: 1A 2B ...  ascii".
        let Some((_, rest)) = line.split_once("] ") else {
            break;
        };
        let Some((offset, bytes)) = rest.trim_start().split_once(": ") else {
            break;
        };
        if offset.parse::<u32>().is_err() {
            break;
        }
        for tok in bytes.split_whitespace().take(16) {
            if tok.len() == 2 && tok.chars().all(|c| c.is_ascii_hexdigit()) {
                out.push_str(&tok.to_ascii_lowercase());
            } else {
                break;
            }
        }
    }
    Some(out)
}

fn established(outcome: AuthAction) -> AuthDone {
    match outcome {
        AuthAction::Established(d) => *d,
        other => panic!("IKE_AUTH did not establish: {other:?}"),
    }
}

#[test]
fn strongswan_ike_auth_with_certificates() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let ca = Ca::new("ike interop CA");
    let rogue_ca = Ca::new("rogue CA");
    let (conf, files, fw_der) = swanctl(&ca, &rogue_ca);
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let lab = Lab::start_with(&[GOOD, ROGUE], &conf, "", "chd = 4", &files);
    // The tenant network behind the firewall: kernel-libipsec routes our inner address via
    // its TUN device with a source address from its side's selector.
    let up = std::process::Command::new("ip")
        .args(["-n", &lab.ns_r, "addr", "add", "10.20.0.1/16", "dev", "lo"])
        .status()
        .unwrap();
    assert!(up.success());
    let (agent_der, _, agent_key, _) = ca.issue("agent 52:54:00:12:34:56", "agent.lease.test");
    let agent = || LocalCredential::new(&agent_der, &agent_key).unwrap();

    // (1) CA trust: both sides authenticate, the child SA comes up.
    let (outcome, spi_in) = establish(&lab, GOOD, agent(), PeerTrust::Ca(ca.cert_der.clone()));
    let done = established(outcome);
    assert_eq!(done.peer_auth_method, auth::DIGITAL_SIGNATURE);
    assert_eq!(done.peer_cert.der, fw_der);
    eprintln!("NAT detection: {:?}", done.nat);
    // kernel-libipsec makes charon fake its NAT_DETECTION_SOURCE_IP to force UDP
    // encapsulation; we see it as a NAT in front of the responder, none in front of us.
    assert!(
        lab.log()
            .contains("faking NAT situation to enforce UDP encapsulation")
    );
    assert!(done.nat.peer_supports && done.nat.remote_behind_nat && !done.nat.local_behind_nat);
    let child = done.child.expect("child SA");
    assert_eq!(child.spi_in, spi_in);
    assert_eq!(
        child.remote_ts,
        vec![TrafficSelector::v4([10, 20, 0, 0], [10, 20, 255, 255])],
        "charon narrows TSr to its 10.20.0.0/16"
    );
    let line = format!(
        "established with SPIs {:08x}_i {:08x}_o",
        child.spi_out, child.spi_in
    );
    assert!(
        lab.wait_log(&line, 1, Duration::from_secs(5)),
        "charon's CHILD_SA line with our SPIs ({line}) missing"
    );
    let log = lab.log();
    assert!(log.contains("IKE_SA good[1] established between"));
    for l in log.lines().filter(|l| {
        l.contains("established between")
            || l.contains("established with SPIs")
            || l.contains("authentication of")
    }) {
        eprintln!("charon: {l}");
    }
    // charon (responder) prints KEYMAT's parts: the initiator's are our outbound ones.
    let i2r = &child.keys.initiator_to_responder;
    let r2i = &child.keys.responder_to_initiator;
    let want = [
        (
            "encryption initiator key",
            [&i2r.key[..], &i2r.salt].concat(),
        ),
        (
            "encryption responder key",
            [&r2i.key[..], &r2i.salt].concat(),
        ),
    ];
    for (label, ours) in want {
        let theirs = logged_bytes(&log, label).unwrap_or_else(|| panic!("no '{label}' in log"));
        assert_eq!(theirs, hex(&ours), "{label}: charon's differs from ours");
        eprintln!("{label}: charon and we agree ({} bytes)", ours.len());
    }

    // (2) Pin trust: the pinned certificate passes, another pin is refused by us.
    let (outcome, _) = establish(&lab, GOOD, agent(), PeerTrust::Pin(sha256(&fw_der)));
    assert!(established(outcome).child.is_ok());
    let (outcome, _) = establish(&lab, GOOD, agent(), PeerTrust::Pin([7; 32]));
    assert!(
        matches!(
            outcome,
            AuthAction::Failed(AuthFailure::PeerCert(CertError::NotPinned { .. }))
        ),
        "{outcome:?}"
    );

    // (3) charon presents a certificate of another CA: we refuse it.
    let (outcome, _) = establish(&lab, ROGUE, agent(), PeerTrust::Ca(ca.cert_der.clone()));
    assert!(
        matches!(
            outcome,
            AuthAction::Failed(AuthFailure::PeerCert(CertError::WrongIssuer { .. }))
        ),
        "{outcome:?}"
    );

    // (4) our certificate comes from another CA (a subject charon has not seen): charon
    // refuses it and we report it.
    let cn = "agent 52:54:00:ab:cd:ef";
    let (rogue_der, _, rogue_key, _) = rogue_ca.issue(cn, "agent.lease.test");
    let rogue_agent = LocalCredential::new(&rogue_der, &rogue_key).unwrap();
    let (outcome, _) = establish(&lab, GOOD, rogue_agent, PeerTrust::Ca(ca.cert_der.clone()));
    assert!(
        matches!(
            outcome,
            AuthAction::Failed(AuthFailure::Refused(Refusal::AuthenticationFailed))
        ),
        "{outcome:?}"
    );
    let log = lab.log();
    let last = &log[log.rfind("IKE_SA_INIT request 0").unwrap_or(0)..];
    for needle in [
        format!("no issuer certificate found for \"CN={cn}"),
        "generating IKE_AUTH response 1 [ N(AUTH_FAILED) ]".to_string(),
    ] {
        assert!(last.contains(&needle), "charon did not log {needle}");
    }
    for l in last
        .lines()
        .filter(|l| l.contains("issuer") || l.contains("AUTH_FAILED") || l.contains("constraint"))
    {
        eprintln!("charon: {l}");
    }
}
