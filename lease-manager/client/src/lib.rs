//! An async client of the Lease Manager's `/v1` API for tenants' tools, the fleet simulator
//! and tests. HTTPS with the LM CA as the only trust anchor and, when given, a client
//! certificate (a credential bundle, or an agent's enrolled certificate); plain HTTP for the
//! boot service. One HTTP/1.1 connection, reused, re-opened after an error.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use lm_api::CredentialBundle;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url:?} is not a usable URL: {why}")]
    Url { url: String, why: &'static str },
    #[error("the CA certificate is not usable: {0}")]
    Ca(String),
    #[error("the client certificate or key is not usable: {0}")]
    Identity(String),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS with {addr}: {source}")]
    Tls {
        addr: String,
        source: std::io::Error,
    },
    #[error("HTTP with {addr}: {source}")]
    Http { addr: String, source: hyper::Error },
    #[error("{method} {path} timed out after {after:?}")]
    Timeout {
        method: String,
        path: String,
        after: Duration,
    },
    #[error("{method} {path}: {status} {message}")]
    Status {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error("{method} {path}: the answer is not the expected JSON: {source}")]
    Decode {
        method: String,
        path: String,
        source: serde_json::Error,
    },
}

impl ClientError {
    /// The HTTP status when the server answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether trying again later may help (the server was unreachable or overloaded).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Tls { .. } | Self::Http { .. } | Self::Timeout { .. } => {
                true
            }
            Self::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// A client of one LM (or of one plain-HTTP boot service).
pub struct Client {
    host: String,
    port: u16,
    /// A Unix socket instead of TCP (the LM's admin socket: the local operator).
    unix: Option<std::path::PathBuf>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    conn: Mutex<Option<SendRequest<Full<Bytes>>>>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

fn split_url(url: &str) -> Result<(bool, String, u16), ClientError> {
    let bad = |why| ClientError::Url {
        url: url.to_string(),
        why,
    };
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad("expected https:// or http://"));
    };
    let hostport = rest.split('/').next().unwrap_or("");
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| bad("bad port"))?),
        None => (hostport, if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok((tls, host.to_string(), port))
}

/// A client certificate and its key, PEM.
#[derive(Clone)]
pub struct ClientIdentity {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientIdentity(<redacted>)")
    }
}

