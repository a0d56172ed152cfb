//! The ledger: servers, leases and tenants as one consistent state, and the pure rules that
//! move them. Every operation runs on a [`Work`] (a copy-on-write overlay of the ledger) and
//! produces a [`Tx`]: the records to write, the audit entries and the effects. The shell
//! ([`crate::inventory`]) stores a `Tx` in one sled transaction, flushes, makes it visible,
//! and only then runs its effects (persist before act, persist before reply).
//! Time and randomness come in through [`Work`]; nothing here does IO.

pub mod enroll;
pub mod leases;
mod records;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use lm_api::{BootId, LeaseId, MacAddr, Name, ServerState};

use crate::audit::AuditDraft;
use crate::fsm::{self, Input, Refusal};
pub use records::{IssuedRecord, LeaseRecord, Revocation, ServerRecord, TenantRecord, TokenRecord};

/// Everything the LM decides on, in memory.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    pub servers: HashMap<MacAddr, ServerRecord>,
    pub by_name: HashMap<String, MacAddr>,
    pub leases: BTreeMap<LeaseId, LeaseRecord>,
    pub tenants: BTreeMap<Name, TenantRecord>,
    /// Operators with client certificates (the local admin socket needs none).
    pub operators: BTreeMap<Name, TenantRecord>,
    /// Serials (hex) of revoked certificates.
    pub revoked: BTreeSet<String>,
}

/// Something to do once a transaction is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Start the wake supervisor for this boot attempt (the server is `waking`).
    Wake { mac: MacAddr, boot_id: BootId },
    /// Announce a server's new state (console `watch`, wake supervisor).
    ServerChanged { mac: MacAddr, state: ServerState },
    /// Announce a lease's new state.
    LeaseChanged { id: LeaseId },
}

/// What one operation changes.
#[derive(Debug, Default)]
pub struct Tx {
    pub servers: BTreeMap<MacAddr, ServerRecord>,
    pub removed_servers: Vec<MacAddr>,
    pub leases: BTreeMap<LeaseId, LeaseRecord>,
    pub tenants: BTreeMap<Name, TenantRecord>,
    pub operators: BTreeMap<Name, TenantRecord>,
    /// Token records by key (the SHA-256 of the token, hex).
    pub tokens: BTreeMap<String, TokenRecord>,
    pub revocations: Vec<Revocation>,
    pub audit: Vec<AuditDraft>,
    pub effects: Vec<Effect>,
}

impl Tx {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
            && self.removed_servers.is_empty()
            && self.leases.is_empty()
            && self.tenants.is_empty()
            && self.operators.is_empty()
            && self.tokens.is_empty()
            && self.revocations.is_empty()
            && self.audit.is_empty()
    }
}

/// One operation in progress: the ledger as it was, the changes so far, the time and a source
/// of random ids.
pub struct Work<'a> {
    base: &'a Ledger,
    pub tx: Tx,
    pub now_ms: u64,
    /// Who is acting, for the audit log (`lm`, `tenant:acme`, `operator:local`, ...).
    pub actor: String,
    ids: &'a mut dyn FnMut() -> u64,
}

impl std::fmt::Debug for Work<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Work")
            .field("actor", &self.actor)
            .field("now_ms", &self.now_ms)
            .field("tx", &self.tx)
            .finish_non_exhaustive()
    }
}

impl<'a> Work<'a> {
    pub fn new(
        base: &'a Ledger,
        now_ms: u64,
        actor: impl Into<String>,
        ids: &'a mut dyn FnMut() -> u64,
    ) -> Self {
        Self {
            base,
            tx: Tx::default(),
            now_ms,
            actor: actor.into(),
            ids,
        }
    }

    /// A fresh random 64-bit id.
    pub fn random(&mut self) -> u64 {
        (self.ids)()
    }

    /// The ledger before this operation.
    pub fn base(&self) -> &Ledger {
        self.base
    }

