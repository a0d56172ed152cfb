//! `/v1/servers`: the inventory (operators).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use lm_api::{AddServer, BootId, ServerView};
use serde::{Deserialize, Serialize};

use super::{Api, JsonBody, Principal, blocking, inv_err};
use crate::fsm::Input;
use crate::http_util::HttpError;
use crate::wake;

/// Answer to a wake.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WakeStarted {
    pub server: String,
    pub boot_id: BootId,
}

pub(super) async fn list(State(api): State<Arc<Api>>) -> Json<Vec<ServerView>> {
    Json(api.inventory.list())
}

pub(super) async fn add(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<AddServer>,
) -> Result<(StatusCode, Json<ServerView>), HttpError> {
    let inv = api.inventory.clone();
    let v = blocking(move || inv.add(&p.actor(), req).map_err(inv_err)).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

pub(super) async fn show(
    State(api): State<Arc<Api>>,
    Path(key): Path<String>,
) -> Result<Json<ServerView>, HttpError> {
    let inv = api.inventory.clone();
    Ok(Json(
        blocking(move || inv.show(&key).map_err(inv_err)).await?,
    ))
}

pub(super) async fn remove(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<StatusCode, HttpError> {
    let inv = api.inventory.clone();
    blocking(move || inv.remove(&p.actor(), &key).map_err(inv_err)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A maintenance boot (no lease): the agent comes up, reports its facts and waits.
pub(super) async fn wake(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Json<WakeStarted>, HttpError> {
    let boot_id = BootId::from_random(rand::random());
    let handle = tokio::runtime::Handle::current();
    let api2 = api.clone();
    let server = blocking(move || {
        let _guard = handle.enter();
        wake::start(
            &api2.inventory,
            &api2.power,
            &api2.wake,
            &p.actor(),
            &key,
            boot_id,
        )
        .map_err(inv_err)?;
        Ok(api2.inventory.find(&key).map_err(inv_err)?.name)
    })
    .await?;
    Ok(Json(WakeStarted { server, boot_id }))
}

pub(super) async fn reset(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Json<ServerView>, HttpError> {
    let inv = api.inventory.clone();
    Ok(Json(
        blocking(move || {
            let rec = inv.find(&key).map_err(inv_err)?;
            inv.apply_as(&p.actor(), rec.mac, &Input::Reset)
                .map_err(inv_err)?;
            inv.show(&key).map_err(inv_err)
        })
        .await?,
    ))
}
