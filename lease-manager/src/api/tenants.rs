//! `/v1/tenants` and `/v1/operators`: operators add tenants and other operators (the answer
//! is the new client's credential bundle, the only copy of its key), list them and remove
//! them (their certificate is revoked).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use lm_api::{AddTenant, CredentialBundle, Name, TenantView};
use lm_pki::{Identity, Serial};

use super::{Api, JsonBody, Principal, blocking, inv_err};
use crate::http_util::HttpError;
use crate::inventory::InventoryError;
use crate::ledger::{Ledger, TenantRecord};

/// Which kind of client a handler manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tenant,
    Operator,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Operator => "operator",
        }
    }

    fn identity(self, name: Name) -> Identity {
        match self {
            Self::Tenant => Identity::Tenant(name),
            Self::Operator => Identity::Operator(name),
        }
    }

    fn get(self, w: &crate::ledger::Work<'_>, name: &Name) -> Option<TenantRecord> {
        match self {
            Self::Tenant => w.tenant(name),
            Self::Operator => w.operator(name),
        }
    }

    fn put(self, w: &mut crate::ledger::Work<'_>, rec: TenantRecord) {
        match self {
            Self::Tenant => w.put_tenant(rec),
            Self::Operator => w.put_operator(rec),
        }
    }
}

fn view(l: &Ledger, t: &TenantRecord) -> TenantView {
    TenantView {
        name: t.name.clone(),
        created_ms: t.created_ms,
        cert_serial: t.cert_serial.clone(),
        cert_not_after_ms: t.cert_not_after_ms,
        removed: t.removed,
        open_leases: l
            .leases
            .values()
            .filter(|x| x.tenant == t.name && !x.state.is_final())
            .count() as u32,
    }
}

fn name(s: &str) -> Result<Name, HttpError> {
    s.parse()
        .map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, format!("tenant name: {e}")))
}

pub(super) async fn list(State(api): State<Arc<Api>>) -> Json<Vec<TenantView>> {
    Json(
        api.inventory
            .with_ledger(|l| l.tenants.values().map(|t| view(l, t)).collect()),
    )
}

pub(super) async fn show(
    State(api): State<Arc<Api>>,
    Path(n): Path<String>,
) -> Result<Json<TenantView>, HttpError> {
    let n = name(&n)?;
    api.inventory
        .with_ledger(|l| l.tenants.get(&n).map(|t| view(l, t)))
        .map(Json)
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, format!("no tenant {n}")))
}

pub(super) async fn add(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<AddTenant>,
) -> Result<(StatusCode, Json<CredentialBundle>), HttpError> {
    add_client(api, p, req, Kind::Tenant).await
}

pub(super) async fn add_operator(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<AddTenant>,
) -> Result<(StatusCode, Json<CredentialBundle>), HttpError> {
    add_client(api, p, req, Kind::Operator).await
}

