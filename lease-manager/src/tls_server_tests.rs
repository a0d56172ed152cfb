//! The HTTPS listener against rustls clients on loopback: who the handler sees as the caller.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::routing::get;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::ca::Ca;

async fn whoami(Extension(caller): Extension<Caller>) -> String {
    match caller {
        Caller::Anonymous => "anonymous".into(),
        Caller::Cert(p) => format!("{} {}", p.identity.uri(), p.serial_hex),
    }
}

/// Starts the listener with a fresh CA; returns its address and the CA.
async fn start(dir: &std::path::Path) -> (SocketAddr, Ca) {
    let (ca, _) = Ca::load_or_create(dir, SystemTime::now(), 1).unwrap();
    let leaf = ca
        .issue_server(&["127.0.0.1".into()], SystemTime::now(), 2)
        .unwrap();
    let config = server_config(leaf, ca.cert_der()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route("/whoami", get(whoami));
    tokio::spawn(serve(listener, config, router));
    (addr, ca)
}

/// A client certificate (chain, key) for `uri` from `ca`.
fn client_cert(ca: &Ca, uri: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let now = SystemTime::now();
    let cred = ca
        .authority()
        .issue_client(
            &uri.parse().unwrap(),
            now,
            now + Duration::from_secs(3600),
            0xabcdu64.into(),
        )
        .unwrap();
    let cert = CertificateDer::from_pem_slice(cred.cert_pem.as_bytes()).unwrap();
    let key = PrivateKeyDer::from_pem_slice(cred.key_pem.as_bytes()).unwrap();
    (vec![cert], key)
}

/// A client configuration that pins `ca`, with an optional client certificate.
fn client_config(
    ca: &Ca,
    cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match cert {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    })
}

/// GET /whoami on a new connection with `config`. Returns the response and whether the
/// handshake was full or resumed, or the error that ended the exchange.
async fn exchange(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<(String, Option<rustls::HandshakeKind>)> {
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    let kind = tls.get_ref().1.handshake_kind();
    assert_eq!(
        tls.get_ref().1.negotiated_cipher_suite().map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
        "the server's first choice"
    );
    tls.write_all(b"GET /whoami HTTP/1.1\r\nHost: lm\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = String::new();
    tls.read_to_string(&mut out).await?;
    Ok((out, kind))
}

/// GET /whoami as a client that pins `ca`, with an optional client certificate.
async fn get_whoami(
    addr: SocketAddr,
    ca: &Ca,
    cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> std::io::Result<String> {
    Ok(exchange(addr, client_config(ca, cert)).await?.0)
}

/// An agent connects per exchange: its second connection resumes the first one's session
/// (no certificate signature or chain check) and is still told apart by its certificate.
#[tokio::test]
async fn a_new_connection_resumes_and_keeps_its_caller() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, ca) = start(dir.path()).await;
    for cert in [
        Some(client_cert(&ca, "urn:lease-appliance:tenant:acme")),
        None,
    ] {
        let expect = if cert.is_some() {
            "urn:lease-appliance:tenant:acme abcd"
        } else {
            "anonymous"
        };
        let config = client_config(&ca, cert);
        let mut kinds = Vec::new();
        for _ in 0..3 {
            let (out, kind) = exchange(addr, config.clone()).await.unwrap();
            assert!(out.starts_with("HTTP/1.1 200"), "{out}");
            assert!(out.ends_with(expect), "{out}");
            kinds.push(kind.unwrap());
        }
        use rustls::HandshakeKind::{Full, Resumed};
        assert_eq!(kinds, [Full, Resumed, Resumed], "{expect}");
    }
}

#[test]
fn a_certificate_is_expired_after_its_not_after_second() {
    let p = lm_pki::PeerCert {
        identity: "urn:lease-appliance:tenant:acme".parse().unwrap(),
        serial_hex: "1".into(),
        not_after_unix: 1_000,
    };
    let at = |s| std::time::UNIX_EPOCH + Duration::from_secs(s);
    assert!(!expired(&p, at(999)));
    assert!(!expired(&p, at(1_000)));
    assert!(expired(&p, at(1_001)));
    assert!(!expired(&p, std::time::UNIX_EPOCH - Duration::from_secs(5)));
}

#[tokio::test]
async fn callers_are_told_apart_by_their_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, ca) = start(dir.path()).await;

    let tenant = client_cert(&ca, "urn:lease-appliance:tenant:acme");
    let out = get_whoami(addr, &ca, Some(tenant)).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.ends_with("urn:lease-appliance:tenant:acme abcd"),
        "{out}"
    );

    let out = get_whoami(addr, &ca, None).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("anonymous"), "{out}");

    // A certificate of another CA: the handshake fails (with TLS 1.3 the client learns it
    // from the server's alert on its first read), and the handler is never reached.
    let other_dir = tempfile::tempdir().unwrap();
    let (other, _) = Ca::load_or_create(other_dir.path(), SystemTime::now(), 1).unwrap();
    let stranger = client_cert(&other, "urn:lease-appliance:tenant:acme");
    match get_whoami(addr, &ca, Some(stranger)).await {
        Err(_) => {}
        Ok(out) => assert!(!out.contains("HTTP/1.1 200"), "{out}"),
    }
}
