//! The inventory: the LM's state (servers, leases, tenants) in memory, kept in step with the
//! store. Every operation runs the pure ledger rules ([`crate::ledger`]) under one writer
//! lock, stores the result in one transaction, flushes, and only then makes it visible and
//! runs its effects (wakes, announcements). The PXE services read the in-memory view on every
//! packet (the netboot gate). IO: through [`Store`] only.

use std::sync::{Arc, Mutex, RwLock};

use lm_api::{
    AddServer, AuditEntry, EventKind, HardwareFacts, LeaseId, LeaseServer, LeaseView, MacAddr,
    Name, ServerState, ServerView, TimelineEntry,
};
use pxe::{BootDirectory, Gate, HostBoot};
use tokio::sync::{broadcast, mpsc};

use crate::clock::Clock;
use crate::fsm::{self, Input, Refusal};
use crate::ledger::enroll;
use crate::ledger::leases::{self, LeaseRefusal};
use crate::ledger::{Effect, LeaseRecord, Ledger, StepError, Tx, Work};
use crate::store::{ServerRecord, Store, StoreError};

/// Why an inventory operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("no server named or with MAC {0:?} in the inventory (see `lease-manager server list`)")]
    NotFound(String),
    #[error("a server with {what} {value} already exists ({existing})")]
    Duplicate {
        what: &'static str,
        value: String,
        existing: String,
    },
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("server {name}: {refusal}")]
    Refused { name: String, refusal: Refusal },
    #[error(transparent)]
    Lease(LeaseRefusal),
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl InventoryError {
    /// The HTTP status that fits.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound(_) | Self::Lease(LeaseRefusal::NotFound(_)) => 404,
            Self::Refused { .. }
            | Self::Duplicate { .. }
            | Self::Lease(LeaseRefusal::NoCapacity { .. } | LeaseRefusal::WrongState { .. }) => 409,
            Self::Invalid { .. } | Self::Lease(LeaseRefusal::Invalid { .. }) => 400,
            Self::Lease(LeaseRefusal::UnknownTenant(_)) => 403,
            Self::Lease(LeaseRefusal::Step(_)) => 409,
            Self::Store(_) | Self::Internal(_) => 500,
        }
    }
}

impl From<StepError> for InventoryError {
    fn from(e: StepError) -> Self {
        match e {
            StepError::NoServer(mac) => Self::NotFound(mac.to_string()),
            StepError::Refused { name, refusal } => Self::Refused { name, refusal },
        }
    }
}

impl From<LeaseRefusal> for InventoryError {
    fn from(e: LeaseRefusal) -> Self {
        match e {
            LeaseRefusal::Step(s) => s.into(),
            other => Self::Lease(other),
        }
    }
}

/// A server state change, as announced.
#[derive(Debug, Clone)]
pub struct StateChange {
    pub mac: MacAddr,
    pub state: ServerState,
}

/// How long an enrollment token is valid after its boot script was fetched, by default.
pub const DEFAULT_TOKEN_TTL_S: u64 = 900;

/// A source of random 64-bit values (ids, tokens); the daemon draws from the OS.
pub type Ids = Box<dyn FnMut() -> u64 + Send>;

/// The inventory.
pub struct Inventory {
    store: Store,
    clock: Arc<dyn Clock>,
    ledger: RwLock<Ledger>,
    writer: Mutex<Ids>,
    changes: broadcast::Sender<StateChange>,
    audit: broadcast::Sender<AuditEntry>,
    effects: Mutex<Option<mpsc::UnboundedSender<Effect>>>,
    token_ttl_s: std::sync::atomic::AtomicU64,
    durability: crate::group_commit::GroupCommit,
    /// Operations waiting to share a transaction (see `inventory_shared`).
    queue: Mutex<Vec<shared::Job>>,
    /// When the last shared batch was taken from the queue (see `inventory_shared`).
    batch_started: Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory").finish_non_exhaustive()
    }
}

