//! The gateway's HTTP surfaces: the registration router (`POST /v1/peers`), the key router
//! (`POST /v1/keys`), both behind [`super::tls::serve`], and the image store router
//! (`GET`/`HEAD /v1/images/<id>.manifest|.chunks`, plain HTTP on the private side, Range
//! requests for resume).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Extension, Json, Router};
use po_api::{ErrorBody, ErrorCode, KeyRequest, MAX_BODY, RegisterPeer, parse_body, paths};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::range;
use super::service::{Denial, Gateway};
use super::tls::AgentConn;

fn error(code: ErrorCode, message: String) -> Response {
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        Json(ErrorBody {
            code,
            error: message,
        }),
    )
        .into_response()
}

fn denial(d: Denial) -> Response {
    error(d.code, d.message)
}

/// Reads a request body of at most [`MAX_BODY`] bytes.
async fn body(b: Body) -> Result<bytes::Bytes, Response> {
    axum::body::to_bytes(b, MAX_BODY).await.map_err(|_| {
        error(
            ErrorCode::BadRequest,
            format!("the request body is larger than {MAX_BODY} bytes (or was cut off)"),
        )
    })
}

/// The registration service's router.
pub fn register_router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route(paths::PEERS, post(register))
        .fallback(not_found)
        .with_state(gw)
}

/// The key service's router.
pub fn key_router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route(paths::KEYS, post(key))
        .fallback(not_found)
        .with_state(gw)
}

async fn not_found(uri: Uri) -> Response {
    error(
        ErrorCode::BadRequest,
        format!("no such endpoint: {}", uri.path()),
    )
}

async fn register(
    State(gw): State<Arc<Gateway>>,
    Extension(conn): Extension<AgentConn>,
    b: Body,
) -> Response {
    let bytes = match body(b).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req: RegisterPeer = match parse_body(&bytes) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(request = "register", peer = %conn.peer, reason = "bad-request", detail = %e, "refused");
            return error(ErrorCode::BadRequest, e.message);
        }
    };
    match gw.register(&conn.cert, &req).await {
        Ok(a) => Json(a).into_response(),
        Err(d) => denial(d),
    }
}

async fn key(
    State(gw): State<Arc<Gateway>>,
    Extension(conn): Extension<AgentConn>,
    b: Body,
) -> Response {
    let bytes = match body(b).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req: KeyRequest = match parse_body(&bytes) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(request = "key", peer = %conn.peer, reason = "bad-request", detail = %e, "refused");
            return error(ErrorCode::BadRequest, e.message);
        }
    };
    match gw.key(&conn.cert, &req, conn.peer.ip()).await {
        Ok(a) => key_response(&a),
        Err(d) => denial(d),
    }
}

/// The key answer as a response whose body buffer is zeroized when hyper drops it (the
/// answer itself zeroizes its key on drop).
fn key_response(a: &po_api::KeyAnswer) -> Response {
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(160));
    if let Err(e) = serde_json::to_writer(&mut *buf, a) {
        return error(ErrorCode::Internal, e.to_string());
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(bytes::Bytes::from_owner(buf)))
        .unwrap_or_else(|e| error(ErrorCode::Internal, e.to_string()))
}

/// The image store's state: the folder and the gateway (for the peer check).
#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
    pub gw: Arc<Gateway>,
}

/// The image store's router (serve with `ConnectInfo<SocketAddr>`).
pub fn store_router(store: Store) -> Router {
    Router::new().fallback(any(image)).with_state(store)
}

fn plain(status: StatusCode, msg: String) -> Response {
    (status, msg).into_response()
}

async fn image(
    State(store): State<Store>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n".into());
    }
    if uri.query().is_some() {
        return plain(StatusCode::NOT_FOUND, "no such image file\n".into());
    }
    let Some((id, file)) = po_api::parse_image_path(uri.path()) else {
        return plain(StatusCode::NOT_FOUND, "no such image file\n".into());
    };
    // Only a registered peer whose lease names this image may fetch it.
    if let Err(why) = store.gw.may_fetch(peer.ip(), &id).await {
        tracing::warn!(request = "image", %peer, image = %id, reason = "not-allowed", detail = %why, "refused");
        return plain(StatusCode::FORBIDDEN, format!("{why}\n"));
    }
    let path = store.dir.join(format!("{id}.{}", file.suffix()));
    let mut f = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => return plain(StatusCode::NOT_FOUND, "no such image file\n".into()),
    };
    let len = match f.metadata().await {
        Ok(m) => m.len(),
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    };
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let r = range::reply(range_header, len);
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    let mut resp = Response::builder()
        .status(status)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, r.len);
    if let Some(cr) = &r.content_range {
        resp = resp.header(header::CONTENT_RANGE, cr);
    }
    tracing::info!(request = "image", %peer, image = %id, file = file.suffix(), status = r.status, offset = r.offset, len = r.len, "served");
    let body = if method == Method::HEAD || r.len == 0 {
        Body::empty()
    } else {
        if let Err(e) = f.seek(std::io::SeekFrom::Start(r.offset)).await {
            return plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"));
        }
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
            f.take(r.len),
            256 * 1024,
        ))
    };
    resp.body(body)
        .unwrap_or_else(|e| plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")))
}
