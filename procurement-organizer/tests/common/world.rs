//! The in-process gateway of the loopback tests: a real CA, certificates and TLS, the shared
//! fakes of the LM and of WireGuard, a recorded lease with its image and key, and the three
//! services listening on loopback addresses (127.77.0.2 plays the data-centre address,
//! 127.99.0.0/24 the tunnel network, so a client bound to its tunnel address is "in the
//! tunnel").

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use lm_api::{LeaseId, LeaseServer, LeaseState, LeaseView, MacAddr, Tunnel};
use lm_pki::Authority;
use po_api::{ImageRef, WgPublicKey};
use procurement_organizer::config::{Config, example};
use procurement_organizer::gateway::http::{Store, key_router, register_router, store_router};
use procurement_organizer::gateway::identity::GatewayIdentity;
use procurement_organizer::gateway::service::{Gateway, GatewayParts};
use procurement_organizer::gateway::source::{FakeLm, FakeWg};
use procurement_organizer::gateway::tls;
use procurement_organizer::gateway::trust::{CrlCache, PinnedCa, client_verifier};
use procurement_organizer::keystore::KeyStore;
use procurement_organizer::record::{RecordFile, RequestedLease};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;

use super::crl;

pub const VM1: &str = "urn:lease-appliance:agent:l-00000000000000aa:vm1";
pub const AGENT_ADDR: Ipv4Addr = Ipv4Addr::new(127, 99, 0, 2);
pub const IMAGE: &str = "0123456789abcdef0123456789abcdef";
pub const DC: Ipv4Addr = Ipv4Addr::new(127, 77, 0, 2);
pub const GW_TUNNEL: Ipv4Addr = Ipv4Addr::new(127, 99, 0, 1);

pub fn lease_id() -> LeaseId {
    LeaseId::from_random(0xaa)
}

pub fn view(state: LeaseState, serial: &str) -> LeaseView {
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

pub struct World {
    pub _dir: tempfile::TempDir,
    pub state: std::path::PathBuf,
    pub cfg: Config,
    pub ca: Authority,
    pub lm: Arc<FakeLm>,
    pub wg: Arc<FakeWg>,
    pub gw: Arc<Gateway>,
    pub gw_cert: CertificateDer<'static>,
    pub register: SocketAddr,
    pub keys: SocketAddr,
    pub store: SocketAddr,
}

pub fn make_gateway(
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

pub async fn world(agent_serial: &str) -> World {
    world_with(agent_serial, |t| t).await
}

/// Like [`world`], with the organizer's config text edited first.
pub async fn world_with(agent_serial: &str, edit: impl Fn(String) -> String) -> World {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let text = edit(
        example("b.json", "state", DC, "127.99.0.0/24".parse().unwrap(), &[])
            .replace("# crl_refresh_secs = 10", "crl_refresh_secs = 1")
            .replace("# lm_poll_secs = 3", "lm_poll_secs = 1"),
    );
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

/// A registration stating the host root.
pub fn reg_body_root(k: u8, root: Option<po_api::HostRoot>) -> Vec<u8> {
    serde_json::to_vec(&po_api::RegisterPeer {
        wg_public_key: Some(WgPublicKey([k; 32])),
        host_root: root,
    })
    .unwrap()
}

pub fn reg_body(k: u8) -> Vec<u8> {
    serde_json::to_vec(&po_api::RegisterPeer {
        wg_public_key: Some(WgPublicKey([k; 32])),
        host_root: None,
    })
    .unwrap()
}

pub fn key_body(image: &str, epoch: u32) -> Vec<u8> {
    format!(r#"{{"image":"{image}","epoch":{epoch}}}"#).into_bytes()
}