fn valid_name(name: &str) -> Result<(), InventoryError> {
    name.parse::<Name>()
        .map(|_| ())
        .map_err(|e| InventoryError::Invalid {
            field: "name",
            reason: e.to_string(),
        })
}

impl Inventory {
    /// Loads the inventory from the store, with ids drawn from the OS.
    pub fn load(store: Store, clock: Arc<dyn Clock>) -> Result<Self, InventoryError> {
        Self::load_with_ids(store, clock, Box::new(rand::random::<u64>))
    }

    /// Loads the inventory from the store; `ids` is the source of random ids and tokens.
    pub fn load_with_ids(
        store: Store,
        clock: Arc<dyn Clock>,
        ids: Ids,
    ) -> Result<Self, InventoryError> {
        let ledger = store.load_ledger()?;
        if let Err(why) = ledger.check() {
            tracing::error!(%why, "the stored ledger is inconsistent");
        }
        let (changes, _) = broadcast::channel(4096);
        let (audit, _) = broadcast::channel(4096);
        Ok(Self {
            store,
            clock,
            ledger: RwLock::new(ledger),
            writer: Mutex::new(ids),
            changes,
            audit,
            effects: Mutex::new(None),
            token_ttl_s: std::sync::atomic::AtomicU64::new(DEFAULT_TOKEN_TTL_S),
            durability: crate::group_commit::GroupCommit::default(),
            queue: Mutex::new(Vec::new()),
            batch_started: Mutex::new(None),
        })
    }

    /// Sets how long enrollment tokens are valid.
    pub fn set_token_ttl(&self, secs: u64) {
        self.token_ttl_s
            .store(secs, std::sync::atomic::Ordering::Relaxed);
    }

