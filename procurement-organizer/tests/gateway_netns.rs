//! The gateway with real WireGuard in network namespaces (root): namespace "gw" runs the
//! gateway as `gateway run` starts it (`run::start`: TUN device, WireGuard node, registration,
//! key service, image store, watcher) with the shared fake of the Lease Manager; namespace "ag"
//! plays the agent over a veth (the data-centre segment 10.63.0.0/24). The image store is
//! unreachable from "ag" before the tunnel; the agent registers over mutual TLS, builds its
//! WireGuard node with the answer, fetches a sealed image (a marker planted in its plaintext)
//! and its key through the tunnel and opens it; a capture on the segment never sees the
//! marker; after the lease is released the gateway drops the peer and the store is cut off.
//! Skipped (with a message) when not root or without /dev/net/tun.

mod common;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{Agent, agent, call, crl};
use lab::bench::tunnel::capture::Capture;
use lab::netns::{self, Netns};
use lm_api::{LeaseId, LeaseServer, LeaseState, LeaseView, MacAddr, Tunnel};
use lm_pki::Authority;
use po_api::{KeyAnswer, PeerRegistered, RegisterPeer, WgPublicKey};
use procurement_organizer::config::{Config, example};
use procurement_organizer::gateway::source::FakeLm;
use procurement_organizer::images::{self, SealRequest};
use procurement_organizer::record::{RecordFile, RequestedLease};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sealed_image::{ImageId, ImageKey, KeyEpoch, OpenReader, Opener, VerifyingKey};
use wg_tunnel::{Node, NodeConfig, NodeHandle, PeerConfig, PrivateKey, PublicKey, Tun};

const DC: Ipv4Addr = Ipv4Addr::new(10, 63, 0, 2);
const AGENT_DC: Ipv4Addr = Ipv4Addr::new(10, 63, 0, 50);
const GW_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 1);
const VM1: &str = "urn:lease-appliance:agent:l-00000000000000aa:vm1";

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

fn view(state: LeaseState, image: &str) -> LeaseView {
    LeaseView {
        id: LeaseId::from_random(0xaa),
        tenant: "acme".parse().unwrap(),
        state,
        reason: None,
        count: 1,
        waiting: 0,
        servers: vec![LeaseServer {
            name: "vm1".into(),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            state: "tunneling".into(),
            cert_serial: Some("51".into()),
        }],
        tunnel: Tunnel::Wireguard,
        role: None,
        image: Some(image.into()),
        gateway: None,
        created_ms: 0,
        starts_ms: 0,
        ends_ms: u64::MAX / 2,
        ended_ms: None,
        renewals: 0,
    }
}

/// The agent's WireGuard node, built from the registration answer.
fn agent_node(r: &PeerRegistered, key: PrivateKey) -> NodeHandle {
    let tun = Tun::create("wg0").unwrap();
    tun.set_ipv4(r.tunnel_address, r.tunnel_network.prefix())
        .unwrap();
    tun.set_mtu(1420).unwrap();
    tun.up().unwrap();
    for net in &r.routes {
        if *net != r.tunnel_network {
            tun.add_route(net.addr(), net.prefix()).unwrap();
        }
    }
    let gw = PublicKey::from_bytes(
        r.gateway_wg_public_key
            .expect("a WireGuard gateway sends its key")
            .0,
    );
    let node = Node::spawn(NodeConfig {
        private_key: key,
        listen: "0.0.0.0:0".parse().unwrap(),
        tun,
        peers: vec![PeerConfig {
            public_key: gw,
            endpoint: Some(r.gateway_wg_endpoint.as_deref().unwrap().parse().unwrap()),
            allowed_ips: r.routes.iter().map(|n| (n.addr(), n.prefix())).collect(),
            persistent_keepalive: Some(r.keepalive_secs),
        }],
    })
    .unwrap();
    node.wait_handshake(&gw, Duration::from_secs(10)).unwrap();
    node
}

async fn timed<T>(f: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(Duration::from_secs(3), f)
        .await
        .map_err(|_| "timed out".to_string())?
}

