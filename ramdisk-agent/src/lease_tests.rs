//! Two-party tests of enrollment, heartbeats and the wipe: the agent's client against a fake
//! LM (rustls on 127.0.0.1 in a thread) that signs the agent's CSR with a test CA and records,
//! per connection, the request and the client certificate it saw. Loopback IO only.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;

use lm_api::{AgentReport, EnrollRequest, Heartbeat};
use rcgen::{CertificateParams, CertificateSigningRequestParams, Issuer, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

use super::*;
use crate::hello::tests::{CaFile, T, answer, leaf, new_ca};

const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const LEASE: &str = "l-00000000000000aa";

/// One request as the fake LM saw it.
#[derive(Debug)]
struct Seen {
    path: String,
    body: String,
    client_cert: Option<CertificateDer<'static>>,
}

type Reply = Box<dyn FnOnce(&Seen) -> String + Send>;

/// Serves one TLS connection per reply, in order; client certificates of `ca` are verified
/// when offered, not required (like the LM's listener).
fn fake_lm(ca: &crate::hello::tests::Ca, replies: Vec<Reply>) -> (u16, JoinHandle<Vec<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .unwrap();
    let (cert, key) = leaf(ca, "127.0.0.1");
    let config = Arc::new(
        ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert], key)
            .unwrap(),
    );
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for reply in replies {
            let (tcp, _) = listener.accept().unwrap();
            let conn = ServerConnection::new(config.clone()).unwrap();
            let mut tls = StreamOwned::new(conn, tcp);
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            let (head, body) = loop {
                let n = tls.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    panic!("connection closed before a whole request");
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
                        break (head.to_string(), body.to_string());
                    }
                }
            };
            let s = Seen {
                path: head.split(' ').nth(1).unwrap_or_default().to_string(),
                body,
                client_cert: tls
                    .conn
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.clone().into_owned()),
            };
            let _ = tls.write_all(reply(&s).as_bytes());
            tls.conn.send_close_notify();
            let _ = tls.flush();
            seen.push(s);
        }
        seen
    });
    (port, handle)
}

fn leased_args(port: u16) -> AgentArgs {
    let line = format!(
        "lm.url=https://127.0.0.1:{port} lm.boot=00000000000000ff lm.mac=52:54:00:00:00:01 \
         lm.lease={LEASE} lm.token={TOKEN}"
    );
    AgentArgs::parse(line.as_bytes()).unwrap()
}

/// The LM's side of an enrollment: signs the CSR with the test CA.
fn sign_csr(ca_params: &rcgen::CertificateParams, ca_key: &rcgen::KeyPair, s: &Seen) -> String {
    let req: EnrollRequest = serde_json::from_str(&s.body).unwrap();
    let csr = CertificateSigningRequestParams::from_pem(&req.csr_pem).unwrap();
    let issuer = Issuer::from_params(ca_params, ca_key);
    let cert = csr.signed_by(&issuer).unwrap();
    let body = serde_json::json!({
        "server": "vm1",
        "lease": LEASE,
        "cert_pem": cert.pem(),
        "serial": "1f2e3d",
        "not_after_ms": 1_700_000_000_000u64,
        "tunnel": "wireguard",
        "heartbeat_secs": 1,
    });
    answer("200 OK", &body.to_string())
}

fn split(args: &mut AgentArgs) -> Enrollment {
    args.enrollment.take().unwrap()
}

