//! The agent-facing HTTPS API (`/v1/agent/*`). The agent pins the LM CA; the LM checks that
//! the hello names a server it is booting and the current boot attempt.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use lm_api::{AgentReport, EventKind, HelloRequest, HelloResponse, paths};

use crate::fsm::Input;
use crate::http_util::{HttpError, MAX_BODY, json_body};
use crate::inventory::{Inventory, InventoryError};

/// State of the agent API.
#[derive(Debug, Clone)]
pub struct AgentApi {
    pub inventory: Arc<Inventory>,
    pub heartbeat_secs: u32,
}

/// The router.
pub fn router(api: AgentApi) -> Router {
    Router::new()
        .route(paths::AGENT_HELLO, post(hello))
        .route(paths::AGENT_REPORT, post(report))
        .fallback(|| async { HttpError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

fn inventory_error(e: InventoryError) -> HttpError {
    let status = match &e {
        InventoryError::NotFound(_) => StatusCode::NOT_FOUND,
        InventoryError::Refused { .. } => StatusCode::CONFLICT,
        InventoryError::Invalid { .. } | InventoryError::Duplicate { .. } => {
            StatusCode::BAD_REQUEST
        }
        InventoryError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    HttpError::new(status, e.to_string())
}

async fn hello(State(api): State<AgentApi>, body: Bytes) -> Result<Json<HelloResponse>, HttpError> {
    let req: HelloRequest = json_body("hello", &body)?;
    let inv = api.inventory.clone();
    let mac = req.boot_mac;
    let name = tokio::task::spawn_blocking(move || -> Result<String, InventoryError> {
        let rec = inv
            .get(mac)
            .ok_or_else(|| InventoryError::NotFound(mac.to_string()))?;
        inv.apply(
            mac,
            &Input::Hello {
                boot_id: req.boot_id,
            },
        )?;
        inv.set_facts(mac, req.facts)?;
        inv.record(
            mac,
            EventKind::AgentHello {
                address: req.address,
                agent_version: req.agent_version,
                uptime_ms: req.uptime_ms,
            },
        );
        inv.flush()?;
        Ok(rec.name)
    })
    .await
    .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| {
        tracing::warn!(mac = %mac, error = %e, "agent hello refused");
        inventory_error(e)
    })?;
    tracing::info!(server = %name, mac = %mac, "agent hello");
    Ok(Json(HelloResponse {
        server: name,
        heartbeat_secs: api.heartbeat_secs,
    }))
}

async fn report(State(api): State<AgentApi>, body: Bytes) -> Result<StatusCode, HttpError> {
    let rep: AgentReport = json_body("report", &body)?;
    if rep.detail.len() > 4096 {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "report.detail is longer than 4096 bytes",
        ));
    }
    let Some(rec) = api.inventory.get(rep.boot_mac) else {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("{} is not in the inventory", rep.boot_mac),
        ));
    };
    if rec.state.boot_id() != Some(rep.boot_id) {
        return Err(HttpError::new(
            StatusCode::CONFLICT,
            format!(
                "boot id {} is not the current boot attempt of {}",
                rep.boot_id, rec.name
            ),
        ));
    }
    // Heartbeats are not timeline material; everything else is.
    if !(rep.ok && rep.phase == lm_api::AgentPhase::Ready) {
        let inv = api.inventory.clone();
        tokio::task::spawn_blocking(move || {
            inv.record(
                rep.boot_mac,
                EventKind::AgentReport {
                    phase: rep.phase,
                    ok: rep.ok,
                    detail: rep.detail,
                    attempt: rep.attempt,
                },
            )
        })
        .await
        .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    }
    Ok(StatusCode::NO_CONTENT)
}
