//! Enrollment tokens and the enrollment decision, pure.
//!
//! A token is minted when a leased server fetches its per-host boot script (it travels only in
//! that script, to the agent's kernel command line); the LM stores only its SHA-256. It is
//! bound to the lease, the MAC and the boot attempt, short-lived, and single-use: a newer
//! script for the same server supersedes it, and any refused attempt with a known token spends
//! it too (a token presented with the wrong MAC or lease is treated as stolen). Every refusal is
//! an audit `security.enroll-refused` entry.

use lm_api::{EnrollRequest, LeaseId, LeaseState, MacAddr, Name, ServerState, Tunnel};
use sha2::{Digest, Sha256};

use super::{TokenRecord, Work};
use crate::fsm::Input;

/// Hex characters in a token (256 random bits).
pub const TOKEN_HEX_LEN: usize = 64;

/// The store key of a token: SHA-256 of the token text, hex.
pub fn token_key(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The SHA-256 (hex) of a CSR's public key (what a replayed enrollment must match).
pub fn key_hash(public_key_der: &[u8]) -> String {
    hex::encode(Sha256::digest(public_key_der))
}

/// Whether `token` has the shape of a token (checked before any lookup).
pub fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_HEX_LEN
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Mints a token for the boot script of `mac`, if the server is booting for a lease.
/// `previous` is the record of the server's latest token (from the store, by
/// `ServerRecord::token_key`); if still unspent it is superseded.
pub fn mint(
    w: &mut Work<'_>,
    mac: MacAddr,
    previous: Option<TokenRecord>,
    ttl_s: u64,
) -> Option<String> {
    let mut rec = w.server(mac)?;
    let lease = rec.lease?;
    let boot_id = match rec.state {
        // Enrolling too: a server that rebooted before it enrolled fetches its script again.
        ServerState::Waking { boot_id, .. }
        | ServerState::Booting { boot_id }
        | ServerState::Enrolling { boot_id } => boot_id,
        _ => return None,
    };
    if let (Some(key), Some(mut old)) = (rec.token_key.clone(), previous)
        && old.spent_ms.is_none()
    {
        old.spent_ms = Some(w.now_ms);
        old.spent_why = Some("superseded by a newer boot script".into());
        w.tx.tokens.insert(key, old);
    }
    let token: String = (0..4).map(|_| format!("{:016x}", w.random())).collect();
    let now = w.now_ms;
    let key = token_key(&token);
    rec.token_key = Some(key.clone());
    let name = rec.name.clone();
    w.put_server(rec);
    w.tx.tokens.insert(
        key,
        TokenRecord {
            lease,
            mac,
            boot_id,
            issued_ms: now,
            expires_ms: now.saturating_add(ttl_s.saturating_mul(1000)),
            spent_ms: None,
            spent_why: None,
            issued: None,
        },
    );
    w.audit(
        "token.issued",
        Some(lease),
        Some(&name),
        None,
        format!("enrollment token for boot {boot_id}, valid {ttl_s} s"),
    );
    Some(token)
}

/// Why an enrollment was refused (each is a security event).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrollRefusal {
    #[error("the enrollment token is malformed: expected {TOKEN_HEX_LEN} lowercase hex characters")]
    Malformed,
    #[error("unknown enrollment token")]
    Unknown,
    #[error("the enrollment token was already used or superseded ({0})")]
    Spent(String),
    #[error("the enrollment token expired")]
    Expired,
    #[error("the enrollment token belongs to lease {token}, not {asked}")]
    ForeignLease { token: LeaseId, asked: LeaseId },
    #[error("the enrollment token belongs to another server (MAC {token}), not {asked}")]
    ForeignMac { token: MacAddr, asked: MacAddr },
    #[error("the enrollment token belongs to another boot attempt")]
    StaleBoot,
    #[error("lease {0} is over or not provisioning")]
    LeaseOver(LeaseId),
    #[error("the server is {0}, not enrolling for this lease")]
    NotEnrolling(&'static str),
    #[error("bad certificate request: {0}")]
    BadCsr(String),
}

impl EnrollRefusal {
    /// HTTP status: 400 for malformed requests, 403 for everything else.
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed | Self::BadCsr(_) => 400,
            _ => 403,
        }
    }
}

/// What an accepted enrollment grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollGrant {
    pub server: String,
    pub mac: MacAddr,
    pub lease: LeaseId,
    pub tenant: Name,
    pub tunnel: Tunnel,
    /// The certificate's end: the lease's end, or `now + max_cert_s` if that is sooner.
    pub not_after_ms: u64,
    /// Store key of the token, and the hash of the CSR's key (recorded with the certificate).
    pub token_key: String,
    pub key_hash: String,
}

/// What an enrollment request leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enrollment {
    /// Issue a certificate.
    New(EnrollGrant),
    /// The same agent asks again (its answer was lost): the certificate it already has.
    Replay {
        server: String,
        lease: LeaseId,
        tunnel: Tunnel,
        issued: super::IssuedRecord,
    },
}

