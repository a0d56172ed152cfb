//! A tiny HTTPS client: one request, one response, over rustls with the LM CA pinned.
//! Without a client certificate until the agent enrolls; from then on with the agent
//! certificate and its key (mutual TLS), see [`LmClient::with_identity`].
//!
//! Does IO (reads the CA file, TCP, TLS). The only trust anchor is the certificate(s) in
//! [`CA_PATH`] inside the initramfs; nothing from the network or the system store is trusted.
//! The request and response bytes are built and parsed by [`agent_core::http`].

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use agent_core::http::{self, HttpError, MAX_BODY, MAX_HEAD, Response};
use agent_core::{LmHost, LmUrl};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::sys;

/// The pinned LM CA inside the initramfs.
pub const CA_PATH: &str = "/etc/lease-manager/ca.pem";

/// Timeouts of one exchange.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// Per read/write, and for the whole exchange after connecting.
    pub io: Duration,
}

/// Why the TLS client could not be set up (never retried: the file is in the initramfs).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "the pinned LM CA {path} is missing from the initramfs; rebuild it with the LM's CA certificate"
    )]
    Missing { path: String },
    #[error("the pinned LM CA {path} cannot be read as PEM certificates: {detail}")]
    BadPem { path: String, detail: String },
    #[error("the pinned LM CA {path} holds no usable certificate: {detail}")]
    NoRoots { path: String, detail: String },
    #[error("the agent certificate from the lease manager is not usable: {detail}")]
    BadClientCert { detail: String },
    #[error("building the TLS client configuration failed")]
    Config(#[from] rustls::Error),
}

/// Why one exchange failed (all worth retrying, except what the caller decides from the status).
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("resolving {host}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("connecting to {addr}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS/IO with {addr}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the answer from {addr} is not acceptable HTTP")]
    Http { addr: SocketAddr, source: HttpError },
    #[error("no complete answer from {addr} within {secs} s")]
    Timeout { addr: SocketAddr, secs: u64 },
}

/// The agent certificate and its key, once enrolled: one copy, shared by the TLS
/// configurations of the LM client and of the tenant gateway's client, dropped at the wipe.
#[derive(Clone)]
pub struct ClientIdentity(Arc<CertifiedKey>);

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientIdentity(<agent certificate and key>)")
    }
}

impl ClientIdentity {
    /// `cert_pem` (one PEM certificate, the agent certificate) with `key`; rustls checks that
    /// the key matches the certificate. The key lives inside the returned value only.
    pub fn new(cert_pem: &str, key: PrivateKeyDer<'static>) -> Result<Self, SetupError> {
        let bad = |detail: String| SetupError::BadClientCert { detail };
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if chain.len() != 1 {
            return Err(bad(format!("{} certificates instead of one", chain.len())));
        }
        let signer =
            rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| bad(e.to_string()))?;
        let certified = CertifiedKey::new(chain, signer);
        certified.keys_match().map_err(|e| bad(e.to_string()))?;
        Ok(Self(Arc::new(certified)))
    }

    /// A client-certificate resolver that always presents this identity.
    pub fn resolver(&self) -> Arc<dyn ResolvesClientCert> {
        Arc::new(OneIdentity(self.0.clone()))
    }
}

#[derive(Debug)]
struct OneIdentity(Arc<CertifiedKey>);

impl ResolvesClientCert for OneIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The LM endpoint with its pinned TLS configuration, and the client certificate once enrolled.
#[derive(Debug, Clone)]
pub struct LmClient {
    config: Arc<ClientConfig>,
    roots: Arc<RootCertStore>,
    url: LmUrl,
    client_cert: bool,
}

fn builder(
    roots: Arc<RootCertStore>,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, SetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots))
}

/// Loads the pinned CA from `path` (see [`CA_PATH`]).
pub fn load_roots(path: &str) -> Result<RootCertStore, SetupError> {
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            SetupError::Missing { path: path.into() }
        }
        other => SetupError::BadPem {
            path: path.into(),
            detail: other.to_string(),
        },
    })?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SetupError::BadPem {
            path: path.into(),
            detail: e.to_string(),
        })?;
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(SetupError::NoRoots {
            path: path.into(),
            detail: format!("{ignored} certificate(s) could not be parsed, none found otherwise"),
        });
    }
    Ok(roots)
}