    /// Where effects (wakes) go once their transaction is durable; the daemon's effect loop
    /// takes the receiver. Without one, effects other than announcements are dropped.
    pub fn take_effects(&self) -> mpsc::UnboundedReceiver<Effect> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.effects.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        rx
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ledger> {
        self.ledger.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the ledger.
    pub fn with_ledger<T>(&self, f: impl FnOnce(&Ledger) -> T) -> T {
        f(&self.read())
    }

    /// Runs one operation: the rules on the current ledger, then store, publish, flush and
    /// effects, in that order. Operations are serialized; their flushes are not: the fsync
    /// happens outside the writer lock and one fsync covers every transaction written before
    /// it (group commit). This returns only once the transaction is durable, so nothing is
    /// answered or acted on before it is on disk. Another operation may read the new state
    /// before it is durable, but anything it commits lands after it in sled's log, so its
    /// own durability implies this one's.
    pub fn transact<T, E>(
        &self,
        actor: &str,
        f: impl FnOnce(&mut Work<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut ids = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.clock.now_ms();
        let (out, tx) = {
            let base = self.read();
            let mut w = Work::new(&base, now, actor, &mut *ids);
            let out = f(&mut w)?;
            (out, w.tx)
        };
        if tx.is_empty() {
            return Ok(out);
        }
        let generation = self.commit_locked(&tx, now)?;
        drop(ids);
        self.publish(tx, generation)?;
        Ok(out)
    }

    /// Stores `tx` and applies it to the ledger; the caller holds the writer lock. Returns
    /// the group-commit generation to wait for.
    fn commit_locked(&self, tx: &Tx, now: u64) -> Result<(u64, Vec<AuditEntry>), StoreError> {
        let entries = self.store.commit(tx, now)?;
        {
            let mut l = self.ledger.write().unwrap_or_else(|p| p.into_inner());
            l.apply(tx);
            if cfg!(debug_assertions)
                && let Err(why) = l.check()
            {
                tracing::error!(%why, "ledger invariant broken");
            }
        }
        Ok((self.durability.written(), entries))
    }

    /// Waits until a committed transaction is durable, then announces its audit entries and
    /// hands its effects on. Called without the writer lock.
    fn publish(
        &self,
        tx: Tx,
        (generation, entries): (u64, Vec<AuditEntry>),
    ) -> Result<(), StoreError> {
        self.durability.wait(generation, || self.store.flush())?;
        for e in entries {
            tracing::info!(seq = e.seq, actor = %e.actor, action = %e.action, lease = ?e.lease.map(|l| l.to_string()), server = ?e.server, detail = %e.detail, "audit");
            let _ = self.audit.send(e);
        }
        let effects = self
            .effects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for eff in tx.effects {
            if let Effect::ServerChanged { mac, state } = &eff {
                let _ = self.changes.send(StateChange {
                    mac: *mac,
                    state: state.clone(),
                });
            }
            if let Some(chan) = &effects {
                let _ = chan.send(eff);
            }
        }
        Ok(())
    }

    /// Subscribes to server state changes.
    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.changes.subscribe()
    }

    /// Subscribes to new audit entries (lease events, security events).
    pub fn subscribe_audit(&self) -> broadcast::Receiver<AuditEntry> {
        self.audit.subscribe()
    }

    /// The store (audit reads, tokens, CRL).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The clock the inventory stamps with.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Looks a server up by name or MAC.
    pub fn find(&self, key: &str) -> Result<ServerRecord, InventoryError> {
        let l = self.read();
        let mac = match key.parse::<MacAddr>() {
            Ok(m) => Some(m),
            Err(_) => l.by_name.get(key).copied(),
        };
        mac.and_then(|m| l.servers.get(&m).cloned())
            .ok_or_else(|| InventoryError::NotFound(key.to_string()))
    }

    /// The record of `mac`, if known.
    pub fn get(&self, mac: MacAddr) -> Option<ServerRecord> {
        self.read().servers.get(&mac).cloned()
    }

    /// Adds a server (idle). Persisted before it returns.
    pub fn add(&self, actor: &str, req: AddServer) -> Result<ServerView, InventoryError> {
        valid_name(&req.name)?;
        if req.mac.is_multicast() || req.mac.octets() == [0; 6] {
            return Err(InventoryError::Invalid {
                field: "mac",
                reason: format!("{} is not a unicast NIC address", req.mac),
            });
        }
        if let Some(ip) = req.reserved_ip
            && (ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback())
        {
            return Err(InventoryError::Invalid {
                field: "reserved_ip",
                reason: format!("{ip} cannot be leased to a server"),
            });
        }
        self.transact(actor, |w| {
            let l = w.base();
            if let Some(m) = l.by_name.get(&req.name) {
                return Err(InventoryError::Duplicate {
                    what: "name",
                    value: req.name.clone(),
                    existing: m.to_string(),
                });
            }
            if let Some(r) = l.servers.get(&req.mac) {
                return Err(InventoryError::Duplicate {
                    what: "MAC",
                    value: req.mac.to_string(),
                    existing: r.name.clone(),
                });
            }
            if let Some(ip) = req.reserved_ip
                && let Some(r) = l.servers.values().find(|r| r.reserved_ip == Some(ip))
            {
                return Err(InventoryError::Duplicate {
                    what: "reserved address",
                    value: ip.to_string(),
                    existing: r.name.clone(),
                });
            }
            let rec = ServerRecord {
                name: req.name.clone(),
                mac: req.mac,
                reserved_ip: req.reserved_ip,
                wol_password: req.wol_password,
                state: ServerState::Idle,
                since_ms: w.now_ms,
                facts: None,
                lease: None,
                cert_serial: None,
                token_key: None,
                started_boot: None,
            };
            w.audit(
                "server.added",
                None,
                Some(&rec.name),
                None,
                format!("mac {}", rec.mac),
            );
            w.put_server(rec.clone());
            // A queued lease may be waiting for exactly this server.
            leases::assign_waiting(w)?;
            Ok(view(&rec, vec![]))
        })
    }

    /// Removes a server; refused while it is booting or leased (reset or release first).
    pub fn remove(&self, actor: &str, key: &str) -> Result<ServerRecord, InventoryError> {
        let rec = self.find(key)?;
        self.transact(actor, |w| {
            let rec = w
                .server(rec.mac)
                .ok_or_else(|| InventoryError::NotFound(key.to_string()))?;
            if let Some(id) = rec.lease {
                return Err(InventoryError::Invalid {
                    field: "server",
                    reason: format!("{} is in lease {id}; release the lease first", rec.name),
                });
            }
            if fsm::gate_open(&rec.state) {
                return Err(InventoryError::Refused {
                    name: rec.name.clone(),
                    refusal: Refusal::Busy {
                        state: rec.state.name(),
                        boot_id: rec
                            .state
                            .boot_id()
                            .unwrap_or(lm_api::BootId::from_random(0)),
                    },
                });
            }
            w.audit("server.removed", None, Some(&rec.name), None, "");
            w.tx.removed_servers.push(rec.mac);
            Ok(rec)
        })
        .and_then(|rec| {
            self.store.remove_server(rec.mac)?;
            Ok(rec)
        })
    }

    /// Applies a server state-machine input as the LM itself; the lease of the server follows.
    pub fn apply(
        &self,
        mac: MacAddr,
        input: &Input,
    ) -> Result<Option<ServerState>, InventoryError> {
        self.apply_as("lm", mac, input)
    }

    /// Applies a server input on behalf of `actor`.
    pub fn apply_as(
        &self,
        actor: &str,
        mac: MacAddr,
        input: &Input,
    ) -> Result<Option<ServerState>, InventoryError> {
        self.transact(actor, |w| {
            if matches!(input, Input::Reset)
                && let Some(rec) = w.server(mac)
                && let Some(id) = rec.lease
            {
                return Err(InventoryError::Invalid {
                    field: "server",
                    reason: format!(
                        "{} is in lease {id}; release the lease (it returns the server) instead of resetting it",
                        rec.name
                    ),
                });
            }
            let r = w.step_server(mac, input)?;
            if r.is_some() {
                leases::server_changed(w, mac)?;
            }
            Ok(r)
        })
    }

    /// Records that the agent of `boot_id` started the tenant OS (an ok `start` report of the
    /// server's current boot); persisted before it returns. Other boots change nothing.
    pub fn record_started(
        &self,
        mac: MacAddr,
        boot_id: lm_api::BootId,
    ) -> Result<(), InventoryError> {
        self.transact("lm", |w| {
            let mut rec = w
                .server(mac)
                .ok_or_else(|| InventoryError::NotFound(mac.to_string()))?;
            if rec.state.boot_id() == Some(boot_id) && rec.started_boot != Some(boot_id) {
                rec.started_boot = Some(boot_id);
                w.put_server(rec);
            }
            Ok(())
        })
    }

    /// Whether the server's current boot started the tenant OS (so only a power cycle brings
    /// an agent back), and the target to cycle.
    pub fn needs_power_cycle(&self, mac: MacAddr) -> Option<crate::power::PowerTarget> {
        let r = self.get(mac)?;
        let b = r.state.boot_id()?;
        (r.started_boot == Some(b)).then(|| crate::power::PowerTarget {
            name: r.name.clone(),
            mac: r.mac,
            wol_password: r.wol_password,
        })
    }

    /// Appends the outcome of a power cycle to the audit log.
    pub fn audit_power_cycle(
        &self,
        mac: MacAddr,
        result: Result<(), String>,
    ) -> Result<(), InventoryError> {
        self.transact("lm", |w| {
            let rec = w
                .server(mac)
                .ok_or_else(|| InventoryError::NotFound(mac.to_string()))?;
            let (action, detail) = match result {
                Ok(()) => (
                    "server.power-cycled",
                    "released while its tenant OS ran: power-cycled into the agent for the wipe"
                        .to_string(),
                ),
                Err(e) => ("server.power-cycle-failed", e),
            };
            w.audit(action, rec.lease, Some(&rec.name), None, detail);
            Ok(())
        })
    }

    /// Stores the facts of an agent hello (persisted before it returns).
    pub fn set_facts(&self, mac: MacAddr, facts: HardwareFacts) -> Result<(), InventoryError> {
        self.transact("lm", |w| {
            let mut rec = w
                .server(mac)
                .ok_or_else(|| InventoryError::NotFound(mac.to_string()))?;
            rec.facts = Some(facts);
            w.put_server(rec);
            Ok(())
        })
    }

    /// Appends to the server's timeline, stamped now and with its current boot attempt.
    /// Unknown MACs are ignored (the caller already logged them).
    pub fn record(&self, mac: MacAddr, kind: EventKind) {
        let Some(rec) = self.get(mac) else { return };
        let entry = TimelineEntry {
            at_ms: self.clock.now_ms(),
            boot_id: rec.state.boot_id(),
            kind,
        };
        if let Err(e) = self.store.append_timeline(mac, &entry) {
            tracing::error!(mac = %mac, error = %e, "cannot append to the timeline");
        }
    }

    /// All servers, sorted by name.
    pub fn list(&self) -> Vec<ServerView> {
        let mut v: Vec<_> = self
            .read()
            .servers
            .values()
            .map(|r| view(r, vec![]))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// One server with the timeline of its current (or last) boot attempt.
    pub fn show(&self, key: &str) -> Result<ServerView, InventoryError> {
        let rec = self.find(key)?;
        let all = self.store.timeline(rec.mac)?;
        let last_boot = rec
            .state
            .boot_id()
            .or_else(|| all.iter().rev().find_map(|e| e.boot_id));
        let timeline = match last_boot {
            Some(b) => all.into_iter().filter(|e| e.boot_id == Some(b)).collect(),
            None => all,
        };
        Ok(view(&rec, timeline))
    }

    /// A lease as the API shows it.
    pub fn lease_view(&self, id: LeaseId) -> Option<LeaseView> {
        let l = self.read();
        l.leases.get(&id).map(|r| lease_view(&l, r))
    }

    /// Leases, newest first; only `tenant`'s when given.
    pub fn leases(&self, tenant: Option<&Name>) -> Vec<LeaseView> {
        let l = self.read();
        let mut v: Vec<_> = l
            .leases
            .values()
            .filter(|r| tenant.is_none_or(|t| &r.tenant == t))
            .map(|r| lease_view(&l, r))
            .collect();
        v.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(a.id.cmp(&b.id)));
        v
    }

    /// Makes the timeline durable (called periodically and at shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.store.flush()
    }
}

