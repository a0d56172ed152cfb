//! The gateway's services end to end in one process, over real TLS on loopback addresses
//! (127.77.0.2 plays the data-centre address, 127.99.0.0/24 the tunnel network, so a client
//! bound to its tunnel address is "in the tunnel"): registration, key release and refusals,
//! the image store with Range, the watcher removing a released lease's peers, and a restart
//! that restores the peers. The Lease Manager and WireGuard are the crate's shared fakes
//! (`FakeLm`, `FakeWg`); the CA, certificates and CRLs are real (lm-pki).

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::{Agent, agent, call, code, crl, tenant_cert};
use lm_api::{LeaseId, LeaseServer, LeaseState, LeaseView, MacAddr, Tunnel};
use lm_pki::Authority;
use po_api::{ErrorCode, ImageRef, KeyAnswer, PeerRegistered, WgPublicKey};
use procurement_organizer::config::{Config, example};
use procurement_organizer::gateway::http::{Store, key_router, register_router, store_router};
use procurement_organizer::gateway::identity::GatewayIdentity;
use procurement_organizer::gateway::service::{Gateway, GatewayParts};
use procurement_organizer::gateway::source::{FakeLm, FakeWg};
use procurement_organizer::gateway::trust::{CrlCache, PinnedCa, client_verifier};
use procurement_organizer::gateway::{run, tls};
use procurement_organizer::keystore::KeyStore;
use procurement_organizer::record::{RecordFile, RequestedLease};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;

const IMAGE: &str = "0123456789abcdef0123456789abcdef";
const DC: Ipv4Addr = Ipv4Addr::new(127, 77, 0, 2);
const GW_TUNNEL: Ipv4Addr = Ipv4Addr::new(127, 99, 0, 1);

fn lease_id() -> LeaseId {
    LeaseId::from_random(0xaa)
}

fn view(state: LeaseState, serial: &str) -> LeaseView {
    LeaseView {
        id: lease_id(),
        tenant: "acme".parse().unwrap(),
        state,
        reason: None,
        count: 1,
        waiting: 0,
        servers: vec![LeaseServer {
            name: "vm1".into(),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            state: "tunneling".into(),
            cert_serial: Some(serial.into()),
        }],
        tunnel: Tunnel::Wireguard,
        role: None,
        image: Some(IMAGE.into()),
        gateway: None,
        created_ms: 0,
        starts_ms: 0,
        ends_ms: u64::MAX / 2,
        ended_ms: None,
        renewals: 0,
    }
}

struct World {
    _dir: tempfile::TempDir,
    state: std::path::PathBuf,
    cfg: Config,
    ca: Authority,
    lm: Arc<FakeLm>,
    wg: Arc<FakeWg>,
    gw: Arc<Gateway>,
    gw_cert: CertificateDer<'static>,
    register: SocketAddr,
    keys: SocketAddr,
    store: SocketAddr,
}

fn make_gateway(
    state: &Path,
    cfg: &Config,
    ca: &Authority,
    lm: &Arc<FakeLm>,
    wg: &Arc<FakeWg>,
) -> (
    Arc<Gateway>,
    CertificateDer<'static>,
    Arc<rustls::ServerConfig>,
) {
    let identity = GatewayIdentity::load_or_create(state, &cfg.gateway).unwrap();
    let pinned = PinnedCa {
        pem: ca.cert_pem().to_string(),
        der: ca.cert_der().clone(),
    };
    let tls = tls::server_config(
        identity.cert_der.clone(),
        identity.tls_key().unwrap(),
        client_verifier(&pinned.der).unwrap(),
    )
    .unwrap();
    let gw = Gateway::start(GatewayParts {
        cfg: cfg.gateway.clone(),
        tenant: "acme".parse().unwrap(),
        lm: lm.clone(),
        wg: wg.clone(),
        wg_public: identity.wg_public_api(),
        signing_key: po_api::ImageSigningKey([0x5e; 32]),
        state_dir: state.to_path_buf(),
        crl: CrlCache::new(&pinned),
    })
    .unwrap();
    (Arc::new(gw), identity.cert_der, tls)
}