async fn add_client(
    api: Arc<Api>,
    p: Principal,
    req: AddTenant,
    kind: Kind,
) -> Result<(StatusCode, Json<CredentialBundle>), HttpError> {
    let days = req.cert_days.unwrap_or(api.settings.tenant_cert_days);
    if days == 0 || days > 3650 {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "cert_days: must be 1 to 3650",
        ));
    }
    let api2 = api.clone();
    let bundle = blocking(move || {
        let identity = kind.identity(req.name.clone());
        api2.inventory
            .transact(&p.actor(), |w| {
                if kind.get(w, &req.name).is_some_and(|t| !t.removed) {
                    return Err(InventoryError::Duplicate {
                        what: if kind == Kind::Tenant {
                            "tenant name"
                        } else {
                            "operator name"
                        },
                        value: req.name.to_string(),
                        existing: format!("a {}", kind.word()),
                    });
                }
                let now = UNIX_EPOCH + Duration::from_millis(w.now_ms);
                let serial = Serial::from_bytes(&w.random().to_be_bytes())
                    .map_err(|e| InventoryError::Internal(e.to_string()))?;
                let cred = api2
                    .ca
                    .authority()
                    .issue_client(
                        &identity,
                        now,
                        now + Duration::from_secs(u64::from(days) * 86_400),
                        serial,
                    )
                    .map_err(|e| InventoryError::Internal(e.to_string()))?;
                let not_after_ms = cred
                    .not_after
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                w.audit(
                    if kind == Kind::Tenant {
                        "tenant.added"
                    } else {
                        "operator.added"
                    },
                    None,
                    None,
                    (kind == Kind::Tenant).then_some(&req.name),
                    format!(
                        "{} {}: client certificate {} valid {days} days",
                        kind.word(),
                        req.name,
                        cred.serial_hex
                    ),
                );
                kind.put(
                    w,
                    TenantRecord {
                        name: req.name.clone(),
                        created_ms: w.now_ms,
                        cert_serial: cred.serial_hex.clone(),
                        cert_not_after_ms: not_after_ms,
                        removed: false,
                    },
                );
                Ok(CredentialBundle {
                    api_url: api2.settings.api_url.clone(),
                    identity: identity.uri(),
                    ca_pem: api2.ca.cert_pem().to_string(),
                    cert_pem: cred.cert_pem,
                    key_pem: cred.key_pem,
                })
            })
            .map_err(inv_err)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(bundle)))
}

pub(super) async fn remove(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    Path(n): Path<String>,
) -> Result<Json<TenantView>, HttpError> {
    remove_client(api, p, &n, Kind::Tenant).await
}

pub(super) async fn list_operators(State(api): State<Arc<Api>>) -> Json<Vec<TenantView>> {
    Json(
        api.inventory
            .with_ledger(|l| l.operators.values().map(|t| view(l, t)).collect()),
    )
}

/// Removes an operator's certificate access (the local admin socket is not affected).
pub(super) async fn remove_operator(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    Path(n): Path<String>,
) -> Result<Json<TenantView>, HttpError> {
    remove_client(api, p, &n, Kind::Operator).await
}

/// Marks the client removed and revokes its certificate; a tenant with open leases is refused.
async fn remove_client(
    api: Arc<Api>,
    p: Principal,
    n: &str,
    kind: Kind,
) -> Result<Json<TenantView>, HttpError> {
    let n = name(n)?;
    let inv = api.inventory.clone();
    let n2 = n.clone();
    blocking(move || {
        inv.transact(&p.actor(), |w| {
            let mut t = kind
                .get(w, &n2)
                .filter(|t| !t.removed)
                .ok_or_else(|| InventoryError::NotFound(format!("{} {n2}", kind.word())))?;
            if kind == Kind::Tenant {
                let open = w
                    .lease_ids()
                    .into_iter()
                    .filter_map(|id| w.lease_ref(id).map(|l| (l.tenant == n2, l.state)))
                    .filter(|(mine, state)| *mine && !state.is_final())
                    .count();
                if open > 0 {
                    return Err(InventoryError::Invalid {
                        field: "tenant",
                        reason: format!("{n2} has {open} open leases; release them first"),
                    });
                }
            }
            t.removed = true;
            let serial = t.cert_serial.clone();
            w.revoke(&serial, &format!("{} removed", kind.word()));
            w.audit(
                if kind == Kind::Tenant {
                    "tenant.removed"
                } else {
                    "operator.removed"
                },
                None,
                None,
                (kind == Kind::Tenant).then_some(&n2),
                format!("{} {n2}: client certificate {serial} revoked", kind.word()),
            );
            kind.put(w, t);
            Ok(())
        })
        .map_err(inv_err)
    })
    .await?;
    api.inventory
        .with_ledger(|l| {
            let map = match kind {
                Kind::Tenant => &l.tenants,
                Kind::Operator => &l.operators,
            };
            map.get(&n).map(|t| view(l, t))
        })
        .map(Json)
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, format!("no {} {n}", kind.word())))
}
