//! Two-party tests: the agent's HTTPS client and hello/report exchange against a fake LM (a
//! rustls server on 127.0.0.1 in a thread) with certificates made by rcgen. Loopback IO only.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use agent_core::{LmHost, LmUrl};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::*;
use crate::https::SetupError;

pub(crate) struct Ca {
    pub(crate) params: CertificateParams,
    pub(crate) key: KeyPair,
    pub(crate) pem: String,
}

pub(crate) fn new_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem }
}

pub(crate) fn leaf(ca: &Ca, san: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let params = CertificateParams::new(vec![san.to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (cert.der().clone(), der)
}

/// A temp directory holding `ca.pem`, removed on drop.
pub(crate) struct CaFile(PathBuf);

impl CaFile {
    pub(crate) fn new(tag: &str, pem: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("agent-hello-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), pem).unwrap();
        Self(dir)
    }

    pub(crate) fn path(&self) -> String {
        self.0.join("ca.pem").to_string_lossy().into_owned()
    }
}

impl Drop for CaFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serves one TLS connection: reads one request, writes `answer`. Returns the port and a handle
/// yielding the request bytes (empty when the handshake failed).
fn fake_lm(
    cert: (CertificateDer<'static>, PrivateKeyDer<'static>),
    answer: String,
) -> (u16, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.0], cert.1)
        .unwrap();
    let handle = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let conn = ServerConnection::new(Arc::new(config)).unwrap();
        let mut tls = StreamOwned::new(conn, tcp);
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let Ok(n) = tls.read(&mut buf) else {
                return req;
            };
            if n == 0 {
                return req;
            }
            req.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&req).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if body.len() >= len {
                    break;
                }
            }
        }
        let _ = tls.write_all(answer.as_bytes());
        tls.conn.send_close_notify();
        let _ = tls.flush();
        req
    });
    (port, handle)
}

pub(crate) fn args(port: u16) -> AgentArgs {
    let line = format!(
        "lm.url=https://127.0.0.1:{port} lm.boot=00000000000000ff lm.mac=52:54:00:00:00:01"
    );
    AgentArgs::parse(line.as_bytes()).unwrap()
}

