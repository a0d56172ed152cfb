//! `/v1/audit` (operators: the hash-chained log, paged, and its verification) and `/v1/ca`
//! (anyone: the CA certificate and the CRL).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use lm_api::{AuditEntry, AuditVerification};
use lm_pki::{RevokedCert, Serial};
use serde::Deserialize;

use super::{Api, blocking, inv_err};
use crate::http_util::HttpError;

/// Paging of `GET /v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Page {
    #[serde(default)]
    from: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

/// Most entries in one page.
pub const MAX_PAGE: usize = 5000;

pub(super) async fn list(
    State(api): State<Arc<Api>>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<AuditEntry>>, HttpError> {
    let limit = page.limit.unwrap_or(1000).min(MAX_PAGE);
    let from = page.from.unwrap_or(1);
    let inv = api.inventory.clone();
    blocking(move || {
        inv.store()
            .audit(from, limit)
            .map(Json)
            .map_err(|e| inv_err(e.into()))
    })
    .await
}

pub(super) async fn verify(
    State(api): State<Arc<Api>>,
) -> Result<Json<AuditVerification>, HttpError> {
    let inv = api.inventory.clone();
    blocking(move || {
        let mut all = Vec::new();
        let mut from = 1;
        loop {
            let page = inv
                .store()
                .audit(from, MAX_PAGE)
                .map_err(|e| inv_err(e.into()))?;
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            all.extend(page);
        }
        Ok(Json(crate::audit::verify(&all)))
    })
    .await
}

/// The CA certificate (PEM) and what it signs.
pub(super) async fn ca(State(api): State<Arc<Api>>) -> Json<serde_json::Value> {
    let revoked = api.inventory.with_ledger(|l| l.revoked.len());
    Json(serde_json::json!({
        "cert_pem": api.ca.cert_pem(),
        "revoked": revoked,
        "crl": "/v1/ca/crl",
    }))
}

/// How long a CRL is good for (clients fetch a new one before).
const CRL_VALIDITY: Duration = Duration::from_secs(3600);

/// The CRL, DER, freshly signed: every certificate the LM revoked.
pub(super) async fn crl(State(api): State<Arc<Api>>) -> Result<Response, HttpError> {
    let api2 = api.clone();
    let der = blocking(move || {
        let revocations = api2
            .inventory
            .store()
            .revocations()
            .map_err(|e| inv_err(e.into()))?;
        let mut list = Vec::with_capacity(revocations.len());
        for r in revocations {
            let bytes = hex::decode(if r.serial.len() % 2 == 1 {
                format!("0{}", r.serial)
            } else {
                r.serial.clone()
            });
            match bytes.ok().and_then(|b| Serial::from_bytes(&b).ok()) {
                Some(serial) => list.push(RevokedCert {
                    serial,
                    revoked_at: SystemTime::UNIX_EPOCH + Duration::from_millis(r.at_ms),
                }),
                None => {
                    tracing::error!(serial = %r.serial, "unusable serial in the revocation list")
                }
            }
        }
        let now = SystemTime::now();
        // Milliseconds since the epoch: strictly increasing from one CRL to the next.
        let number = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        api2.ca
            .authority()
            .crl(&list, number, now, now + CRL_VALIDITY)
            .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/pkix-crl")], der).into_response())
}