async fn world(agent_serial: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let text = example("b.json", "state", DC, "127.99.0.0/24".parse().unwrap(), &[])
        .replace("# crl_refresh_secs = 10", "crl_refresh_secs = 1")
        .replace("# lm_poll_secs = 3", "lm_poll_secs = 1");
    let cfg = Config::parse(&text, &dir.path().join("organizer.toml")).unwrap();
    let ca = Authority::generate(SystemTime::now(), 1u64.into())
        .unwrap()
        .0;
    let lm = Arc::new(FakeLm::default());
    lm.put(view(LeaseState::Active, agent_serial));
    *lm.crl.lock().unwrap() = Some(crl(&ca, &[]));
    RecordFile::new(&state)
        .update(|r| {
            r.add(RequestedLease {
                id: lease_id(),
                requested_ms: 0,
                count: 1,
                duration_s: 3600,
                tunnel: Tunnel::Wireguard,
                role: None,
                image: Some(IMAGE.into()),
                released_ms: None,
            })
        })
        .unwrap();
    let image: ImageRef = IMAGE.parse().unwrap();
    KeyStore::new(&state).put(&image, 1, &[0x42; 32]).unwrap();
    let images = procurement_organizer::images::store_dir(&state);
    std::fs::create_dir_all(&images).unwrap();
    let chunks: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(images.join(format!("{IMAGE}.chunks")), &chunks).unwrap();
    std::fs::write(images.join(format!("{IMAGE}.manifest")), b"manifest").unwrap();
    let wg = Arc::new(FakeWg::default());
    let (gw, gw_cert, tls) = make_gateway(&state, &cfg, &ca, &lm, &wg);
    let reg = TcpListener::bind((DC, 0)).await.unwrap();
    let keys = TcpListener::bind((GW_TUNNEL, 0)).await.unwrap();
    let store = TcpListener::bind((GW_TUNNEL, 0)).await.unwrap();
    let (register, key_addr, store_addr) = (
        reg.local_addr().unwrap(),
        keys.local_addr().unwrap(),
        store.local_addr().unwrap(),
    );
    tokio::spawn(tls::serve(
        reg,
        tls.clone(),
        register_router(gw.clone()),
        "register",
    ));
    tokio::spawn(tls::serve(keys, tls, key_router(gw.clone()), "keys"));
    let app = store_router(Store {
        dir: images,
        gw: gw.clone(),
    })
    .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(store, app).await });
    World {
        _dir: dir,
        state,
        cfg,
        ca,
        lm,
        wg,
        gw,
        gw_cert,
        register,
        keys: key_addr,
        store: store_addr,
    }
}

fn reg_body(k: u8) -> Vec<u8> {
    serde_json::to_vec(&po_api::RegisterPeer {
        wg_public_key: WgPublicKey([k; 32]),
    })
    .unwrap()
}

fn key_body(image: &str, epoch: u32) -> Vec<u8> {
    format!(r#"{{"image":"{image}","epoch":{epoch}}}"#).into_bytes()
}

/// Every log line of this test binary, for the checks that keys never reach the log.
static LOG: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogWriter;
impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .try_init();
    });
}

fn log_text() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap()).into_owned()
}

