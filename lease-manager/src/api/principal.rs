//! Who is calling: from the client certificate the TLS layer verified (see
//! [`crate::tls_server::Caller`]), or the local operator on the admin socket.

use axum::Extension;
use axum::Json;
use axum::extract::Request;
use axum::http::StatusCode;
use lm_api::{LeaseId, Name};
use lm_pki::Identity;

use super::Api;
use crate::http_util::HttpError;
use crate::tls_server::Caller;

/// Marks requests that came in on the local admin socket (mode 0600: root only).
#[derive(Debug, Clone, Copy)]
pub struct LocalOperator;

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No client certificate.
    Anonymous,
    Tenant(Name),
    Operator(Name),
    Agent {
        lease: LeaseId,
        server: Name,
    },
}

impl Principal {
    /// The actor name in audit entries.
    pub fn actor(&self) -> String {
        match self {
            Self::Anonymous => "anonymous".into(),
            Self::Tenant(n) => format!("tenant:{n}"),
            Self::Operator(n) => format!("operator:{n}"),
            Self::Agent { server, .. } => format!("agent:{server}"),
        }
    }

    /// The tenant, when the caller is one.
    pub fn tenant(&self) -> Option<&Name> {
        match self {
            Self::Tenant(n) => Some(n),
            _ => None,
        }
    }
}

/// Resolves the caller of `req`; a revoked certificate or a removed tenant is a 401.
pub(super) fn resolve(api: &Api, req: &Request) -> Result<Principal, HttpError> {
    if req.extensions().get::<LocalOperator>().is_some() {
        return Ok(Principal::Operator("local".parse().expect("valid name")));
    }
    let Some(Caller::Cert(peer)) = req.extensions().get::<Caller>() else {
        return Ok(Principal::Anonymous);
    };
    let refused = |why: String| {
        tracing::warn!(serial = %peer.serial_hex, identity = %peer.identity.uri(), %why, "client certificate refused");
        HttpError::new(StatusCode::UNAUTHORIZED, why)
    };
    let (revoked, tenant_gone) = api.inventory.with_ledger(|l| {
        let gone = match &peer.identity {
            Identity::Tenant(n) => l.tenants.get(n).is_none_or(|t| t.removed),
            Identity::Operator(n) => l.operators.get(n).is_none_or(|t| t.removed),
            Identity::Agent { .. } => false,
        };
        (l.revoked.contains(&peer.serial_hex), gone)
    });
    if revoked {
        return Err(refused(format!(
            "client certificate {} is revoked",
            peer.serial_hex
        )));
    }
    if tenant_gone {
        return Err(refused(format!(
            "{} is not a client of this Lease Manager (removed or unknown)",
            peer.identity.uri()
        )));
    }
    Ok(match &peer.identity {
        Identity::Tenant(n) => Principal::Tenant(n.clone()),
        Identity::Operator(n) => Principal::Operator(n.clone()),
        Identity::Agent { lease, server } => Principal::Agent {
            lease: *lease,
            server: server.clone(),
        },
    })
}

/// `GET /v1/whoami`.
pub(super) async fn whoami(Extension(p): Extension<Principal>) -> Json<serde_json::Value> {
    let role = match &p {
        Principal::Anonymous => "anonymous",
        Principal::Tenant(_) => "tenant",
        Principal::Operator(_) => "operator",
        Principal::Agent { .. } => "agent",
    };
    Json(serde_json::json!({ "actor": p.actor(), "role": role }))
}
