//! `/v1/leases`: tenants ask for, renew and release capacity; operators see and release all.
//! A tenant sees only its own leases: another tenant's lease is a 404, as if it did not exist.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use lm_api::{CreateLease, CreateLeaseResponse, LeaseId, LeaseView, RenewLease};

use super::{Api, JsonBody, Principal, blocking, inv_err};
use crate::http_util::HttpError;
use crate::inventory::InventoryError;
use crate::ledger::leases;

/// Parses a lease id from the path (400 naming it) and checks the caller may see it (404).
pub(super) fn visible_lease(api: &Api, p: &Principal, id: &str) -> Result<LeaseView, HttpError> {
    let id: LeaseId = id
        .parse()
        .map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, format!("lease id: {e}")))?;
    let not_found = || HttpError::new(StatusCode::NOT_FOUND, format!("no lease {id}"));
    let v = api.inventory.lease_view(id).ok_or_else(not_found)?;
    match p {
        Principal::Operator(_) => Ok(v),
        Principal::Tenant(t) if &v.tenant == t => Ok(v),
        _ => Err(not_found()),
    }
}

pub(super) async fn list(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
) -> Json<Vec<LeaseView>> {
    Json(api.inventory.leases(p.tenant()))
}

pub(super) async fn show(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<LeaseView>, HttpError> {
    visible_lease(&api, &p, &id).map(Json)
}

pub(super) async fn create(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<CreateLease>,
) -> Result<(StatusCode, Json<CreateLeaseResponse>), HttpError> {
    let Principal::Tenant(tenant) = p.clone() else {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "only tenants ask for leases",
        ));
    };
    let inv = api.inventory.clone();
    let limits = api.settings.limits;
    let grant = blocking(move || {
        inv.transact(&p.actor(), |w| {
            leases::create(w, &tenant, &req, limits).map_err(InventoryError::from)
        })
        .map_err(inv_err)
    })
    .await?;
    let lease = api
        .inventory
        .lease_view(grant.id)
        .ok_or_else(|| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "lease vanished"))?;
    let asked = grant.granted + grant.queued + grant.declined;
    let message = match (grant.queued, grant.declined) {
        (0, 0) => format!("granted all {asked} servers"),
        (q, 0) => format!(
            "granted {} of {asked} servers now; {q} queued until servers are free",
            grant.granted
        ),
        (_, d) => format!(
            "granted {} of {asked} servers (partial: {d} declined, not queued)",
            grant.granted
        ),
    };
    Ok((
        StatusCode::CREATED,
        Json(CreateLeaseResponse {
            lease,
            granted: grant.granted,
            queued: grant.queued,
            declined: grant.declined,
            message,
        }),
    ))
}

pub(super) async fn release(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<LeaseView>, HttpError> {
    let v = visible_lease(&api, &p, &id)?;
    let inv = api.inventory.clone();
    let actor = p.actor();
    blocking(move || {
        inv.transact(&actor, |w| {
            leases::release(w, v.id, &format!("released by {actor}"), false)
                .map_err(InventoryError::from)
        })
        .map_err(inv_err)
    })
    .await?;
    visible_lease(&api, &p, &id).map(Json)
}

pub(super) async fn renew(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<RenewLease>,
) -> Result<Json<LeaseView>, HttpError> {
    let v = visible_lease(&api, &p, &id)?;
    let inv = api.inventory.clone();
    let (actor, limits) = (p.actor(), api.settings.limits);
    blocking(move || {
        inv.transact(&actor, |w| {
            leases::renew(w, v.id, req.duration_s, limits).map_err(InventoryError::from)
        })
        .map_err(inv_err)
    })
    .await?;
    visible_lease(&api, &p, &id).map(Json)
}
