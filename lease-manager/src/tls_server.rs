//! Serves an axum router over TLS (tokio-rustls), one task per connection so a slow
//! handshake never holds up the others. The rustls configuration lives here and nowhere else.
//!
//! Client authentication is offered, not required: tenants, operators and enrolled agents
//! present a certificate of the LM CA; agents enroll before they have one (their enrollment
//! token authenticates them). Each request carries a [`Caller`] extension saying which.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::ca::Leaf;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who sent a request, from the TLS connection it came on. Every request served by [`serve`]
/// has one in its extensions (`axum::Extension<Caller>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No client certificate (agents before enrollment; anything else must be refused).
    Anonymous,
    /// A client certificate that chains to the LM CA and names a caller.
    Cert(lm_pki::PeerCert),
}

/// Why the TLS server configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("the LM CA certificate is not usable as the client trust anchor: {0}")]
    ClientRoot(#[source] rustls::Error),
    #[error("cannot build the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("cannot build the TLS server configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A rustls server configuration for the LM's own certificate that offers client
/// authentication against `client_roots` (the LM CA) and also admits clients without one.
pub fn server_config(
    leaf: Leaf,
    client_roots: &CertificateDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
    let provider = Arc::new(provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(client_roots.clone())
        .map_err(TlsConfigError::ClientRoot)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(leaf.chain, leaf.key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.ignore_client_order = true;
    // Session resumption. Agents open a new connection per exchange (hello, enroll, each
    // heartbeat); with the ticket from the previous one the handshake skips the certificate
    // signature and both sides' chain verification (most of a full handshake's CPU, which
    // is what limits a fleet enrolling at once). Stateless tickets (AEAD under a key rotated
    // every 6 h, never written anywhere) hold for any number of agents, where the default
    // session cache keeps 256. A resumed connection carries the client certificate of its
    // first handshake: [`connection`] refuses it once expired, and revocation is checked per
    // request (`api::principal`), so resumption extends no certificate's life. One ticket
    // per handshake: a client resumes once before its next handshake brings a new one.
    cfg.ticketer = rustls::crypto::ring::Ticketer::new()?;
    cfg.send_tls13_tickets = 1;
    Ok(Arc::new(cfg))
}

/// ring's provider with TLS 1.3's AES-128-GCM/SHA-256 suite first (the server's choice, see
/// `ignore_client_order`): its handshake hashing runs on the CPU's SHA-256 instructions, where
/// the client's first choice (AES-256-GCM/SHA-384) hashes in software, which showed as a few
/// per cent of a handshake. Both are TLS 1.3 suites every client offers.
fn provider() -> rustls::crypto::CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    let first = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
    p.cipher_suites.retain(|s| s.suite() != first.suite());
    p.cipher_suites.insert(0, first);
    p
}

/// Accepts connections forever.
pub async fn serve(listener: TcpListener, config: Arc<rustls::ServerConfig>, router: Router) {
    let acceptor = TlsAcceptor::from(config);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move { connection(acceptor, router, tcp, peer).await });
    }
}

async fn connection(
    acceptor: TlsAcceptor,
    router: Router,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "TLS handshake refused");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake timed out");
            return;
        }
    };
    // rustls verified any certificate against the LM CA during the handshake; here it only
    // has to name a caller.
    let caller = match tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        None => Caller::Anonymous,
        Some(cert) => match lm_pki::peer_cert(cert) {
            // A full handshake checked the validity period; a resumed one did not.
            Ok(p) if expired(&p, std::time::SystemTime::now()) => {
                tracing::info!(%peer, serial = %p.serial_hex, "client certificate expired (resumed session); closing");
                return;
            }
            Ok(p) => Caller::Cert(p),
            Err(e) => {
                tracing::warn!(%peer, error = %e, "client certificate names no caller; closing");
                return;
            }
        },
    };
    let service =
        TowerToHyperService::new(router.into_service::<hyper::body::Incoming>().map_request(
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req.extensions_mut().insert(caller.clone());
                req
            },
        ));
    let builder = hyper::server::conn::http1::Builder::new();
    if let Err(e) = builder.serve_connection(TokioIo::new(tls), service).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// True once `p`'s validity period has ended at `now`.
fn expired(p: &lm_pki::PeerCert, now: std::time::SystemTime) -> bool {
    let now = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    p.not_after_unix < now
}

#[cfg(test)]
#[path = "tls_server_tests.rs"]
mod tests;
