//! Interop: our IKE_SA_INIT initiator against strongSwan's charon as responder, each in its own
//! network namespace (root; skipped with a reason otherwise). Shows that charon accepts our
//! requests and we accept its responses (x25519 and ecp256), that our keys are charon's keys
//! (charon decrypts an IKE_AUTH request sealed with our SK_ei, and we decrypt its answer with
//! SK_er; one flipped key bit makes charon refuse it), the INVALID_KE_PAYLOAD retry, and the
//! COOKIE round trip.

#[path = "common/strongswan.rs"]
mod strongswan;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use agent_ike::consts::{auth, exchange, flags, id, notify};
use agent_ike::{
    Action, DhGroup, Header, Identity, InitiatorConfig, Payload, Resend, RetransmitPolicy,
    SaInitDone, SaInitiator, SystemEntropy, Timeout, decode, sk,
};
use strongswan::{Lab, RESPONDER, skip_reason};

const MAIN: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const STRICT: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 3);

const SWANCTL: &str = r#"
connections {
  main {
    version = 2
    local_addrs = 10.99.0.2
    remote_addrs = 10.99.0.1
    proposals = aes256gcm16-prfsha256-x25519-ecp256
    local { auth = psk
            id = fw }
    remote { auth = psk
             id = agent }
    children { c { esp_proposals = aes256gcm16 } }
  }
  strict {
    version = 2
    local_addrs = 10.99.0.2
    remote_addrs = 10.99.0.3
    proposals = aes256gcm16-prfsha256-x25519
    local { auth = psk
            id = fw }
    remote { auth = psk
             id = agent3 }
    children { c { esp_proposals = aes256gcm16 } }
  }
}
secrets { ike-1 { id-1 = agent
                  id-2 = fw
                  secret = "interop-test-psk" } }
"#;

fn config(local: Ipv4Addr, groups: Vec<DhGroup>) -> InitiatorConfig {
    InitiatorConfig {
        groups,
        local: SocketAddr::from((local, 500)),
        remote: SocketAddr::from((RESPONDER, 500)),
        nonce_len: 32,
        retransmit: RetransmitPolicy {
            initial: Duration::from_millis(500),
            factor_percent: 200,
            max: Duration::from_secs(2),
            tries: 3,
        },
    }
}

/// Runs the exchange over `sock`; returns the result and why new requests went out.
fn run(sock: &UdpSocket, init: &mut SaInitiator) -> (SaInitDone, Vec<Resend>) {
    let mut resends = Vec::new();
    let first = init.start(Instant::now()).expect("start");
    sock.send(&first).expect("send IKE_SA_INIT");
    let mut buf = vec![0u8; 65536];
    loop {
        let wait = match init.next_timeout(Instant::now()) {
            Timeout::WaitUntil(t) => t.saturating_duration_since(Instant::now()),
            Timeout::Resend(req) => {
                sock.send(&req).expect("resend");
                continue;
            }
            other => panic!("IKE_SA_INIT gave up: {other:?}"),
        };
        sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .expect("timeout");
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => panic!("recv: {e}"),
        };
        match init.on_message(&buf[..n], Instant::now()) {
            Action::Send { request, why } => {
                resends.push(why);
                sock.send(&request).expect("send retry");
            }
            Action::Established(done) => return (*done, resends),
            Action::Drop(r) => eprintln!("dropped a datagram: {r}"),
        }
    }
}

fn connect(lab: &Lab, local: Ipv4Addr) -> UdpSocket {
    let sock = lab.bind(SocketAddr::from((local, 500)));
    sock.connect(SocketAddr::from((RESPONDER, 500)))
        .expect("connect");
    sock
}

/// An IKE_AUTH request (IDi + AUTH with dummy data) sealed with `key`.
fn auth_request(done: &SaInitDone, idi: &str, key: &sk::SkKey) -> Vec<u8> {
    let header = Header {
        spi_i: done.spi_i,
        spi_r: done.spi_r,
        exchange: exchange::IKE_AUTH,
        flags: flags::INITIATOR,
        msg_id: 1,
    };
    let inner = [
        Payload::IdI(Identity {
            id_type: id::FQDN,
            data: idi.as_bytes().to_vec(),
        }),
        Payload::Auth {
            method: auth::SHARED_KEY_MIC,
            data: vec![0x5a; 32],
        },
    ];
    sk::seal(&header, &inner, key, 1).expect("seal IKE_AUTH")
}