#[test]
fn enroll_heartbeat_release_and_wipe_with_the_agent_certificate() {
    let ca = new_ca("test LM CA");
    let file = CaFile::new("lease-ok", &ca.pem);
    let (ca_params, ca_key) = (
        ca.params.clone(),
        KeyPair::from_pem(&ca.key.serialize_pem()).unwrap(),
    );
    let hb = |action: &'static str| -> Reply {
        Box::new(move |_: &Seen| {
            answer(
                "200 OK",
                &format!(r#"{{"action":"{action}","lease_ends_ms":1700000000000}}"#),
            )
        })
    };
    let replies: Vec<Reply> = vec![
        Box::new(move |s: &Seen| sign_csr(&ca_params, &ca_key, s)),
        hb("continue"),
        hb("release"),
        Box::new(|_: &Seen| answer("204 No Content", "")),
    ];
    let (port, server) = fake_lm(&ca, replies);
    let mut args = leased_args(port);
    let mut enrollment = split(&mut args);
    let lm = LmClient::new(args.lm_url.clone(), &file.path()).unwrap();
    let mut key = None;
    assert!(!lm.has_client_cert());

    let super::Enrolled {
        lm: mtls, answer, ..
    } = enroll(&lm, &args, &mut enrollment, &mut key, T).unwrap();
    assert!(mtls.has_client_cert());
    assert_eq!(
        (
            answer.server.as_str(),
            answer.serial.as_str(),
            answer.heartbeat_secs
        ),
        ("vm1", "1f2e3d", 1)
    );
    assert!(
        answer.cert_pem.is_empty(),
        "the certificate lives in the client only"
    );
    assert!(enrollment.token.is_wiped(), "a spent token is zeroed");
    assert!(key.is_none(), "the key now lives in the client only");

    heartbeat_until_release(&mtls, &args, Duration::from_secs(1));
    let reason = wipe(mtls, &args, Some(enrollment));
    assert_eq!(
        reason,
        format!("lease {LEASE} released: wiped and reported")
    );

    let seen = server.join().unwrap();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v1/agent/enroll",
            "/v1/agent/heartbeat",
            "/v1/agent/heartbeat",
            "/v1/agent/report"
        ]
    );
    // Enrollment: no client certificate, the token and a P-256 CSR.
    assert!(seen[0].client_cert.is_none());
    let req: EnrollRequest = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(
        (req.token.as_str(), req.lease.to_string().as_str()),
        (TOKEN, LEASE)
    );
    assert!(lm_pki::verify_csr(req.csr_pem.as_bytes()).is_ok());
    // Everything after it: the agent certificate, for the key of that CSR.
    let cert = seen[1]
        .client_cert
        .clone()
        .expect("heartbeat with the agent certificate");
    for s in &seen[1..] {
        assert_eq!(s.client_cert.as_ref(), Some(&cert), "{}", s.path);
    }
    let hb: Heartbeat = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!((hb.boot_id, hb.boot_mac), (args.boot_id, args.boot_mac));
    let report: AgentReport = serde_json::from_str(&seen[3].body).unwrap();
    assert_eq!(
        (report.phase, report.ok, report.detail.as_str()),
        (AgentPhase::Wipe, true, "wiped")
    );
}

#[test]
fn an_enrollment_refused_with_403_is_fatal_and_spends_the_token() {
    let ca = new_ca("test LM CA");
    let file = CaFile::new("lease-403", &ca.pem);
    let replies: Vec<Reply> = vec![Box::new(|_: &Seen| {
        answer(
            "403 Forbidden",
            r#"{"error":"enrollment refused: the enrollment token expired"}"#,
        )
    })];
    let (port, server) = fake_lm(&ca, replies);
    let mut args = leased_args(port);
    let mut enrollment = split(&mut args);
    let lm = LmClient::new(args.lm_url.clone(), &file.path()).unwrap();
    let mut key = None;
    let f = enroll(&lm, &args, &mut enrollment, &mut key, T).unwrap_err();
    assert_eq!((f.outcome, f.lm_answered), (Outcome::Fatal, true));
    assert!(
        f.error
            .to_string()
            .contains("403: enrollment refused: the enrollment token expired"),
        "{}",
        f.error
    );
    assert!(enrollment.token.is_wiped());
    // A second try is refused locally: the token is gone.
    let again = enroll(&lm, &args, &mut enrollment, &mut key, T).unwrap_err();
    assert_eq!(again.outcome, Outcome::Fatal);
    assert_eq!(server.join().unwrap().len(), 1);
}