    /// A server as this operation sees it.
    pub fn server(&self, mac: MacAddr) -> Option<ServerRecord> {
        if self.tx.removed_servers.contains(&mac) {
            return None;
        }
        self.tx
            .servers
            .get(&mac)
            .or_else(|| self.base.servers.get(&mac))
            .cloned()
    }

    /// Every server MAC (base and added), sorted by name.
    pub fn server_macs_by_name(&self) -> Vec<MacAddr> {
        let mut v: Vec<(String, MacAddr)> = self
            .base
            .servers
            .values()
            .chain(self.tx.servers.values())
            .map(|r| (r.name.clone(), r.mac))
            .collect();
        v.sort();
        v.dedup();
        v.into_iter()
            .map(|(_, m)| m)
            .filter(|m| !self.tx.removed_servers.contains(m))
            .collect()
    }

    /// A server as this operation sees it, without a copy.
    pub fn server_ref(&self, mac: MacAddr) -> Option<&ServerRecord> {
        if self.tx.removed_servers.contains(&mac) {
            return None;
        }
        self.tx
            .servers
            .get(&mac)
            .or_else(|| self.base.servers.get(&mac))
    }

    /// A lease as this operation sees it, without a copy.
    pub fn lease_ref(&self, id: LeaseId) -> Option<&LeaseRecord> {
        self.tx
            .leases
            .get(&id)
            .or_else(|| self.base.leases.get(&id))
    }

    /// A lease as this operation sees it.
    pub fn lease(&self, id: LeaseId) -> Option<LeaseRecord> {
        self.tx
            .leases
            .get(&id)
            .or_else(|| self.base.leases.get(&id))
            .cloned()
    }

    /// Every lease id (base and new), oldest first.
    pub fn lease_ids(&self) -> Vec<LeaseId> {
        let mut v: Vec<(u64, LeaseId)> = self
            .base
            .leases
            .values()
            .chain(self.tx.leases.values())
            .map(|l| (l.created_ms, l.id))
            .collect();
        v.sort();
        v.dedup();
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// A tenant as this operation sees it.
    pub fn tenant(&self, name: &Name) -> Option<TenantRecord> {
        self.tx
            .tenants
            .get(name)
            .or_else(|| self.base.tenants.get(name))
            .cloned()
    }

    pub fn put_server(&mut self, rec: ServerRecord) {
        self.tx.servers.insert(rec.mac, rec);
    }

    pub fn put_lease(&mut self, rec: LeaseRecord) {
        self.tx.effects.push(Effect::LeaseChanged { id: rec.id });
        self.tx.leases.insert(rec.id, rec);
    }

    pub fn put_tenant(&mut self, rec: TenantRecord) {
        self.tx.tenants.insert(rec.name.clone(), rec);
    }

    /// An operator (with a client certificate) as this operation sees it.
    pub fn operator(&self, name: &Name) -> Option<TenantRecord> {
        self.tx
            .operators
            .get(name)
            .or_else(|| self.base.operators.get(name))
            .cloned()
    }

    pub fn put_operator(&mut self, rec: TenantRecord) {
        self.tx.operators.insert(rec.name.clone(), rec);
    }

    /// Appends an audit entry, stamped and chained at commit.
    pub fn audit(
        &mut self,
        action: &'static str,
        lease: Option<LeaseId>,
        server: Option<&str>,
        tenant: Option<&Name>,
        detail: impl Into<String>,
    ) {
        self.tx.audit.push(AuditDraft {
            actor: self.actor.clone(),
            action,
            lease,
            server: server.map(str::to_string),
            tenant: tenant.cloned(),
            detail: detail.into(),
        });
    }

    /// Runs the server state machine on `mac` and records the change (audit, announcement).
    pub fn step_server(
        &mut self,
        mac: MacAddr,
        input: &Input,
    ) -> Result<Option<ServerState>, StepError> {
        let mut rec = self.server(mac).ok_or(StepError::NoServer(mac))?;
        let next = fsm::step(&rec.state, rec.lease.is_some(), input).map_err(|refusal| {
            StepError::Refused {
                name: rec.name.clone(),
                refusal,
            }
        })?;
        let Some(state) = next else { return Ok(None) };
        let detail = match &state {
            ServerState::Unreachable { reason, .. }
            | ServerState::Failed { reason, .. }
            | ServerState::Quarantined { reason } => {
                format!("{} -> {} ({reason})", rec.state.name(), state.name())
            }
            _ => format!("{} -> {}", rec.state.name(), state.name()),
        };
        self.audit("server.state", rec.lease, Some(&rec.name), None, detail);
        // The agent that held the certificate is gone with the reboot: its certificate goes
        // too, and the next boot enrolls anew (or, on a wipe boot, reports without one).
        if let Input::Rebooted { boot_id } = input
            && let Some(serial) = rec.cert_serial.take()
        {
            self.revoke(&serial, &format!("server rebooted (boot {boot_id})"));
        }
        rec.state = state.clone();
        rec.since_ms = self.now_ms;
        self.tx.effects.push(Effect::ServerChanged {
            mac,
            state: state.clone(),
        });
        self.put_server(rec);
        Ok(Some(state))
    }

    /// Revokes a certificate (once).
    pub fn revoke(&mut self, serial: &str, reason: &str) {
        if self.base.revoked.contains(serial)
            || self.tx.revocations.iter().any(|r| r.serial == serial)
        {
            return;
        }
        self.tx.revocations.push(Revocation {
            serial: serial.to_string(),
            at_ms: self.now_ms,
            reason: reason.to_string(),
        });
    }
}

/// A server step that did not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("{0} is not in the inventory (see `lease-manager server list`)")]
    NoServer(MacAddr),
    #[error("server {name}: {refusal}")]
    Refused { name: String, refusal: Refusal },
}