#[test]
fn an_agent_fetches_an_image_and_its_key_only_through_the_tunnel() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let gw_ns = Netns::create("pgw").unwrap();
    let ag_ns = Netns::create("pag").unwrap();
    netns::veth(&gw_ns, "dc0", &ag_ns, "dc0").unwrap();
    gw_ns.add_addr("dc0", DC.into(), 24).unwrap();
    ag_ns.add_addr("dc0", AGENT_DC.into(), 24).unwrap();

    // The tenant's state: a sealed image with a marker in its plaintext, the lease recorded.
    let dir = tempfile::tempdir().unwrap();
    let text = example("b.json", "state", DC, "10.64.0.0/24".parse().unwrap(), &[])
        .replace("# lm_poll_secs = 3", "lm_poll_secs = 1");
    let cfg = Config::parse(&text, &dir.path().join("organizer.toml")).unwrap();
    let marker = format!("PO-NETNS-MARKER-{:016x}", rand_bits());
    let mut kernel = vec![0u8; 3 << 20];
    for (i, b) in kernel.iter_mut().enumerate() {
        *b = (i % 253) as u8;
    }
    for at in [0, 1 << 20, (3 << 20) - 100] {
        kernel[at..at + marker.len()].copy_from_slice(marker.as_bytes());
    }
    std::fs::write(dir.path().join("vmlinuz"), &kernel).unwrap();
    std::fs::write(dir.path().join("initrd"), marker.as_bytes()).unwrap();
    let sealed = images::seal(
        &cfg.state_dir,
        &SealRequest {
            kernel: dir.path().join("vmlinuz"),
            initramfs: dir.path().join("initrd"),
            cmdline: "console=ttyS0".into(),
            extra: None,
            aead: sealed_image::Aead::Aes256Gcm,
            epoch: 1,
        },
        &mut |_, _| {},
    )
    .unwrap();
    RecordFile::new(&cfg.state_dir)
        .update(|r| {
            r.add(RequestedLease {
                id: LeaseId::from_random(0xaa),
                requested_ms: 0,
                count: 1,
                duration_s: 3600,
                tunnel: Tunnel::Wireguard,
                role: None,
                image: Some(sealed.id.clone()),
                released_ms: None,
            })
        })
        .unwrap();
    let ca = Authority::generate(SystemTime::now(), 1u64.into())
        .unwrap()
        .0;
    let lm = Arc::new(FakeLm::default());
    lm.put(view(LeaseState::Active, &sealed.id));
    *lm.crl.lock().unwrap() = Some(crl(&ca, &[]));

    // The gateway in its namespace, as `gateway run` starts it.
    let gw = common::RunningGateway::start(&gw_ns, &cfg, lm.clone(), ca.cert_pem());
    let gw_cert =
        CertificateDer::from_pem_file(cfg.state_dir.join("gateway/tls-cert.pem")).unwrap();
    let capture = Capture::start(&gw_ns, "dc0", 51820, marker.as_bytes()).unwrap();

    // The agent in its namespace.
    let a = agent(&ca, VM1, 0x51);
    let (ag_name, id, lm2, state) = (
        ag_ns.name().to_string(),
        sealed.id.clone(),
        lm.clone(),
        cfg.state_dir.clone(),
    );
    let plaintext = std::thread::spawn(move || {
        Netns::existing(&ag_name)
            .unwrap()
            .enter_current_thread()
            .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(agent_side(a, gw_cert, id, lm2, state))
    })
    .join()
    .unwrap();

    let report = capture.finish().unwrap();
    gw.stop();
    let mut want = kernel.clone();
    want.extend_from_slice(marker.as_bytes());
    assert!(
        plaintext == want,
        "the opened image is the sealed plaintext"
    );
    assert!(
        report.wg_frames[4] > 100,
        "data went through WireGuard: {report:?}"
    );
    assert_eq!(
        report.marker_frames, 0,
        "a plaintext marker crossed the data-centre segment"
    );
}

fn rand_bits() -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .unwrap();
    u64::from_le_bytes(b)
}