#[test]
fn a_server_error_keeps_the_token_for_the_retry() {
    let ca = new_ca("test LM CA");
    let file = CaFile::new("lease-503", &ca.pem);
    let replies: Vec<Reply> = vec![Box::new(|_: &Seen| answer("503 Service Unavailable", ""))];
    let (port, server) = fake_lm(&ca, replies);
    let mut args = leased_args(port);
    let mut enrollment = split(&mut args);
    let lm = LmClient::new(args.lm_url.clone(), &file.path()).unwrap();
    let mut key = None;
    let f = enroll(&lm, &args, &mut enrollment, &mut key, T).unwrap_err();
    assert_eq!(f.outcome, Outcome::Transient);
    assert!(!enrollment.token.is_wiped());
    assert_eq!(enrollment.token.expose(), TOKEN);
    assert!(key.is_some(), "the key is kept for the retry");
    server.join().unwrap();
}

#[test]
fn a_retry_after_a_lost_answer_sends_the_same_key_and_token() {
    let ca = new_ca("test LM CA");
    let file = CaFile::new("lease-replay", &ca.pem);
    let (ca_params, ca_key) = (
        ca.params.clone(),
        KeyPair::from_pem(&ca.key.serialize_pem()).unwrap(),
    );
    let replies: Vec<Reply> = vec![
        Box::new(|_: &Seen| "HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{".into()),
        Box::new(move |s: &Seen| sign_csr(&ca_params, &ca_key, s)),
    ];
    let (port, server) = fake_lm(&ca, replies);
    let mut args = leased_args(port);
    let mut enrollment = split(&mut args);
    let lm = LmClient::new(args.lm_url.clone(), &file.path()).unwrap();
    let mut key = None;
    let f = enroll(&lm, &args, &mut enrollment, &mut key, T).unwrap_err();
    assert_eq!((f.outcome, f.lm_answered), (Outcome::Transient, false));
    assert!(!enrollment.token.is_wiped() && key.is_some());
    let mtls = enroll(&lm, &args, &mut enrollment, &mut key, T).unwrap().lm;
    assert!(mtls.has_client_cert() && enrollment.token.is_wiped());
    let seen = server.join().unwrap();
    let reqs: Vec<EnrollRequest> = seen
        .iter()
        .map(|s| serde_json::from_str(&s.body).unwrap())
        .collect();
    assert_eq!(reqs[0], reqs[1], "same token, same CSR");
}

#[test]
fn a_certificate_for_another_key_is_fatal() {
    let ca = new_ca("test LM CA");
    let file = CaFile::new("lease-otherkey", &ca.pem);
    let other_pem = CertificateParams::new(vec!["agent".to_string()])
        .unwrap()
        .signed_by(
            &KeyPair::generate().unwrap(),
            &Issuer::from_params(&ca.params, &ca.key),
        )
        .unwrap()
        .pem();
    let replies: Vec<Reply> = vec![Box::new(move |_: &Seen| {
        let body = serde_json::json!({
            "server": "vm1", "lease": LEASE, "cert_pem": other_pem, "serial": "01",
            "not_after_ms": 1u64, "tunnel": "wireguard", "heartbeat_secs": 5,
        });
        answer("200 OK", &body.to_string())
    })];
    let (port, server) = fake_lm(&ca, replies);
    let mut args = leased_args(port);
    let mut enrollment = split(&mut args);
    let lm = LmClient::new(args.lm_url.clone(), &file.path()).unwrap();
    let mut key = None;
    let f = enroll(&lm, &args, &mut enrollment, &mut key, T).unwrap_err();
    assert_eq!(f.outcome, Outcome::Fatal);
    assert!(
        format!("{:#}", f.error).contains("not usable"),
        "{:#}",
        f.error
    );
    server.join().unwrap();
}

#[test]
fn a_maintenance_boot_wipes_without_a_certificate() {
    let ca = new_ca("test LM CA");
    let file = CaFile::new("lease-maint", &ca.pem);
    let replies: Vec<Reply> = vec![Box::new(|_: &Seen| answer("204 No Content", ""))];
    let (port, server) = fake_lm(&ca, replies);
    let args = crate::hello::tests::args(port);
    let lm = LmClient::new(args.lm_url.clone(), &file.path()).unwrap();
    assert_eq!(wipe(lm, &args, None), "released by the lease manager");
    let seen = server.join().unwrap();
    assert!(seen[0].client_cert.is_none());
}