pub(crate) fn answer(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

pub(crate) const T: Timeouts = Timeouts {
    connect: Duration::from_secs(5),
    io: Duration::from_secs(5),
};

#[test]
fn hello_reaches_a_pinned_lm_and_reads_its_answer() {
    let ca = new_ca("test LM CA");
    let file = CaFile::new("ok", &ca.pem);
    let (port, server) = fake_lm(
        leaf(&ca, "127.0.0.1"),
        answer("200 OK", r#"{"server":"vm1","heartbeat_secs":7}"#),
    );
    let args = args(port);
    let lm = LmClient::new(args.lm_url.clone(), &file.path()).unwrap();
    let facts = HardwareFacts::default();
    let got = hello(&lm, &args, Ipv4Addr::new(10, 77, 0, 50), &facts, T).unwrap();
    assert_eq!((got.server.as_str(), got.heartbeat_secs), ("vm1", 7));
    let req = String::from_utf8(server.join().unwrap()).unwrap();
    let (head, body) = req.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("POST /v1/agent/hello HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains(&format!("Host: 127.0.0.1:{port}")));
    let sent: HelloRequest = serde_json::from_str(body).unwrap();
    assert_eq!(
        (sent.boot_id, sent.address),
        (args.boot_id, Ipv4Addr::new(10, 77, 0, 50))
    );
    assert_eq!(sent.agent_version, version());
}

#[test]
fn a_server_from_another_ca_is_refused() {
    let pinned = new_ca("pinned CA");
    let other = new_ca("impostor CA");
    let file = CaFile::new("other", &pinned.pem);
    let (port, server) = fake_lm(leaf(&other, "127.0.0.1"), answer("200 OK", "{}"));
    let args = args(port);
    let lm = LmClient::new(args.lm_url.clone(), &file.path()).unwrap();
    let f = hello(
        &lm,
        &args,
        Ipv4Addr::LOCALHOST,
        &HardwareFacts::default(),
        T,
    )
    .unwrap_err();
    let msg = format!("{:#}", f.error);
    assert!(
        msg.contains("UnknownIssuer") || msg.contains("unknown issuer"),
        "{msg}"
    );
    assert_eq!((f.outcome, f.lm_answered), (Outcome::Transient, false));
    assert!(
        server.join().unwrap().is_empty(),
        "no request may leave before the server is trusted"
    );
}

#[test]
fn a_certificate_for_another_address_is_refused() {
    let ca = new_ca("test LM CA");
    let file = CaFile::new("name", &ca.pem);
    let (port, server) = fake_lm(leaf(&ca, "10.77.0.1"), answer("200 OK", "{}"));
    let args = args(port);
    let lm = LmClient::new(args.lm_url.clone(), &file.path()).unwrap();
    let f = hello(
        &lm,
        &args,
        Ipv4Addr::LOCALHOST,
        &HardwareFacts::default(),
        T,
    )
    .unwrap_err();
    let msg = format!("{:#}", f.error);
    assert!(
        msg.contains("NotValidForName") || msg.contains("not valid for name"),
        "{msg}"
    );
    assert!(server.join().unwrap().is_empty());
}

#[test]
fn a_refusal_carries_the_servers_message() {
    let ca = new_ca("test LM CA");
    let file = CaFile::new("refused", &ca.pem);
    let body = r#"{"error":"server 52:54:00:00:00:01 is not booting: wake it first"}"#;
    let (port, server) = fake_lm(leaf(&ca, "127.0.0.1"), answer("409 Conflict", body));
    let args = args(port);
    let lm = LmClient::new(args.lm_url.clone(), &file.path()).unwrap();
    let f = report(&lm, &args, AgentPhase::Hello, false, "x", 2, T).unwrap_err();
    assert_eq!((f.outcome, f.lm_answered), (Outcome::Rejected, true));
    assert!(
        f.error
            .to_string()
            .contains("409: server 52:54:00:00:00:01 is not booting"),
        "{}",
        f.error
    );
    let req = String::from_utf8(server.join().unwrap()).unwrap();
    assert!(req.starts_with("POST /v1/agent/report HTTP/1.1\r\n"));
    assert!(
        req.contains(r#""phase":"hello","ok":false,"detail":"x","attempt":2"#),
        "{req}"
    );
}

#[test]
fn a_truncated_answer_is_a_transient_error() {
    let ca = new_ca("test LM CA");
    let file = CaFile::new("trunc", &ca.pem);
    let (port, server) = fake_lm(
        leaf(&ca, "127.0.0.1"),
        "HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{".into(),
    );
    let args = args(port);
    let lm = LmClient::new(args.lm_url.clone(), &file.path()).unwrap();
    let f = hello(
        &lm,
        &args,
        Ipv4Addr::LOCALHOST,
        &HardwareFacts::default(),
        T,
    )
    .unwrap_err();
    assert_eq!(f.outcome, Outcome::Transient);
    assert!(
        format!("{:#}", f.error).contains("after 1 of 50 body bytes"),
        "{:#}",
        f.error
    );
    server.join().unwrap();
}

#[test]
fn nothing_listening_is_a_transient_connect_error() {
    let ca = new_ca("test LM CA");
    let file = CaFile::new("closed", &ca.pem);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let lm = LmClient::new(
        LmUrl::new(LmHost::Ip(Ipv4Addr::LOCALHOST), port),
        &file.path(),
    )
    .unwrap();
    let f = hello(
        &lm,
        &args(port),
        Ipv4Addr::LOCALHOST,
        &HardwareFacts::default(),
        T,
    )
    .unwrap_err();
    assert_eq!((f.outcome, f.lm_answered), (Outcome::Transient, false));
    assert!(
        format!("{:#}", f.error).starts_with("connecting to 127.0.0.1:"),
        "{:#}",
        f.error
    );
}

#[test]
fn setup_errors_are_clear() {
    let missing = LmClient::new(
        LmUrl::new(LmHost::Ip(Ipv4Addr::LOCALHOST), 1),
        "/nonexistent/ca.pem",
    );
    assert!(matches!(missing, Err(SetupError::Missing { .. })));
}

#[test]
fn timeouts_shrink_with_the_deadline_but_never_to_zero() {
    let t = timeouts(None);
    assert_eq!(
        (t.connect, t.io),
        (Duration::from_secs(5), Duration::from_secs(15))
    );
    let t = timeouts(Some(Duration::from_secs(3)));
    assert_eq!(
        (t.connect, t.io),
        (Duration::from_secs(3), Duration::from_secs(3))
    );
    let t = timeouts(Some(Duration::ZERO));
    assert_eq!(
        (t.connect, t.io),
        (Duration::from_secs(1), Duration::from_secs(1))
    );
}

#[test]
fn version_names_the_crate_version() {
    assert!(version().starts_with(env!("CARGO_PKG_VERSION")));
    assert!(version().bytes().all(|b| b.is_ascii_graphic()));
}