impl Client {
    /// A client of `url` (`https://host:port` or `http://host:port`). For HTTPS, `ca_pem` is
    /// the only trust anchor and `identity` the optional client certificate.
    pub fn new(
        url: &str,
        ca_pem: Option<&str>,
        identity: Option<&ClientIdentity>,
    ) -> Result<Self, ClientError> {
        let (tls, host, port) = split_url(url)?;
        let tls = if tls {
            let ca_pem = ca_pem.ok_or_else(|| ClientError::Ca("HTTPS needs the LM CA".into()))?;
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
                let c = c.map_err(|e| ClientError::Ca(e.to_string()))?;
                roots.add(c).map_err(|e| ClientError::Ca(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ClientError::Ca("no certificate in the PEM".into()));
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let b = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| ClientError::Ca(e.to_string()))?
                .with_root_certificates(roots);
            let mut cfg = match identity {
                Some(id) => {
                    let chain = CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| ClientError::Identity(e.to_string()))?;
                    let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes())
                        .map_err(|e| ClientError::Identity(e.to_string()))?;
                    b.with_client_auth_cert(chain, key)
                        .map_err(|e| ClientError::Identity(e.to_string()))?
                }
                None => b.with_no_client_auth(),
            };
            cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
            let name = ServerName::try_from(host.clone()).map_err(|_| ClientError::Url {
                url: url.to_string(),
                why: "the host is not a valid server name",
            })?;
            Some((TlsConnector::from(Arc::new(cfg)), name))
        } else {
            None
        };
        Ok(Self {
            host,
            port,
            unix: None,
            tls,
            conn: Mutex::new(None),
            timeout: Duration::from_secs(30),
        })
    }

    /// A client of the LM's local admin socket (plain HTTP over a Unix socket; the socket's
    /// file mode decides who may use it).
    pub fn unix(path: impl Into<std::path::PathBuf>) -> Self {
        Self {
            host: "localhost".into(),
            port: 0,
            unix: Some(path.into()),
            tls: None,
            conn: Mutex::new(None),
            timeout: Duration::from_secs(30),
        }
    }

    /// A client for the holder of a credential bundle.
    pub fn from_bundle(b: &CredentialBundle) -> Result<Self, ClientError> {
        Self::new(
            &b.api_url,
            Some(&b.ca_pem),
            Some(&ClientIdentity {
                cert_pem: b.cert_pem.clone(),
                key_pem: b.key_pem.clone(),
            }),
        )
    }

    /// Sets the per-request time limit.
    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        if let Some(path) = &self.unix {
            let addr = path.display().to_string();
            let s = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|source| ClientError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                .await
                .map_err(|source| ClientError::Http { addr, source })?;
            tokio::spawn(conn);
            return Ok(send);
        }
        let addr = self.addr();
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let http = |source| ClientError::Http {
            addr: addr.clone(),
            source,
        };
        match &self.tls {
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|source| ClientError::Tls {
                        addr: addr.clone(),
                        source,
                    })?;
                let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(http)?;
                tokio::spawn(conn);
                Ok(send)
            }
            None => {
                let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(http)?;
                tokio::spawn(conn);
                Ok(send)
            }
        }
    }

    /// Closes the kept connection (if any): the next request opens a new one, with a new TLS
    /// handshake (resumed if this client's TLS session cache holds a ticket from the server),
    /// as a caller that connects per exchange does.
    pub async fn close(&self) {
        self.conn.lock().await.take();
    }

    /// One request; any status comes back as an [`Answer`].
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ClientError> {
        let fut = self.request_inner(method, path, body);
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| ClientError::Timeout {
                method: method.into(),
                path: path.into(),
                after: self.timeout,
            })?
    }

    async fn request_inner(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ClientError> {
        let mut guard = self.conn.lock().await;
        let mut send = match guard.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        send.ready().await.map_err(|source| ClientError::Http {
            addr: self.addr(),
            source,
        })?;
        let has_body = body.is_some();
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.host.as_str());
        if has_body {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|_| ClientError::Url {
                url: path.into(),
                why: "not a valid request path",
            })?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|source| ClientError::Http {
                addr: self.addr(),
                source,
            })?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|source| ClientError::Http {
                addr: self.addr(),
                source,
            })?
            .to_bytes();
        *guard = Some(send);
        Ok(Answer { status, body })
    }

    /// A request whose 2xx answer is JSON of type `T`; other statuses are errors carrying the
    /// server's message.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let a = self.request(method, path, body).await?;
        if !(200..300).contains(&a.status) {
            let message = serde_json::from_slice::<lm_api::ApiError>(&a.body)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&a.body).into_owned());
            return Err(ClientError::Status {
                method: method.into(),
                path: path.into(),
                status: a.status,
                message,
            });
        }
        let body: &[u8] = if a.body.is_empty() { b"null" } else { &a.body };
        serde_json::from_slice(body).map_err(|source| ClientError::Decode {
            method: method.into(),
            path: path.into(),
            source,
        })
    }

    /// `GET` returning JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call("GET", path, None).await
    }

    /// `POST` of JSON returning JSON.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).unwrap_or_default();
        self.call("POST", path, Some(body)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            split_url("https://10.77.0.1:8443").unwrap(),
            (true, "10.77.0.1".into(), 8443)
        );
        assert_eq!(
            split_url("http://lm/boot").unwrap(),
            (false, "lm".into(), 80)
        );
        for bad in ["ftp://x", "https://", "https://:1", "http://h:99999", "x"] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn https_needs_a_ca() {
        assert!(matches!(
            Client::new("https://h:1", None, None),
            Err(ClientError::Ca(_))
        ));
        assert!(matches!(
            Client::new("https://h:1", Some("not pem"), None),
            Err(ClientError::Ca(_))
        ));
    }
}
