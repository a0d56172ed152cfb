//! Helpers shared by the organizer's integration tests: agent certificates issued by a test
//! CA as the LM issues them, CRLs, and a client of the gateway's services (optional TLS with
//! the gateway certificate as the only root and an agent certificate, optional source
//! address).
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use lm_pki::{Authority, Identity, RevokedCert, Serial};
use po_api::{ErrorBody, ErrorCode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpSocket;

pub mod world;

/// An agent's certificate and key, issued by `ca` for a CSR as the LM does.
pub struct Agent {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub serial: String,
}

pub fn agent(ca: &Authority, identity: &str, serial: u64) -> Agent {
    let key = lm_pki::generate_key().unwrap();
    let csr = lm_pki::verify_csr(lm_pki::make_csr(&key, "agent").unwrap().as_bytes()).unwrap();
    let id: Identity = identity.parse().unwrap();
    let now = SystemTime::now();
    let issued = ca
        .issue_for_csr(
            &csr,
            &id,
            now,
            now + Duration::from_secs(3600),
            Serial::from(serial),
        )
        .unwrap();
    Agent {
        chain: vec![issued.cert_der],
        key: lm_pki::private_key_der(&key),
        serial: issued.serial_hex,
    }
}

pub fn tenant_cert(ca: &Authority) -> Agent {
    let now = SystemTime::now();
    let id: Identity = "urn:lease-appliance:tenant:acme".parse().unwrap();
    let c = ca
        .issue_client(
            &id,
            now,
            now + Duration::from_secs(3600),
            Serial::from(0x77u64),
        )
        .unwrap();
    Agent {
        chain: vec![CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap()],
        key: PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
        serial: c.serial_hex,
    }
}

/// A client of one of the gateway's services: optional TLS (gateway certificate as the only
/// root, the agent's certificate), optional source address.
pub async fn call(
    addr: SocketAddr,
    from: Option<Ipv4Addr>,
    tls: Option<(&CertificateDer<'static>, &Agent)>,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
    range: Option<&str>,
) -> Result<(u16, hyper::HeaderMap, Bytes), String> {
    let sock = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    if let Some(ip) = from {
        sock.bind(SocketAddr::new(IpAddr::V4(ip), 0))
            .map_err(|e| e.to_string())?;
    }
    let tcp = sock.connect(addr).await.map_err(|e| e.to_string())?;
    let req = {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.ip().to_string());
        if let Some(r) = range {
            b = b.header("range", r);
        }
        b.body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?
    };
    macro_rules! send {
        ($io:expr) => {{
            let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new($io))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let resp = s.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, headers, body))
        }};
    }
    match tls {
        None => send!(tcp),
        Some((gw_cert, agent)) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(gw_cert.clone()).map_err(|e| e.to_string())?;
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let cfg = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_client_auth_cert(agent.chain.clone(), agent.key.clone_key())
                .map_err(|e| e.to_string())?;
            let name = ServerName::IpAddress(addr.ip().into());
            let s = tokio_rustls::TlsConnector::from(Arc::new(cfg))
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            send!(s)
        }
    }
}

/// Registers `agent` for an IPsec lease (`POST /v1/peers` without a WireGuard key) at the
/// gateway's registration service `register` with its certificate `gw_cert` as the only root,
/// from inside `ns`; the tunnel address the gateway gave (and loaded into charon before it
/// answered).
pub fn register_ipsec(
    ns: &lab::netns::Netns,
    register: SocketAddr,
    gw_cert: &CertificateDer<'static>,
    agent: &Agent,
) -> Ipv4Addr {
    let answer = ns
        .run(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(call(
                register,
                None,
                Some((gw_cert, agent)),
                "POST",
                po_api::paths::PEERS,
                Some(b"{}".to_vec()),
                None,
            ))
        })
        .expect("netns");
    let (status, _, body) = answer.expect("registration");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let reg: po_api::PeerRegistered = po_api::parse_body(&body).expect("registration answer");
    assert!(
        reg.gateway_wg_public_key.is_none() && reg.gateway_ike_endpoint.is_some(),
        "an IPsec answer: {reg:?}"
    );
    reg.tunnel_address
}

/// The gateway as `gateway run` starts it (`run::start`), on a thread inside `ns` with its own
/// runtime, for tenant `acme`; stopped (and charon with it, by PID) by [`RunningGateway::stop`].
pub struct RunningGateway {
    /// charon's PID when the gateway started it (IPsec mode).
    pub charon_pid: Option<u32>,
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl RunningGateway {
    pub fn start(
        ns: &lab::netns::Netns,
        cfg: &procurement_organizer::config::Config,
        lm: Arc<procurement_organizer::gateway::source::FakeLm>,
        ca_pem: &str,
    ) -> Self {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = std::sync::mpsc::channel::<()>();
        let (name, cfg, ca_pem) = (ns.name().to_string(), cfg.clone(), ca_pem.to_string());
        let thread = std::thread::spawn(move || {
            lab::netns::Netns::existing(&name)
                .unwrap()
                .enter_current_thread()
                .unwrap();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let started = procurement_organizer::gateway::run::start(
                    &cfg,
                    lm,
                    "acme".parse().unwrap(),
                    &ca_pem,
                )
                .await;
                let _ = ready_tx.send(
                    started
                        .as_ref()
                        .map(|s| s.charon_pid())
                        .map_err(|e| format!("{e:#}")),
                );
                if started.is_ok() {
                    let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
                }
                drop(started);
            });
        });
        let charon_pid = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the gateway thread answered")
            .unwrap_or_else(|e| panic!("the gateway did not start: {e}"));
        Self {
            charon_pid,
            stop,
            thread,
        }
    }

    /// Stops the gateway and waits for its thread.
    pub fn stop(self) {
        let _ = self.stop.send(());
        self.thread.join().unwrap();
    }
}

pub fn code(body: &[u8]) -> ErrorCode {
    serde_json::from_slice::<ErrorBody>(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
        .code
}

pub fn crl(ca: &Authority, revoked: &[&str]) -> Vec<u8> {
    let now = SystemTime::now();
    let list: Vec<RevokedCert> = revoked
        .iter()
        .map(|s| RevokedCert {
            serial: Serial::from_bytes(&hex::decode(s).unwrap()).unwrap(),
            revoked_at: now,
        })
        .collect();
    let number = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    ca.crl(&list, number, now, now + Duration::from_secs(3600))
        .unwrap()
}