/// Decides an enrollment. `token` is the stored record for the presented token (if any),
/// `csr_key` the SHA-256 of the CSR's public key, or why the CSR was refused. The token is
/// spent (used or refused) and a refusal audited in `w` either way, so the caller commits `w`
/// in both cases.
pub fn decide(
    w: &mut Work<'_>,
    req: &EnrollRequest,
    token: Option<TokenRecord>,
    csr_key: Result<String, String>,
    max_cert_s: u64,
) -> Result<Enrollment, EnrollRefusal> {
    if let (Some(t), Ok(key_hash)) = (&token, &csr_key)
        && let Some(replay) = replay(w, req, t, key_hash)
    {
        return Ok(replay);
    }
    let now = w.now_ms;
    let key = token_key(&req.token);
    let res = check(w, req, token.as_ref(), csr_key, max_cert_s);
    if let Some(mut t) = token
        && t.spent_ms.is_none()
    {
        t.spent_ms = Some(now);
        t.spent_why = Some(match &res {
            Ok(_) => "used".into(),
            Err(e) => format!("refused: {e}"),
        });
        w.tx.tokens.insert(key, t);
    }
    // On success the caller issues the certificate and records it with `enrolled`.
    if let Err(e) = &res {
        let server = w.server_ref(req.boot_mac).map(|s| s.name.clone());
        w.audit(
            "security.enroll-refused",
            Some(req.lease),
            server.as_deref(),
            None,
            format!("from MAC {} boot {}: {e}", req.boot_mac, req.boot_id),
        );
    }
    res.map(Enrollment::New)
}

/// The same token, the same key, the same boot, and the server still holds that certificate:
/// the agent lost the answer and asks again.
fn replay(
    w: &Work<'_>,
    req: &EnrollRequest,
    t: &TokenRecord,
    key_hash: &str,
) -> Option<Enrollment> {
    let issued = t.issued.as_ref()?;
    let server = w.server_ref(req.boot_mac)?;
    let lease = w.lease_ref(t.lease)?;
    let same = issued.key_hash == key_hash
        && t.lease == req.lease
        && t.mac == req.boot_mac
        && t.boot_id == req.boot_id
        && server.cert_serial.as_deref() == Some(issued.serial.as_str())
        && server.state.boot_id() == Some(req.boot_id)
        && !lease.state.is_final();
    same.then(|| Enrollment::Replay {
        server: server.name.clone(),
        lease: t.lease,
        tunnel: lease.tunnel,
        issued: issued.clone(),
    })
}

fn check(
    w: &Work<'_>,
    req: &EnrollRequest,
    token: Option<&TokenRecord>,
    csr_key: Result<String, String>,
    max_cert_s: u64,
) -> Result<EnrollGrant, EnrollRefusal> {
    if !well_formed(&req.token) {
        return Err(EnrollRefusal::Malformed);
    }
    let t = token.ok_or(EnrollRefusal::Unknown)?;
    if let Some(at) = t.spent_ms {
        return Err(EnrollRefusal::Spent(format!(
            "{} at {at} ms",
            t.spent_why.as_deref().unwrap_or("spent")
        )));
    }
    if t.expires_ms <= w.now_ms {
        return Err(EnrollRefusal::Expired);
    }
    if t.lease != req.lease {
        return Err(EnrollRefusal::ForeignLease {
            token: t.lease,
            asked: req.lease,
        });
    }
    if t.mac != req.boot_mac {
        return Err(EnrollRefusal::ForeignMac {
            token: t.mac,
            asked: req.boot_mac,
        });
    }
    if t.boot_id != req.boot_id {
        return Err(EnrollRefusal::StaleBoot);
    }
    let lease = w
        .lease_ref(t.lease)
        .ok_or(EnrollRefusal::LeaseOver(t.lease))?;
    if !matches!(lease.state, LeaseState::Provisioning | LeaseState::Active)
        || lease.ends_ms <= w.now_ms
    {
        return Err(EnrollRefusal::LeaseOver(t.lease));
    }
    let server = w
        .server(t.mac)
        .ok_or(EnrollRefusal::NotEnrolling("not in the inventory"))?;
    if server.lease != Some(t.lease)
        || !matches!(server.state, ServerState::Enrolling { boot_id } if boot_id == t.boot_id)
    {
        return Err(EnrollRefusal::NotEnrolling(server.state.name()));
    }
    let key_hash = csr_key.map_err(EnrollRefusal::BadCsr)?;
    Ok(EnrollGrant {
        token_key: token_key(&req.token),
        key_hash,
        server: server.name,
        mac: t.mac,
        lease: t.lease,
        tenant: lease.tenant.clone(),
        tunnel: lease.tunnel,
        not_after_ms: lease
            .ends_ms
            .min(w.now_ms.saturating_add(max_cert_s.saturating_mul(1000))),
    })
}

/// Records an issued agent certificate (on the server and with its token, for a replay) and
/// moves the server on to `tunneling`.
pub fn enrolled(
    w: &mut Work<'_>,
    grant: &EnrollGrant,
    boot_id: lm_api::BootId,
    serial: &str,
    cert_pem: &str,
    not_after_ms: u64,
) -> Result<(), super::StepError> {
    let mut rec = w
        .server(grant.mac)
        .ok_or(super::StepError::NoServer(grant.mac))?;
    rec.cert_serial = Some(serial.to_string());
    w.put_server(rec);
    if let Some(t) = w.tx.tokens.get_mut(&grant.token_key) {
        t.issued = Some(super::IssuedRecord {
            key_hash: grant.key_hash.clone(),
            cert_pem: cert_pem.to_string(),
            serial: serial.to_string(),
            not_after_ms,
        });
    }
    w.audit(
        "agent.enrolled",
        Some(grant.lease),
        Some(&grant.server),
        Some(&grant.tenant),
        format!("certificate {serial} valid until {not_after_ms} ms"),
    );
    w.step_server(grant.mac, &Input::Enrolled { boot_id })?;
    Ok(())
}
