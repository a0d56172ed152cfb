//! The audit log as the API shows it: append-only, each entry chained to the one before by
//! SHA-256 so a rewritten or removed entry is detectable (see docs/formats.md).

use serde::{Deserialize, Serialize};

use crate::{LeaseId, Name};

/// One audit entry. `hash = SHA-256(prev || seq || at_ms || actor || action || lease ||
/// server || tenant || detail)`, each field length-prefixed (see the LM's `audit` module).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// 1, 2, 3, ... without gaps.
    pub seq: u64,
    pub at_ms: u64,
    /// Who caused it: `lm`, `operator:<name>`, `tenant:<name>`, `agent:<server>`, `anonymous`.
    pub actor: String,
    /// What happened: `lease.state`, `server.state`, `agent.enrolled`, `security.*`, ...
    pub action: String,
    pub lease: Option<LeaseId>,
    pub server: Option<String>,
    pub tenant: Option<Name>,
    /// Human-readable detail (`provisioning -> active`, the refusal reason, ...).
    pub detail: String,
    /// Hash of the previous entry (64 hex; zeros for the first).
    pub prev: String,
    /// Hash of this entry (64 hex).
    pub hash: String,
}

impl AuditEntry {
    /// Whether the entry is a security event (refused enrollment, bad certificate, ...).
    pub fn is_security(&self) -> bool {
        self.action.starts_with("security.")
    }
}

/// Answer of `GET /v1/audit/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerification {
    pub entries: u64,
    /// Hash of the last entry: keep it somewhere else to detect a truncated log later.
    pub head: String,
    /// The first broken entry and why, when the chain does not hold.
    pub broken: Option<String>,
}
