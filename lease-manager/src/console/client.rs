//! HTTP/1.1 over the LM's admin Unix socket (hyper client). IO.
//!
//! Three ways to read an answer: JSON ([`AdminClient::call`]), raw bytes
//! ([`AdminClient::bytes`], the CRL), and newline-delimited JSON as it streams
//! ([`AdminClient::stream`], events; the body may stay open for as long as the LM runs).
//! Any non-2xx answer becomes the LM's `{"error": ...}` message.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use super::ndjson::LineSplitter;

/// A client of one LM's admin socket.
#[derive(Debug, Clone)]
pub struct AdminClient {
    socket: PathBuf,
}

/// A streamed NDJSON answer, read line by line.
#[derive(Debug)]
pub struct LineStream {
    body: Incoming,
    lines: LineSplitter,
}

impl LineStream {
    /// The next non-empty line; `None` when the LM ended the stream.
    pub async fn next_line(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        loop {
            if let Some(l) = self.lines.next_line()? {
                return Ok(Some(l));
            }
            match self.body.frame().await {
                None => {
                    self.lines.finish()?;
                    return Ok(None);
                }
                Some(Err(e)) => {
                    return Err(anyhow!(e).context("the event stream from the Lease Manager broke"));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.lines.push(&data);
                    }
                }
            }
        }
    }
}

impl AdminClient {
    pub fn new(socket: &Path) -> Self {
        Self {
            socket: socket.to_path_buf(),
        }
    }

    /// Sends one request; returns the response of a 2xx answer, or the LM's error message.
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<hyper::Response<Incoming>> {
        let stream = UnixStream::connect(&self.socket).await.with_context(|| {
            format!(
                "cannot reach the Lease Manager at {} (is `lease-manager serve` running with this config?)",
                self.socket.display()
            )
        })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let has_body = body.is_some();
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "lease-manager");
        if has_body {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let resp = sender
            .send_request(req)
            .await
            .context("the Lease Manager closed the connection")?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.into_body().collect().await?.to_bytes();
            let msg = serde_json::from_slice::<lm_api::ApiError>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            bail!("{} (HTTP {})", super::text::esc(&msg), status.as_u16());
        }
        Ok(resp)
    }

    /// Sends one request; 2xx bodies are decoded as `T`, other statuses become the server's
    /// error message.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<T> {
        let bytes = self.bytes(method, path, body).await?;
        let body: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(body)
            .map_err(|e| anyhow!("unexpected answer from the Lease Manager: {e}"))
    }

    /// Sends one request and returns the whole 2xx body as it is.
    pub async fn bytes(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Bytes> {
        let resp = self.send(method, path, body).await?;
        Ok(resp.into_body().collect().await?.to_bytes())
    }

    /// `GET path` whose answer is NDJSON, read as it arrives.
    pub async fn stream(&self, path: &str) -> anyhow::Result<LineStream> {
        let resp = self.send("GET", path, None).await?;
        Ok(LineStream {
            body: resp.into_body(),
            lines: LineSplitter::default(),
        })
    }
}