impl LmClient {
    /// A client for `url` trusting only the certificates in `ca_path`.
    pub fn new(url: LmUrl, ca_path: &str) -> Result<Self, SetupError> {
        let roots = Arc::new(load_roots(ca_path)?);
        let config = builder(roots.clone())?.with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
            roots,
            url,
            client_cert: false,
        })
    }

    /// The same endpoint and pinned CA, presenting the agent certificate in every handshake.
    pub fn with_identity(&self, identity: &ClientIdentity) -> Result<Self, SetupError> {
        let config = builder(self.roots.clone())?.with_client_cert_resolver(identity.resolver());
        Ok(Self {
            config: Arc::new(config),
            roots: self.roots.clone(),
            url: self.url.clone(),
            client_cert: true,
        })
    }

    /// True when the handshakes present the agent certificate.
    pub fn has_client_cert(&self) -> bool {
        self.client_cert
    }

    /// The LM's URL.
    pub fn url(&self) -> &LmUrl {
        &self.url
    }

    fn server_name(&self) -> Result<ServerName<'static>, ExchangeError> {
        match self.url.host() {
            LmHost::Ip(ip) => Ok(ServerName::IpAddress((*ip).into())),
            LmHost::Name(n) => {
                ServerName::try_from(n.clone()).map_err(|e| ExchangeError::Resolve {
                    host: n.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
                })
            }
        }
    }

    fn resolve(&self) -> Result<SocketAddr, ExchangeError> {
        let host = self.url.host_str();
        let resolve_err = |source| ExchangeError::Resolve {
            host: host.clone(),
            source,
        };
        let mut addrs = (host.as_str(), self.url.port())
            .to_socket_addrs()
            .map_err(resolve_err)?;
        addrs.find(SocketAddr::is_ipv4).ok_or_else(|| {
            resolve_err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no IPv4 address",
            ))
        })
    }

    /// Sends `request` (complete HTTP bytes) and reads one response.
    pub fn exchange(&self, request: &[u8], t: Timeouts) -> Result<Response, ExchangeError> {
        let name = self.server_name()?;
        let addr = self.resolve()?;
        exchange_tls(&self.config, name, addr, None, request, t)
    }
}

/// Connects to `addr` (from inside `device` when given: the socket is bound to it, so the
/// exchange cannot take any other path), speaks TLS with `config` for `name`, sends `request`
/// (complete HTTP bytes) and reads one response of at most [`MAX_BODY`] bytes.
pub fn exchange_tls(
    config: &Arc<ClientConfig>,
    name: ServerName<'static>,
    addr: SocketAddr,
    device: Option<&str>,
    request: &[u8],
    t: Timeouts,
) -> Result<Response, ExchangeError> {
    let io_err = |source| ExchangeError::Io { addr, source };
    let tcp = connect(addr, device, t)?;
    let conn = ClientConnection::new(config.clone(), name)
        .map_err(|e| io_err(std::io::Error::other(e)))?;
    let mut tls = StreamOwned::new(conn, tcp);
    tls.write_all(request).map_err(io_err)?;
    tls.flush().map_err(io_err)?;

    let until = sys::now() + t.io;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let eof = match tls.read(&mut chunk) {
            Ok(0) => true,
            Ok(n) => {
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                false
            }
            // A peer that closes without close_notify after a complete response is common.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => true,
            Err(e) => return Err(io_err(e)),
        };
        if buf.len() > MAX_HEAD + MAX_BODY {
            let source = HttpError::BodyTooLarge { len: buf.len() };
            return Err(ExchangeError::Http { addr, source });
        }
        match http::parse_response(&buf, eof) {
            Ok(Some(resp)) => return Ok(resp),
            Ok(None) if sys::now() < until => {}
            Ok(None) => {
                return Err(ExchangeError::Timeout {
                    addr,
                    secs: t.io.as_secs(),
                });
            }
            Err(source) => return Err(ExchangeError::Http { addr, source }),
        }
    }
}

/// A TCP connection to `addr` with the timeouts set, bound to `device` when given
/// (SO_BINDTODEVICE before connect: with the tunnel down there is no path at all).
pub fn connect(
    addr: SocketAddr,
    device: Option<&str>,
    t: Timeouts,
) -> Result<TcpStream, ExchangeError> {
    let io_err = |source| ExchangeError::Io { addr, source };
    let tcp = match device {
        None => TcpStream::connect_timeout(&addr, t.connect),
        Some(dev) => crate::sys::tcp_connect_on_device(addr, dev, t.connect),
    }
    .map_err(|source| ExchangeError::Connect { addr, source })?;
    tcp.set_read_timeout(Some(t.io)).map_err(io_err)?;
    tcp.set_write_timeout(Some(t.io)).map_err(io_err)?;
    tcp.set_nodelay(true).map_err(io_err)?;
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_is_named_with_what_to_do() {
        let err = load_roots("/nonexistent/ca.pem").unwrap_err();
        assert!(matches!(err, SetupError::Missing { .. }));
        assert!(
            err.to_string().contains("/nonexistent/ca.pem is missing"),
            "{err}"
        );
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("agent-https-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = load_roots(path.to_str().unwrap()).unwrap_err();
        assert!(matches!(err, SetupError::NoRoots { .. }), "{err}");
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = load_roots(path.to_str().unwrap()).unwrap_err();
        assert!(
            matches!(err, SetupError::NoRoots { .. } | SetupError::BadPem { .. }),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
