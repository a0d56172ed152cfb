//! The LM's HTTP API `/v1`, one router for every caller. Served over mutual TLS (tenants,
//! operators and enrolled agents present LM-signed certificates; agents enroll with a token
//! before they have one) and over the local admin socket (the local operator). Each route
//! names the roles it admits in [`ROUTES`], which is also what the OpenAPI document
//! (`docs/api/openapi.json`) is checked against; the guard enforces it before any handler
//! runs: no certificate -> 401, wrong role -> 403, revoked certificate -> 401.

mod agent;
mod audit;
mod body;
mod leases;
mod principal;
mod servers;
mod stream;
mod tenants;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, post};

use crate::ca::Ca;
use crate::http_util::HttpError;
use crate::inventory::{Inventory, InventoryError};
use crate::ledger::leases::Limits;
use crate::power::PowerDriver;
use crate::wake::WakePolicy;

pub use body::JsonBody;
pub use principal::{LocalOperator, Principal};
pub use servers::WakeStarted;

/// Settings the API needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://host:port` as clients reach it (written into credential bundles).
    pub api_url: String,
    pub heartbeat_secs: u32,
    pub limits: Limits,
    /// Longest agent certificate, even for a longer lease.
    pub agent_cert_max_s: u64,
    /// Lifetime of tenant certificates unless the request says otherwise.
    pub tenant_cert_days: u32,
}

/// Everything the handlers use.
pub struct Api {
    pub inventory: Arc<Inventory>,
    pub power: Arc<dyn PowerDriver>,
    pub wake: WakePolicy,
    pub ca: Arc<Ca>,
    pub settings: Settings,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Anyone, even without a certificate (the CA certificate, the CRL, agent enrollment).
    Anyone,
    Tenant,
    Operator,
    /// An enrolled agent (certificate), or an agent before enrollment (no certificate): the
    /// handler checks the boot attempt and the lease.
    Agent,
}

/// One route of the API.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub who: &'static [Who],
}

const fn r(method: &'static str, path: &'static str, who: &'static [Who]) -> RouteSpec {
    RouteSpec { method, path, who }
}

use Who::{Agent, Anyone, Operator, Tenant};

/// Every route, with who may call it.
pub const ROUTES: &[RouteSpec] = &[
    r("GET", "/v1/whoami", &[Anyone]),
    r("GET", "/v1/ca", &[Anyone]),
    r("GET", "/v1/ca/crl", &[Anyone]),
    r("GET", "/v1/servers", &[Operator]),
    r("POST", "/v1/servers", &[Operator]),
    r("GET", "/v1/servers/{key}", &[Operator]),
    r("DELETE", "/v1/servers/{key}", &[Operator]),
    r("POST", "/v1/servers/{key}/wake", &[Operator]),
    r("POST", "/v1/servers/{key}/reset", &[Operator]),
    r("GET", "/v1/leases", &[Tenant, Operator]),
    r("POST", "/v1/leases", &[Tenant]),
    r("GET", "/v1/leases/{id}", &[Tenant, Operator]),
    r("POST", "/v1/leases/{id}/release", &[Tenant, Operator]),
    r("POST", "/v1/leases/{id}/renew", &[Tenant]),
    r("GET", "/v1/leases/{id}/events", &[Tenant, Operator]),
    r("GET", "/v1/tenants", &[Operator]),
    r("POST", "/v1/tenants", &[Operator]),
    r("GET", "/v1/tenants/{name}", &[Operator]),
    r("DELETE", "/v1/tenants/{name}", &[Operator]),
    r("GET", "/v1/operators", &[Operator]),
    r("POST", "/v1/operators", &[Operator]),
    r("DELETE", "/v1/operators/{name}", &[Operator]),
    r("GET", "/v1/events", &[Operator]),
    r("GET", "/v1/audit", &[Operator]),
    r("GET", "/v1/audit/verify", &[Operator]),
    r("POST", "/v1/agent/hello", &[Agent]),
    r("POST", "/v1/agent/enroll", &[Anyone]),
    r("POST", "/v1/agent/report", &[Agent]),
    r("POST", "/v1/agent/heartbeat", &[Agent]),
];

