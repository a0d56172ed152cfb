//! The operator's local admin API, served on a Unix socket in the state directory (mode 0600:
//! whoever can open it is an operator). The console talks to it; operator access over mutual
//! TLS comes with the tenant/operator roles.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use lm_api::{AddServer, BootId, ServerView, paths};
use serde::{Deserialize, Serialize};

use crate::fsm::Input;
use crate::http_util::{HttpError, MAX_BODY, json_body};
use crate::inventory::{Inventory, InventoryError};
use crate::power::PowerDriver;
use crate::wake::{self, WakePolicy};

/// Draws fresh random 64-bit values (boot ids); an argument so tests can seed it.
pub type IdSource = Arc<dyn Fn() -> u64 + Send + Sync>;

/// State of the admin API.
#[derive(Clone)]
pub struct AdminApi {
    pub inventory: Arc<Inventory>,
    pub power: Arc<dyn PowerDriver>,
    pub wake: WakePolicy,
    pub ids: IdSource,
}

impl std::fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminApi")
            .field("wake", &self.wake)
            .finish_non_exhaustive()
    }
}

/// Answer of a wake.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WakeStarted {
    pub server: String,
    pub boot_id: BootId,
}

/// The router.
pub fn router(api: AdminApi) -> Router {
    Router::new()
        .route(paths::SERVERS, get(list).post(add))
        .route("/v1/servers/{key}", get(show).delete(remove))
        .route("/v1/servers/{key}/wake", post(wake_server))
        .route("/v1/servers/{key}/reset", post(reset))
        .fallback(|| async { HttpError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

fn err(e: InventoryError) -> HttpError {
    let status = match &e {
        InventoryError::NotFound(_) => StatusCode::NOT_FOUND,
        InventoryError::Refused { .. } | InventoryError::Duplicate { .. } => StatusCode::CONFLICT,
        InventoryError::Invalid { .. } => StatusCode::BAD_REQUEST,
        InventoryError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    HttpError::new(status, e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, InventoryError> + Send + 'static,
) -> Result<T, HttpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(err)
}

async fn list(State(api): State<AdminApi>) -> Json<Vec<ServerView>> {
    Json(api.inventory.list())
}

async fn add(
    State(api): State<AdminApi>,
    body: Bytes,
) -> Result<(StatusCode, Json<ServerView>), HttpError> {
    let req: AddServer = json_body("server", &body)?;
    let inv = api.inventory.clone();
    let v = blocking(move || inv.add(req)).await?;
    tracing::info!(server = %v.name, mac = %v.mac, "server added");
    Ok((StatusCode::CREATED, Json(v)))
}

async fn show(
    State(api): State<AdminApi>,
    Path(key): Path<String>,
) -> Result<Json<ServerView>, HttpError> {
    let inv = api.inventory.clone();
    Ok(Json(blocking(move || inv.show(&key)).await?))
}

async fn remove(
    State(api): State<AdminApi>,
    Path(key): Path<String>,
) -> Result<StatusCode, HttpError> {
    let inv = api.inventory.clone();
    let rec = blocking(move || inv.remove(&key)).await?;
    tracing::info!(server = %rec.name, mac = %rec.mac, "server removed");
    Ok(StatusCode::NO_CONTENT)
}

async fn wake_server(
    State(api): State<AdminApi>,
    Path(key): Path<String>,
) -> Result<Json<WakeStarted>, HttpError> {
    let boot_id = BootId::from_random((api.ids)());
    let inv = api.inventory.clone();
    let (power, policy, k) = (api.power.clone(), api.wake.clone(), key.clone());
    let handle = tokio::runtime::Handle::current();
    let server = blocking(move || {
        let _guard = handle.enter();
        wake::start(&inv, &power, &policy, &k, boot_id)?;
        Ok(inv.find(&k)?.name)
    })
    .await?;
    Ok(Json(WakeStarted { server, boot_id }))
}

async fn reset(
    State(api): State<AdminApi>,
    Path(key): Path<String>,
) -> Result<Json<ServerView>, HttpError> {
    let inv = api.inventory.clone();
    Ok(Json(
        blocking(move || {
            let rec = inv.find(&key)?;
            inv.apply(rec.mac, &Input::Reset)?;
            inv.show(&key)
        })
        .await?,
    ))
}