/// A lease record as the API shows it.
pub fn lease_view(l: &Ledger, r: &LeaseRecord) -> LeaseView {
    LeaseView {
        id: r.id,
        tenant: r.tenant.clone(),
        state: r.state,
        reason: r.reason.clone(),
        count: r.count,
        waiting: r.waiting,
        servers: r
            .servers
            .iter()
            .filter_map(|m| l.servers.get(m))
            .map(|s| LeaseServer {
                name: s.name.clone(),
                mac: s.mac,
                state: s.state.name().to_string(),
                cert_serial: s.cert_serial.clone(),
            })
            .collect(),
        tunnel: r.tunnel,
        role: r.role.clone(),
        image: r.image.clone(),
        gateway: r.gateway.clone(),
        created_ms: r.created_ms,
        starts_ms: r.starts_ms,
        ends_ms: r.ends_ms,
        ended_ms: r.ended_ms,
        renewals: r.renewals,
    }
}

fn view(r: &ServerRecord, timeline: Vec<TimelineEntry>) -> ServerView {
    ServerView {
        name: r.name.clone(),
        mac: r.mac,
        reserved_ip: r.reserved_ip,
        state: r.state.clone(),
        lease: r.lease,
        since_ms: r.since_ms,
        facts: r.facts.clone(),
        timeline,
    }
}

