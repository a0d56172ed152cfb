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

/// GET /whoami as a client that pins `ca`, with an optional client certificate. Returns the
/// response, or the error that ended the exchange.
async fn get_whoami(
    addr: SocketAddr,
    ca: &Ca,
    cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> std::io::Result<String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match cert {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(b"GET /whoami HTTP/1.1\r\nHost: lm\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = String::new();
    tls.read_to_string(&mut out).await?;
    Ok(out)
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
