//! The plain-HTTP listener iPXE fetches from: every request goes to
//! [`pxe::http_boot::BootHttp::respond`], and file slices are streamed from disk here.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, Method, Response, StatusCode, header};
use std::pin::Pin;
use std::task::{Context, Poll};

use pxe::http_boot::{BootBody, BootHttp, BootReply, PendingFetch};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, ReadBuf};

/// The router (every path goes to the boot service).
pub fn router(boot: Arc<BootHttp>) -> Router {
    Router::new().fallback(move |req: Request| {
        let boot = boot.clone();
        async move { handle(boot, req).await }
    })
}

async fn handle(boot: Arc<BootHttp>, req: Request) -> Response<Body> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let head = req.method() == Method::HEAD;
    // A script request may mint an enrollment token (a store write and flush): off the
    // async workers.
    let (method, path) = (
        req.method().as_str().to_owned(),
        req.uri().path().to_owned(),
    );
    let reply =
        match tokio::task::spawn_blocking(move || boot.respond(&method, &path, range.as_deref()))
            .await
        {
            Ok(r) => r,
            Err(_) => {
                return Response::builder()
                    .status(StatusCode::INTERNAL_SERVER_ERROR)
                    .body(Body::empty())
                    .unwrap_or_default();
            }
        };
    tracing::debug!(peer = ?peer, path = %req.uri().path(), status = reply.status, "http boot");
    into_response(reply, head).await
}

async fn into_response(reply: BootReply, head: bool) -> Response<Body> {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (k, v) in &reply.headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            b = b.header(*k, v);
        }
    }
    b = b.header(header::CONTENT_TYPE, reply.content_type);
    let body = if head {
        Body::empty()
    } else {
        match reply.body {
            BootBody::Bytes(v) => {
                if let Some(p) = reply.pending {
                    p.finish(v.len() as u64);
                }
                Body::from(v)
            }
            BootBody::File { path, offset, len } => match tokio::fs::File::open(&path).await {
                Ok(mut f) => {
                    if let Err(e) = f.seek(std::io::SeekFrom::Start(offset)).await {
                        tracing::error!(path = %path.display(), error = %e, "seek failed");
                        return error_response();
                    }
                    let reader = CountingReader {
                        inner: f.take(len),
                        sent: 0,
                        pending: reply.pending,
                    };
                    Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
                        reader,
                        256 * 1024,
                    ))
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot open boot file");
                    return error_response();
                }
            },
        }
    };
    b.body(body).unwrap_or_else(|_| error_response())
}

fn error_response() -> Response<Body> {
    let mut r = Response::new(Body::from("boot file unavailable\n"));
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}

/// Counts the bytes that went out and hands the count to the boot service's timeline event
/// when the body is done (or the client went away).
struct CountingReader<R> {
    inner: R,
    sent: u64,
    pending: Option<PendingFetch>,
}

impl<R: AsyncRead + Unpin> AsyncRead for CountingReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.sent += (buf.filled().len() - before) as u64;
        r
    }
}

impl<R> Drop for CountingReader<R> {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            p.finish(self.sent);
        }
    }
}
