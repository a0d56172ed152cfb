//! The records the ledger keeps, as stored (JSON in sled). New fields get `#[serde(default)]`
//! so a database written by an older version still loads.

use std::net::Ipv4Addr;

use lm_api::{BootId, HardwareFacts, LeaseId, LeaseState, MacAddr, Name, ServerState, Tunnel};
use serde::{Deserialize, Serialize};

/// A server of the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRecord {
    pub name: String,
    pub mac: MacAddr,
    pub reserved_ip: Option<Ipv4Addr>,
    pub wol_password: Option<MacAddr>,
    pub state: ServerState,
    pub since_ms: u64,
    pub facts: Option<HardwareFacts>,
    /// The lease the server belongs to.
    #[serde(default)]
    pub lease: Option<LeaseId>,
    /// Serial (hex) of the agent certificate issued for that lease, once enrolled.
    #[serde(default)]
    pub cert_serial: Option<String>,
    /// Store key of the latest enrollment token minted for this server's boot.
    #[serde(default)]
    pub token_key: Option<String>,
    /// The boot attempt whose agent started the tenant OS (kexec): no agent hears that boot's
    /// release, so a power cycle must return the server to one.
    #[serde(default)]
    pub started_boot: Option<lm_api::BootId>,
}

/// A lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub id: LeaseId,
    pub tenant: Name,
    pub state: LeaseState,
    pub reason: Option<String>,
    /// Set when the lease is being released because something failed: it ends `failed`.
    #[serde(default)]
    pub failing: bool,
    pub count: u32,
    pub waiting: u32,
    /// Servers assigned now (MACs). Not stored with the lease: each server record names its
    /// lease, and this list is rebuilt from them at load (a lease of a thousand servers would
    /// otherwise be rewritten whole every time one of them changes).
    #[serde(skip)]
    pub servers: Vec<MacAddr>,
    pub tunnel: Tunnel,
    pub role: Option<String>,
    pub image: Option<String>,
    #[serde(default)]
    pub gateway: Option<lm_api::GatewaySpec>,
    pub created_ms: u64,
    pub starts_ms: u64,
    pub ends_ms: u64,
    pub ended_ms: Option<u64>,
    pub renewals: u32,
}

/// A tenant, or an operator with a client certificate (the same fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub name: Name,
    pub created_ms: u64,
    pub cert_serial: String,
    pub cert_not_after_ms: u64,
    pub removed: bool,
}

/// An enrollment token, stored by the SHA-256 of the token (the token itself is never
/// stored: it exists only in the boot script the server fetched).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub lease: LeaseId,
    pub mac: MacAddr,
    pub boot_id: BootId,
    pub issued_ms: u64,
    pub expires_ms: u64,
    /// Set when the token was used (or superseded by a newer one for the same boot).
    pub spent_ms: Option<u64>,
    #[serde(default)]
    pub spent_why: Option<String>,
    /// The certificate issued with this token: an agent whose answer was lost (the LM
    /// restarted) asks again with the same token and the same key, and gets it again.
    #[serde(default)]
    pub issued: Option<IssuedRecord>,
}

/// A certificate issued at enrollment (public data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedRecord {
    /// SHA-256 (hex) of the CSR's public key.
    pub key_hash: String,
    pub cert_pem: String,
    pub serial: String,
    pub not_after_ms: u64,
}

/// A revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub serial: String,
    pub at_ms: u64,
    pub reason: String,
}