/// Control first (one key bit flipped: charon must refuse it), then the real key: charon must
/// parse the inner payloads, and its encrypted answer must open with our SK_er.
fn prove_keys(lab: &Lab, sock: &UdpSocket, done: &SaInitDone, idi: &str) {
    let parsed = "parsed IKE_AUTH request 1 [ IDi AUTH ]";
    let failed = "integrity check failed";
    let before = lab.log().matches(parsed).count();
    let failed_before = lab.log().matches(failed).count();
    let mut wrong = done.keys.sk_ei.clone();
    wrong.key[7] ^= 0x10;
    sock.send(&auth_request(done, idi, &wrong))
        .expect("send control");
    assert!(
        lab.wait_log(failed, failed_before + 1, Duration::from_secs(5)),
        "charon did not log an integrity failure for the flipped key"
    );
    assert_eq!(
        lab.log().matches(parsed).count(),
        before,
        "charon parsed a message under a wrong key"
    );

    sock.send(&auth_request(done, idi, &done.keys.sk_ei))
        .expect("send IKE_AUTH");
    assert!(
        lab.wait_log(parsed, before + 1, Duration::from_secs(5)),
        "charon did not decrypt our IKE_AUTH"
    );

    let mut buf = vec![0u8; 65536];
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let n = sock.recv(&mut buf).expect("charon's IKE_AUTH response");
    let msg = decode(&buf[..n]).expect("decode IKE_AUTH response");
    assert_eq!(msg.header.exchange, exchange::IKE_AUTH);
    let inner = sk::open(&buf[..n], &msg, &done.keys.sk_er).expect("open with our SK_er");
    let failed = inner
        .iter()
        .any(|p| matches!(p, Payload::Notify(n) if n.kind == notify::AUTHENTICATION_FAILED));
    assert!(
        failed,
        "expected AUTHENTICATION_FAILED (our AUTH data is a dummy), got {inner:?}"
    );
}

#[test]
fn strongswan_interop() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let lab = Lab::start(&[MAIN, STRICT], SWANCTL, "cookie_threshold = 100");
    let mut rng = SystemEntropy::default();

    // (a) + (b): x25519, then ecp256.
    for group in [DhGroup::Curve25519, DhGroup::Ecp256] {
        let sock = connect(&lab, MAIN);
        let mut init = SaInitiator::new(config(MAIN, vec![group]), &mut rng).expect("initiator");
        let t = Instant::now();
        let (done, resends) = run(&sock, &mut init);
        eprintln!(
            "IKE_SA_INIT with group {} done in {:?}",
            group.number(),
            t.elapsed()
        );
        assert_eq!(done.group, group);
        assert!(resends.is_empty(), "{resends:?}");
        prove_keys(&lab, &sock, &done, "agent");
    }
    let log = lab.log();
    assert!(
        log.contains("CURVE_25519") && log.contains("ECP_256"),
        "charon did not name both groups"
    );

    // (c): offer ecp256 first to a connection that only takes x25519.
    let sock = connect(&lab, STRICT);
    let cfg = config(STRICT, vec![DhGroup::Ecp256, DhGroup::Curve25519]);
    let mut init = SaInitiator::new(cfg, &mut rng).expect("initiator");
    let (done, resends) = run(&sock, &mut init);
    assert_eq!(resends, vec![Resend::InvalidKe { group: 31 }]);
    assert_eq!(done.group, DhGroup::Curve25519);
    assert!(
        lab.log()
            .contains("generating IKE_SA_INIT response 0 [ N(INVAL_KE) ]")
    );
    prove_keys(&lab, &sock, &done, "agent3");
}

#[test]
fn strongswan_cookie() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    // One half-open IKE SA turns cookies on.
    let lab = Lab::start(&[MAIN], SWANCTL, "cookie_threshold = 1");
    let mut rng = SystemEntropy::default();
    let sock = connect(&lab, MAIN);
    let mut first = SaInitiator::new(config(MAIN, vec![DhGroup::Curve25519]), &mut rng).unwrap();
    let (_half_open, resends) = run(&sock, &mut first);
    assert!(resends.is_empty(), "{resends:?}");
    let mut second = SaInitiator::new(config(MAIN, vec![DhGroup::Curve25519]), &mut rng).unwrap();
    let (done, resends) = run(&sock, &mut second);
    assert_eq!(
        resends,
        vec![Resend::Cookie],
        "charon did not ask for a cookie"
    );
    prove_keys(&lab, &sock, &done, "agent");
}