async fn agent_side(
    a: Agent,
    gw_cert: CertificateDer<'static>,
    image: String,
    lm: Arc<FakeLm>,
    state: std::path::PathBuf,
) -> Vec<u8> {
    let store = SocketAddr::from((GW_TUNNEL, 8080));
    let keys = SocketAddr::from((GW_TUNNEL, 7444));
    let manifest_path = format!("/v1/images/{image}.manifest");
    let chunks_path = format!("/v1/images/{image}.chunks");

    // Without the tunnel the store is unreachable from the data-centre segment.
    let direct = timed(call(store, None, None, "GET", &manifest_path, None, None)).await;
    assert!(
        direct.is_err(),
        "the image store answered without the tunnel"
    );
    // The registration service does not serve keys or images.
    let tls = Some((&gw_cert, &a));
    let dc = SocketAddr::from((DC, 7443));
    let (st, _, _) = timed(call(dc, None, tls, "GET", &chunks_path, None, None))
        .await
        .unwrap();
    assert_eq!(st, 400);

    // Register, then build the tunnel with the answer.
    let wg_key = PrivateKey::generate_os();
    let body = serde_json::to_vec(&RegisterPeer {
        wg_public_key: Some(WgPublicKey(*wg_key.public_key().as_bytes())),
        host_root: Some(po_api::HostRoot::Tpm),
    })
    .unwrap();
    let (st, _, body) = timed(call(dc, None, tls, "POST", "/v1/peers", Some(body), None))
        .await
        .unwrap();
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let reg: PeerRegistered = po_api::parse_body(&body).unwrap();
    assert_eq!(reg.gateway_tunnel_address, GW_TUNNEL);
    let node = agent_node(&reg, wg_key);

    // Manifest, chunks in two ranges (a resume), and the key, all through the tunnel.
    let (st, _, manifest) = timed(call(store, None, None, "GET", &manifest_path, None, None))
        .await
        .unwrap();
    assert_eq!(st, 200);
    let (st, _, first) = timed(call(
        store,
        None,
        None,
        "GET",
        &chunks_path,
        None,
        Some("bytes=0-1048591"),
    ))
    .await
    .unwrap();
    assert_eq!(st, 206);
    let (st, _, rest) = timed(call(
        store,
        None,
        None,
        "GET",
        &chunks_path,
        None,
        Some("bytes=1048592-"),
    ))
    .await
    .unwrap();
    assert_eq!(st, 206);
    let mut chunks = first.to_vec();
    chunks.extend_from_slice(&rest);
    let key_req = format!(r#"{{"image":"{image}","epoch":1}}"#).into_bytes();
    let (st, _, body) = timed(call(
        keys,
        None,
        tls,
        "POST",
        "/v1/keys",
        Some(key_req.clone()),
        None,
    ))
    .await
    .unwrap();
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let answer: KeyAnswer = po_api::parse_body(&body).unwrap();

    // Open and verify with the tenant's signing key from the registration answer.
    let id: po_api::ImageRef = image.parse().unwrap();
    let key = ImageKey::from_bytes(*answer.key.decode());
    let (_, opener) = Opener::from_signed(
        &manifest,
        &VerifyingKey(reg.image_signing_key.0),
        ImageId::from_bytes(id.0),
        KeyEpoch(1),
        &key,
    )
    .unwrap();
    let mut reader = OpenReader::new(opener, std::io::Cursor::new(chunks));
    let mut plaintext = Vec::new();
    reader.read_to_end(&mut plaintext).unwrap();
    reader.finish().unwrap();

    // Release: the key is refused at once, the watcher removes the peer, the store is cut off.
    lm.put(view(LeaseState::Releasing, &image));
    let (st, _, _) = timed(call(
        keys,
        None,
        tls,
        "POST",
        "/v1/keys",
        Some(key_req),
        None,
    ))
    .await
    .unwrap();
    assert_eq!(st, 403);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let cfg_peers = std::fs::read_to_string(state.join("gateway/peers.json")).unwrap();
        if !cfg_peers.contains("vm1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the peer was not removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = timed(call(store, None, None, "GET", &manifest_path, None, None)).await;
    assert!(
        after.is_err(),
        "the store answered a removed peer: {:?}",
        after.map(|r| r.0)
    );
    drop(node);
    plaintext
}