fn handler(spec: &RouteSpec) -> MethodRouter<Arc<Api>> {
    match (spec.method, spec.path) {
        ("GET", "/v1/whoami") => get(principal::whoami),
        ("GET", "/v1/ca") => get(audit::ca),
        ("GET", "/v1/ca/crl") => get(audit::crl),
        ("GET", "/v1/servers") => get(servers::list),
        ("POST", "/v1/servers") => post(servers::add),
        ("GET", "/v1/servers/{key}") => get(servers::show),
        ("DELETE", "/v1/servers/{key}") => delete(servers::remove),
        ("POST", "/v1/servers/{key}/wake") => post(servers::wake),
        ("POST", "/v1/servers/{key}/reset") => post(servers::reset),
        ("GET", "/v1/leases") => get(leases::list),
        ("POST", "/v1/leases") => post(leases::create),
        ("GET", "/v1/leases/{id}") => get(leases::show),
        ("POST", "/v1/leases/{id}/release") => post(leases::release),
        ("POST", "/v1/leases/{id}/renew") => post(leases::renew),
        ("GET", "/v1/leases/{id}/events") => get(stream::lease_events),
        ("GET", "/v1/tenants") => get(tenants::list),
        ("POST", "/v1/tenants") => post(tenants::add),
        ("GET", "/v1/tenants/{name}") => get(tenants::show),
        ("DELETE", "/v1/tenants/{name}") => delete(tenants::remove),
        ("GET", "/v1/operators") => get(tenants::list_operators),
        ("POST", "/v1/operators") => post(tenants::add_operator),
        ("DELETE", "/v1/operators/{name}") => delete(tenants::remove_operator),
        ("GET", "/v1/events") => get(stream::events),
        ("GET", "/v1/audit") => get(audit::list),
        ("GET", "/v1/audit/verify") => get(audit::verify),
        ("POST", "/v1/agent/hello") => post(agent::hello),
        ("POST", "/v1/agent/enroll") => post(agent::enroll),
        ("POST", "/v1/agent/report") => post(agent::report),
        ("POST", "/v1/agent/heartbeat") => post(agent::heartbeat),
        (m, p) => panic!("route {m} {p} in ROUTES has no handler"),
    }
}

/// The router of the whole API.
pub fn router(api: Arc<Api>) -> Router {
    let mut router = Router::new();
    for spec in ROUTES {
        let guard = middleware::from_fn_with_state((api.clone(), spec.who), guard);
        router = router.route(spec.path, handler(spec).route_layer(guard));
    }
    router
        .fallback(|req: Request| async move {
            HttpError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "no such endpoint: {} {} (the API is described in docs/api/openapi.json)",
                    req.method(),
                    req.uri().path()
                ),
            )
        })
        // Bodies are limited (with a 400 that says so) by `JsonBody`.
        .layer(DefaultBodyLimit::disable())
        .with_state(api)
}

/// Works out the caller and admits it or not, before any handler runs.
async fn guard(
    State((api, who)): State<(Arc<Api>, &'static [Who])>,
    mut req: Request,
    next: Next,
) -> Result<Response, HttpError> {
    let p = principal::resolve(&api, &req)?;
    let admitted = who.iter().any(|w| {
        matches!(
            (w, &p),
            (Who::Anyone, _)
                | (Who::Tenant, Principal::Tenant(_))
                | (Who::Operator, Principal::Operator(_))
                | (Who::Agent, Principal::Agent { .. } | Principal::Anonymous)
        )
    });
    if !admitted {
        return Err(match p {
            Principal::Anonymous => HttpError::new(
                StatusCode::UNAUTHORIZED,
                "this endpoint needs a client certificate of the Lease Manager CA (a tenant or operator credential bundle)",
            ),
            p => HttpError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "{} may not call {} {}",
                    p.actor(),
                    req.method(),
                    req.uri().path()
                ),
            ),
        });
    }
    req.extensions_mut().insert(p);
    Ok(next.run(req).await)
}

/// Maps an inventory error to its answer.
pub(crate) fn inv_err(e: InventoryError) -> HttpError {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(error = %e, "API request failed");
    }
    HttpError::new(status, e.to_string())
}

/// Runs blocking inventory work (store writes and flushes) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HttpError> + Send + 'static,
) -> Result<T, HttpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}
