//! Serves an axum router over mutual TLS (tokio-rustls), one task per connection: the
//! gateway's certificate, client certificates required and verified against the LM CA during
//! the handshake. Each request carries an [`AgentConn`] (the caller named by its certificate
//! and the TCP peer address). Same pattern as the LM's `tls_server`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The caller of a request on a mutual-TLS listener.
#[derive(Debug, Clone)]
pub struct AgentConn {
    pub cert: lm_pki::PeerCert,
    pub peer: SocketAddr,
}

/// The rustls server configuration: `cert`/`key` (the gateway's), clients verified by
/// `verifier` (required).
pub fn server_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    verifier: Arc<dyn ClientCertVerifier>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Accepts connections forever.
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: Router,
    what: &'static str,
) {
    let acceptor = TlsAcceptor::from(config);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(service = what, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move { connection(acceptor, router, tcp, peer, what).await });
    }
}

async fn connection(
    acceptor: TlsAcceptor,
    router: Router,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    what: &'static str,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            // A foreign CA, an expired certificate or none at all end here.
            tracing::warn!(service = what, %peer, error = %e, reason = "tls-refused", "refused");
            return;
        }
        Err(_) => {
            tracing::info!(service = what, %peer, "TLS handshake timed out");
            return;
        }
    };
    let Some(der) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
        tracing::warn!(service = what, %peer, "no client certificate; closing");
        return;
    };
    let cert = match lm_pki::peer_cert(der) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(service = what, %peer, error = %e, reason = "no-identity", "refused");
            return;
        }
    };
    let conn = AgentConn { cert, peer };
    let service =
        TowerToHyperService::new(router.into_service::<hyper::body::Incoming>().map_request(
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(conn.clone());
                req
            },
        ));
    let builder = hyper::server::conn::http1::Builder::new();
    if let Err(e) = builder.serve_connection(TokioIo::new(tls), service).await {
        tracing::debug!(service = what, %peer, error = %e, "connection ended with an error");
    }
}