const VM1: &str = "urn:lease-appliance:agent:l-00000000000000aa:vm1";
const AGENT_ADDR: Ipv4Addr = Ipv4Addr::new(127, 99, 0, 2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_key_then_store_then_release() {
    capture_logs();
    let w = world("51").await;
    let a = agent(&w.ca, VM1, 0x51);
    let tls = Some((&w.gw_cert, &a));

    // Registration over mutual TLS on the data-centre address.
    let (st, _, body) = call(
        w.register,
        None,
        tls,
        "POST",
        "/v1/peers",
        Some(reg_body(1)),
        None,
    )
    .await
    .unwrap();
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let r: PeerRegistered = po_api::parse_body(&body).unwrap();
    assert_eq!(r.tunnel_address, AGENT_ADDR);
    assert_eq!(r.gateway_tunnel_address, GW_TUNNEL);
    assert_eq!((r.lease, r.server.as_str()), (lease_id(), "vm1"));
    assert_eq!(r.key_service_url, "https://127.99.0.1:7444");
    assert_eq!(r.image_signing_key, po_api::ImageSigningKey([0x5e; 32]));
    assert_eq!(
        w.wg.peers.lock().unwrap().get(&WgPublicKey([1; 32])),
        Some(&AGENT_ADDR)
    );
    // The same key again changes nothing; a new key replaces the old one at the same address.
    let (st, _, _) = call(
        w.register,
        None,
        tls,
        "POST",
        "/v1/peers",
        Some(reg_body(1)),
        None,
    )
    .await
    .unwrap();
    assert_eq!(st, 200);
    let (st, _, body) = call(
        w.register,
        None,
        tls,
        "POST",
        "/v1/peers",
        Some(reg_body(2)),
        None,
    )
    .await
    .unwrap();
    assert_eq!(st, 200);
    assert_eq!(
        po_api::parse_body::<PeerRegistered>(&body)
            .unwrap()
            .tunnel_address,
        AGENT_ADDR
    );
    {
        let peers = w.wg.peers.lock().unwrap();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers.get(&WgPublicKey([2; 32])), Some(&AGENT_ADDR));
    }

    // The key, from the agent's tunnel address only.
    let (st, headers, body) = call(
        w.keys,
        Some(AGENT_ADDR),
        tls,
        "POST",
        "/v1/keys",
        Some(key_body(IMAGE, 1)),
        None,
    )
    .await
    .unwrap();
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers.get("cache-control").unwrap(), "no-store");
    let k: KeyAnswer = po_api::parse_body(&body).unwrap();
    assert_eq!(*k.key.decode(), [0x42; 32]);
    let key_b64 = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";
    let refused = |st: u16, body: &Bytes, want: ErrorCode| {
        assert_eq!(code(body), want, "{st} {}", String::from_utf8_lossy(body));
        assert_eq!(st, want.http_status());
    };
    let (st, _, body) = call(
        w.keys,
        Some(Ipv4Addr::new(127, 99, 0, 50)),
        tls,
        "POST",
        "/v1/keys",
        Some(key_body(IMAGE, 1)),
        None,
    )
    .await
    .unwrap();
    refused(st, &body, ErrorCode::NotFromTunnel);
    let other = "ff".repeat(16);
    let (st, _, body) = call(
        w.keys,
        Some(AGENT_ADDR),
        tls,
        "POST",
        "/v1/keys",
        Some(key_body(&other, 1)),
        None,
    )
    .await
    .unwrap();
    refused(st, &body, ErrorCode::WrongImage);
    let (st, _, body) = call(
        w.keys,
        Some(AGENT_ADDR),
        tls,
        "POST",
        "/v1/keys",
        Some(key_body(IMAGE, 2)),
        None,
    )
    .await
    .unwrap();
    refused(st, &body, ErrorCode::NoSuchKey);

    // The image store: whole file, a resumed range, a bad range, and only for the lease's
    // registered tunnel address.
    let path = format!("/v1/images/{IMAGE}.chunks");
    let (st, _, body) = call(w.store, Some(AGENT_ADDR), None, "GET", &path, None, None)
        .await
        .unwrap();
    assert_eq!((st, body.len()), (200, 100_000));
    let (st, h, body) = call(
        w.store,
        Some(AGENT_ADDR),
        None,
        "GET",
        &path,
        None,
        Some("bytes=99990-"),
    )
    .await
    .unwrap();
    assert_eq!((st, body.len()), (206, 10));
    assert_eq!(h.get("content-range").unwrap(), "bytes 99990-99999/100000");
    assert_eq!(body[0], (99_990 % 251) as u8);
    let (st, h, _) = call(
        w.store,
        Some(AGENT_ADDR),
        None,
        "GET",
        &path,
        None,
        Some("bytes=100000-"),
    )
    .await
    .unwrap();
    assert_eq!(st, 416);
    assert_eq!(h.get("content-range").unwrap(), "bytes */100000");
    let (st, _, _) = call(
        w.store,
        Some(Ipv4Addr::new(127, 99, 0, 50)),
        None,
        "GET",
        &path,
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(st, 403, "an address that is no registered peer");
    for bad in [
        format!("/v1/images/../{IMAGE}.chunks"),
        format!("/v1/images/{IMAGE}.key"),
        "/v1/images/..%2fstate%2fkeys%2fsigning.pem".to_string(),
        format!("/v1/images/{IMAGE}.chunks?x=1"),
    ] {
        let (st, _, _) = call(w.store, Some(AGENT_ADDR), None, "GET", &bad, None, None)
            .await
            .unwrap();
        assert_eq!(st, 404, "{bad}");
    }

    // Release: the LM says releasing; keys stop at once, the watcher removes the peer.
    w.lm.put(view(LeaseState::Releasing, "51"));
    let (st, _, body) = call(
        w.keys,
        Some(AGENT_ADDR),
        tls,
        "POST",
        "/v1/keys",
        Some(key_body(IMAGE, 1)),
        None,
    )
    .await
    .unwrap();
    refused(st, &body, ErrorCode::LeaseNotLive);
    assert_eq!(w.gw.sweep().await.unwrap(), 1);
    assert!(w.wg.peers.lock().unwrap().is_empty());
    assert!(w.gw.peer_table().await.peers().is_empty());
    let (st, _, body) = call(
        w.register,
        None,
        tls,
        "POST",
        "/v1/peers",
        Some(reg_body(3)),
        None,
    )
    .await
    .unwrap();
    refused(st, &body, ErrorCode::LeaseNotLive);

    // Every release and refusal is in the log with lease, server, image and reason; the key
    // never is.
    let log = log_text();
    if std::env::var_os("SHOW_LOG").is_some() {
        eprintln!("{log}");
    }
    assert!(log.contains("image key released"), "{log}");
    for reason in [
        "not-from-tunnel",
        "wrong-image",
        "no-such-key",
        "lease-not-live",
    ] {
        assert!(
            log.contains(&format!("reason={reason}"))
                || log.contains(&format!("reason=\"{reason}\"")),
            "{reason}: {log}"
        );
    }
    assert!(
        log.contains("lease=l-00000000000000aa") && log.contains("server=vm1"),
        "{log}"
    );
    assert!(log.contains(&format!("image={IMAGE}")), "{log}");
    assert!(log.contains("peer removed"), "{log}");
    assert!(
        !log.contains(key_b64) && !log.contains("4242424242"),
        "the key reached the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_at_registration() {
    let w = world("51").await;
    let good = agent(&w.ca, VM1, 0x51);
    let post = |a: &Agent, body: Vec<u8>| {
        let (addr, cert) = (w.register, w.gw_cert.clone());
        let chain = a.chain.clone();
        let key = a.key.clone_key();
        async move {
            let a = Agent {
                chain,
                key,
                serial: String::new(),
            };
            call(
                addr,
                None,
                Some((&cert, &a)),
                "POST",
                "/v1/peers",
                Some(body),
                None,
            )
            .await
        }
    };
    // A foreign CA: the handshake itself fails.
    let foreign_ca = Authority::generate(SystemTime::now(), 1u64.into())
        .unwrap()
        .0;
    let foreign = agent(&foreign_ca, VM1, 0x51);
    assert!(post(&foreign, reg_body(1)).await.is_err());
    // A tenant certificate names no agent.
    let (st, _, body) = post(&tenant_cert(&w.ca), reg_body(1)).await.unwrap();
    assert_eq!((st, code(&body)), (403, ErrorCode::NotAnAgent));
    // A certificate for another server, another lease, a stale certificate of vm1.
    let (st, _, body) = post(
        &agent(
            &w.ca,
            "urn:lease-appliance:agent:l-00000000000000aa:vm9",
            0x52,
        ),
        reg_body(1),
    )
    .await
    .unwrap();
    assert_eq!((st, code(&body)), (403, ErrorCode::WrongServer));
    let (st, _, body) = post(
        &agent(
            &w.ca,
            "urn:lease-appliance:agent:l-00000000000000bb:vm1",
            0x53,
        ),
        reg_body(1),
    )
    .await
    .unwrap();
    assert_eq!((st, code(&body)), (403, ErrorCode::NotApproved));
    let (st, _, body) = post(&agent(&w.ca, VM1, 0x54), reg_body(1)).await.unwrap();
    assert_eq!(
        (st, code(&body)),
        (403, ErrorCode::Revoked),
        "not the LM's current certificate"
    );
    // Hostile bodies.
    for body in [
        br#"{"wg_public_key":"AAAA"}"#.to_vec(),
        br#"{"wg_public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","x":1}"#.to_vec(),
        vec![b' '; po_api::MAX_BODY + 10],
        b"".to_vec(),
    ] {
        let (st, _, b) = post(&good, body).await.unwrap();
        assert_eq!((st, code(&b)), (400, ErrorCode::BadRequest));
    }
    // Revoked on the LM's CRL (refreshed once older than crl_refresh_secs = 1).
    *w.lm.crl.lock().unwrap() = Some(crl(&w.ca, &[&good.serial]));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (st, _, body) = post(&good, reg_body(1)).await.unwrap();
    assert_eq!((st, code(&body)), (403, ErrorCode::Revoked));
    // The organizer released the lease: refused even while the LM still says active.
    *w.lm.crl.lock().unwrap() = Some(crl(&w.ca, &[]));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (st, _, _) = post(&good, reg_body(1)).await.unwrap();
    assert_eq!(st, 200);
    RecordFile::new(&w.state)
        .update(|r| r.mark_released(lease_id(), 1))
        .unwrap();
    let (st, _, body) = post(&good, reg_body(1)).await.unwrap();
    assert_eq!((st, code(&body)), (403, ErrorCode::NotApproved));
    assert_eq!(w.gw.sweep().await.unwrap(), 1, "the watcher removes it too");
    // The LM unreachable: no decision (fail closed), the answer says try again.
    RecordFile::new(&w.state)
        .update(|r| r.leases.get_mut(&lease_id()).map(|l| l.released_ms = None))
        .unwrap();
    *w.lm.down.lock().unwrap() = Some("connection refused".into());
    let (st, _, body) = post(&good, reg_body(1)).await.unwrap();
    assert_eq!((st, code(&body)), (503, ErrorCode::Unavailable));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_survive_a_restart() {
    let w = world("51").await;
    let a = agent(&w.ca, VM1, 0x51);
    let (st, _, _) = call(
        w.register,
        None,
        Some((&w.gw_cert, &a)),
        "POST",
        "/v1/peers",
        Some(reg_body(9)),
        None,
    )
    .await
    .unwrap();
    assert_eq!(st, 200);
    // A new gateway on the same state folder: same certificate (the agents' pin), and the
    // peer is back in WireGuard with its address.
    let wg2 = Arc::new(FakeWg::default());
    let (gw2, cert2, _) = make_gateway(&w.state, &w.cfg, &w.ca, &w.lm, &wg2);
    assert_eq!(cert2, w.gw_cert);
    assert_eq!(
        wg2.peers.lock().unwrap().get(&WgPublicKey([9; 32])),
        Some(&AGENT_ADDR)
    );
    assert_eq!(
        gw2.peer_table()
            .await
            .address_of(lease_id(), &"vm1".parse().unwrap()),
        Some(AGENT_ADDR)
    );
    // The watcher loop removes the peers of an ended lease within a poll.
    w.lm.put(view(LeaseState::Ended, "51"));
    let h = tokio::spawn(run::watch(gw2.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !wg2.peers.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher did not remove the peer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.abort();
}