impl BootDirectory for Inventory {
    fn script_args(&self, mac: MacAddr, host: &mut HostBoot) -> Vec<String> {
        let Some(rec) = self.get(mac) else {
            return Vec::new();
        };
        // The firmware asks for its script after the agent was up: the server rebooted (its
        // tenant OS rebooted, or it was power-cycled for the wipe). A new boot attempt.
        if matches!(
            rec.state,
            ServerState::Tunneling { .. }
                | ServerState::Transferring { .. }
                | ServerState::Running { .. }
                | ServerState::Releasing { boot_id: Some(_) }
                | ServerState::Wiping { .. }
        ) {
            let boot_id = lm_api::BootId::from_random(rand::random());
            match self.apply(mac, &Input::Rebooted { boot_id }) {
                Ok(Some(state)) => {
                    tracing::info!(%mac, server = %rec.name, %boot_id, state = state.name(),
                        "the server rebooted: a new boot attempt");
                    host.boot_id = boot_id;
                }
                Ok(None) => {}
                Err(e) => tracing::error!(%mac, error = %e, "cannot record the reboot"),
            }
        }
        let Some(lease) = rec.lease else {
            return Vec::new();
        };
        let previous = rec
            .token_key
            .as_deref()
            .and_then(|k| self.store.token(k).ok().flatten());
        let ttl = self.token_ttl_s.load(std::sync::atomic::Ordering::Relaxed);
        match self.transact("lm", |w| {
            Ok::<_, InventoryError>(enroll::mint(w, mac, previous, ttl))
        }) {
            Ok(Some(token)) => vec![format!("lm.lease={lease}"), format!("lm.token={token}")],
            // Not enrolling (for example released while it booted): the agent comes up
            // without a lease, and its first heartbeat tells it to wipe and power off.
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::error!(%mac, error = %e, "cannot mint an enrollment token");
                Vec::new()
            }
        }
    }

    fn lookup(&self, mac: MacAddr) -> Gate {
        let l = self.read();
        let Some(r) = l.servers.get(&mac) else {
            return Gate::Unknown;
        };
        match (&r.state, r.state.boot_id()) {
            (s, Some(boot_id)) if fsm::gate_open(s) => Gate::Open(HostBoot {
                name: r.name.clone(),
                reserved_ip: r.reserved_ip,
                boot_id,
            }),
            (s, _) => Gate::Closed {
                name: r.name.clone(),
                reason: format!("{}: not woken by the Lease Manager", s.name()),
            },
        }
    }
}