impl Ledger {
    /// Applies a committed transaction to the in-memory state.
    pub fn apply(&mut self, tx: &Tx) {
        for mac in &tx.removed_servers {
            if let Some(r) = self.servers.remove(mac) {
                self.by_name.remove(&r.name);
            }
        }
        for rec in tx.servers.values() {
            if let Some(old) = self.servers.get(&rec.mac)
                && old.name != rec.name
            {
                self.by_name.remove(&old.name);
            }
            self.by_name.insert(rec.name.clone(), rec.mac);
            self.servers.insert(rec.mac, rec.clone());
        }
        for rec in tx.leases.values() {
            self.leases.insert(rec.id, rec.clone());
        }
        for rec in tx.tenants.values() {
            self.tenants.insert(rec.name.clone(), rec.clone());
        }
        for rec in tx.operators.values() {
            self.operators.insert(rec.name.clone(), rec.clone());
        }
        for r in &tx.revocations {
            self.revoked.insert(r.serial.clone());
        }
    }

    /// Checks the invariants that must hold after every transaction and at load: every leased
    /// server is in its lease's list, every server of a lease points back to it, and no server
    /// is in two leases. Returns the first violation.
    pub fn check(&self) -> Result<(), String> {
        let mut owner: HashMap<MacAddr, LeaseId> = HashMap::new();
        for l in self.leases.values() {
            for m in &l.servers {
                if let Some(other) = owner.insert(*m, l.id) {
                    return Err(format!("server {m} is in leases {other} and {}", l.id));
                }
                match self.servers.get(m) {
                    Some(s) if s.lease == Some(l.id) => {}
                    Some(s) => {
                        return Err(format!(
                            "lease {} lists {} but the server says {:?}",
                            l.id, s.name, s.lease
                        ));
                    }
                    None => return Err(format!("lease {} lists unknown server {m}", l.id)),
                }
            }
        }
        for s in self.servers.values() {
            if let Some(id) = s.lease
                && owner.get(&s.mac) != Some(&id)
            {
                return Err(format!(
                    "server {} says lease {id} but the lease does not list it",
                    s.name
                ));
            }
        }
        Ok(())
    }
}
