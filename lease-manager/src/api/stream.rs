//! Event streams as newline-delimited JSON (`application/x-ndjson`): the audit entries of one
//! lease (tenants: their own) or of everything (operators). `?follow=true` keeps the
//! connection open and sends new entries as they are committed; `from` resumes after a
//! sequence number.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use lm_api::{AuditEntry, LeaseId};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};

use super::audit::MAX_PAGE;
use super::leases::visible_lease;
use super::{Api, Principal};
use crate::http_util::HttpError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Follow {
    #[serde(default)]
    follow: bool,
    #[serde(default)]
    from: Option<u64>,
}

pub(super) async fn lease_events(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<Follow>,
) -> Result<Response, HttpError> {
    let lease = visible_lease(&api, &p, &id)?;
    Ok(ndjson(api, Some(lease.id), q))
}

pub(super) async fn events(State(api): State<Arc<Api>>, Query(q): Query<Follow>) -> Response {
    ndjson(api, None, q)
}

fn ndjson(api: Arc<Api>, lease: Option<LeaseId>, q: Follow) -> Response {
    // Subscribe before reading the past so nothing falls in between.
    let live = q.follow.then(|| api.inventory.subscribe_audit());
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(pump(api, lease, q.from.unwrap_or(1), live, tx));
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    }));
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

fn line(e: &AuditEntry) -> Bytes {
    let mut v = serde_json::to_vec(e).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn lease_over(api: &Api, lease: Option<LeaseId>) -> bool {
    lease.is_some_and(|id| {
        api.inventory
            .with_ledger(|l| l.leases.get(&id).is_some_and(|x| x.state.is_final()))
    })
}

async fn pump(
    api: Arc<Api>,
    lease: Option<LeaseId>,
    from: u64,
    live: Option<broadcast::Receiver<AuditEntry>>,
    tx: mpsc::Sender<Bytes>,
) {
    let wanted = |e: &AuditEntry| lease.is_none() || e.lease == lease;
    let mut next = from.max(1);
    loop {
        let store = api.inventory.store().clone();
        let page = match tokio::task::spawn_blocking(move || store.audit(next, MAX_PAGE)).await {
            Ok(Ok(p)) => p,
            _ => return,
        };
        let Some(last) = page.last().map(|e| e.seq) else {
            break;
        };
        for e in page.iter().filter(|e| wanted(e)) {
            if tx.send(line(e)).await.is_err() {
                return;
            }
        }
        next = last + 1;
    }
    let Some(mut live) = live else { return };
    if lease_over(&api, lease) {
        return;
    }
    loop {
        match live.recv().await {
            Ok(e) if e.seq < next => {}
            Ok(e) => {
                next = e.seq + 1;
                if wanted(&e) && tx.send(line(&e)).await.is_err() {
                    return;
                }
                if wanted(&e) && lease_over(&api, lease) {
                    // The rest of the transaction that ended the lease is already in the
                    // store (entries are committed before they are announced): send it, then
                    // end the stream.
                    let store = api.inventory.store().clone();
                    let rest =
                        tokio::task::spawn_blocking(move || store.audit(next, MAX_PAGE)).await;
                    if let Ok(Ok(rest)) = rest {
                        for e in rest.iter().filter(|e| wanted(e)) {
                            if tx.send(line(e)).await.is_err() {
                                return;
                            }
                        }
                    }
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                // Too slow a reader: end the stream; it can resume with `from`.
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