#[path = "inventory_shared.rs"]
mod shared;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use lm_api::BootId;

    fn inv(dir: &std::path::Path) -> Inventory {
        Inventory::load(
            Store::reopen(dir).unwrap(),
            Arc::new(ManualClock::new(1_000)),
        )
        .unwrap()
    }

    fn add(i: &Inventory, name: &str, last: u8) -> Result<ServerView, InventoryError> {
        i.add(
            "test",
            AddServer {
                name: name.into(),
                mac: MacAddr([0x52, 0x54, 0, 0, 0, last]),
                reserved_ip: Some(std::net::Ipv4Addr::new(10, 77, 0, last)),
                wol_password: None,
            },
        )
    }

    #[test]
    fn leases_and_their_servers_survive_a_restart() {
        use crate::ledger::TenantRecord;
        use crate::ledger::leases::{self, Limits};
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let i = inv(dir.path());
            for n in 1..=3 {
                add(&i, &format!("s{n}"), n).unwrap();
            }
            let acme: lm_api::Name = "acme".parse().unwrap();
            i.transact("test", |w| {
                w.put_tenant(TenantRecord {
                    name: acme.clone(),
                    created_ms: 0,
                    cert_serial: "1".into(),
                    cert_not_after_ms: u64::MAX,
                    removed: false,
                });
                let req = lm_api::CreateLease {
                    count: 2,
                    duration_s: 3600,
                    allow_partial: false,
                    queue: false,
                    tunnel: lm_api::Tunnel::Wireguard,
                    role: None,
                    image: None,
                    gateway: None,
                };
                leases::create(w, &acme, &req, Limits::default()).map_err(InventoryError::from)
            })
            .unwrap()
            .id
        };
        let i = inv(dir.path());
        let v = i.lease_view(id).unwrap();
        let names: Vec<_> = v.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["s1", "s2"]);
        assert!(v.servers.iter().all(|s| s.state == "waking"));
        i.with_ledger(|l| l.check()).unwrap();
        assert_eq!(
            i.get(MacAddr([0x52, 0x54, 0, 0, 0, 3])).unwrap().lease,
            None
        );
    }

    #[test]
    fn gate_follows_the_state_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mac = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
        {
            let i = inv(dir.path());
            add(&i, "a", 1).unwrap();
            assert_eq!(i.lookup(MacAddr([2, 0, 0, 0, 0, 9])), Gate::Unknown);
            assert!(
                matches!(i.lookup(mac), Gate::Closed { ref reason, .. } if reason.contains("not woken"))
            );
            i.apply(
                mac,
                &Input::Wake {
                    boot_id: BootId::from_random(7),
                },
            )
            .unwrap();
            match i.lookup(mac) {
                Gate::Open(h) => {
                    assert_eq!(h.boot_id, BootId::from_random(7));
                    assert_eq!(h.reserved_ip, Some(std::net::Ipv4Addr::new(10, 77, 0, 1)));
                }
                g => panic!("{g:?}"),
            }
        }
        // The waking state was persisted before it became visible.
        let i = inv(dir.path());
        assert!(matches!(i.lookup(mac), Gate::Open(_)));
        assert!(
            matches!(i.remove("test", "a"), Err(InventoryError::Refused { .. })),
            "removing a booting server"
        );
        i.apply(mac, &Input::Reset).unwrap();
        i.remove("test", "a").unwrap();
        assert_eq!(i.lookup(mac), Gate::Unknown);
    }

    #[test]
    fn duplicates_and_bad_input_are_refused_with_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let i = inv(dir.path());
        add(&i, "a", 1).unwrap();
        let e = add(&i, "a", 2).unwrap_err().to_string();
        assert!(e.contains("name a"), "{e}");
        let e = add(&i, "b", 1).unwrap_err().to_string();
        assert!(e.contains("MAC"), "{e}");
        let e = i
            .add(
                "test",
                AddServer {
                    name: "c".into(),
                    mac: MacAddr([0x52, 0x54, 0, 0, 0, 3]),
                    reserved_ip: Some(std::net::Ipv4Addr::new(10, 77, 0, 1)),
                    wol_password: None,
                },
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("reserved address"), "{e}");
        for bad in ["", "-x", "a b", "ü", &"x".repeat(64)] {
            assert!(
                matches!(
                    add(&i, bad, 9),
                    Err(InventoryError::Invalid { field: "name", .. })
                ),
                "{bad:?}"
            );
        }
        let e = i
            .add(
                "test",
                AddServer {
                    name: "m".into(),
                    mac: MacAddr([1, 0, 0, 0, 0, 1]),
                    reserved_ip: None,
                    wol_password: None,
                },
            )
            .unwrap_err();
        assert!(matches!(e, InventoryError::Invalid { field: "mac", .. }));
        assert_eq!(i.list().len(), 1);
    }

    #[test]
    fn timeline_entries_carry_the_current_boot() {
        let dir = tempfile::tempdir().unwrap();
        let i = inv(dir.path());
        add(&i, "a", 1).unwrap();
        let mac = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
        i.apply(
            mac,
            &Input::Wake {
                boot_id: BootId::from_random(1),
            },
        )
        .unwrap();
        i.record(
            mac,
            EventKind::TftpFetch {
                file: "x".into(),
                bytes: 1,
                ok: true,
            },
        );
        i.apply(mac, &Input::Reset).unwrap();
        i.apply(
            mac,
            &Input::Wake {
                boot_id: BootId::from_random(2),
            },
        )
        .unwrap();
        i.record(
            mac,
            EventKind::TftpFetch {
                file: "y".into(),
                bytes: 1,
                ok: true,
            },
        );
        let v = i.show("a").unwrap();
        // `show` gives the current boot's timeline only.
        assert_eq!(v.timeline.len(), 1);
        assert_eq!(v.timeline[0].boot_id, Some(BootId::from_random(2)));
    }
}
