//! Leases as stored, and the persistence contract with the Lease Manager.
//!
//! [`LeaseStore`] is what the server shell writes leases through before it lets an ACK out:
//! `put`/`remove` stage changes and `flush` makes them durable (the LM implements it on sled:
//! insert/remove, then fsync). [`MemoryLeaseStore`] is the shared fake for tests: it separates
//! staged from durable state and can be told to fail. Pure apart from the in-memory fake.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use lm_api::MacAddr;
use serde::{Deserialize, Serialize};

/// What an address is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseState {
    /// ACKed to `mac` until `expires_at`.
    Bound,
    /// `mac` DECLINEd it (someone else answers ARP for it): kept out of the pool until
    /// `expires_at`, owned by nobody.
    Declined,
}

/// One lease, keyed by address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The client (or, for [`LeaseState::Declined`], the client that declined it).
    pub mac: MacAddr,
    /// The address.
    pub address: Ipv4Addr,
    /// Unix seconds after which the address is free again.
    pub expires_at: u64,
    /// Bound or declined.
    pub state: LeaseState,
    /// Option 12 of the client, sanitized, if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Option 61 of the client as lowercase hex, if it sent one (informational: leases are
    /// keyed by MAC so the PXE ROM, iPXE and the agent share one address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl Lease {
    /// True while the lease still holds its address.
    pub fn is_active(&self, now: u64) -> bool {
        now < self.expires_at
    }

    /// True if the lease is bound to `mac` and not expired.
    pub fn is_bound_to(&self, mac: MacAddr, now: u64) -> bool {
        self.state == LeaseState::Bound && self.mac == mac && self.is_active(now)
    }
}

/// Which store operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// `load_all`.
    Load,
    /// `put`.
    Put,
    /// `remove`.
    Remove,
    /// `flush`.
    Flush,
}

impl fmt::Display for StoreOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Load => "load",
            Self::Put => "put",
            Self::Remove => "remove",
            Self::Flush => "flush",
        })
    }
}

/// A lease store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (disk full, I/O error, ...).
    #[error("lease store {op} failed{}: {source}", at(.address))]
    Backend {
        /// The operation.
        op: StoreOp,
        /// The lease address concerned, if any.
        address: Option<Ipv4Addr>,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored record does not decode.
    #[error("stored lease{} is corrupt: {detail}", at(.address))]
    Corrupt {
        /// The key of the record, if it is an address.
        address: Option<Ipv4Addr>,
        /// What is wrong.
        detail: String,
    },
}

fn at(address: &Option<Ipv4Addr>) -> String {
    address.map(|a| format!(" for {a}")).unwrap_or_default()
}

/// Durable lease storage. Object-safe; implementations must not block for long (the server
/// calls it from its receive loop, once per batch).
pub trait LeaseStore: Send + Sync {
    /// Every stored lease (at start).
    fn load_all(&self) -> Result<Vec<Lease>, StoreError>;
    /// Stores (inserts or replaces) the lease at `lease.address`.
    fn put(&self, lease: &Lease) -> Result<(), StoreError>;
    /// Forgets the lease at `addr` (no error if there is none).
    fn remove(&self, addr: Ipv4Addr) -> Result<(), StoreError>;
    /// Makes every earlier `put`/`remove` durable.
    fn flush(&self) -> Result<(), StoreError>;
}

#[derive(Debug, Default)]
struct MemoryState {
    staged: BTreeMap<Ipv4Addr, Option<Lease>>,
    durable: BTreeMap<Ipv4Addr, Lease>,
}

/// An in-memory [`LeaseStore`] for tests: `put`/`remove` are staged and become visible in
/// [`durable`](Self::durable) (and `load_all`) only after `flush`, like a write-ahead store.
/// [`fail_puts`](Self::fail_puts) and [`fail_flushes`](Self::fail_flushes) make it fail.
#[derive(Debug, Default)]
pub struct MemoryLeaseStore {
    state: Mutex<MemoryState>,
    fail_puts: AtomicBool,
    fail_flushes: AtomicBool,
    flushes: AtomicU64,
}

/// The error a failing [`MemoryLeaseStore`] reports.
#[derive(Debug, thiserror::Error)]
#[error("injected failure (MemoryLeaseStore)")]
pub struct InjectedFailure;

impl MemoryLeaseStore {
    /// A store holding `leases` durably.
    pub fn with_leases(leases: impl IntoIterator<Item = Lease>) -> Self {
        let store = Self::default();
        store.lock().durable = leases.into_iter().map(|l| (l.address, l)).collect();
        store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `put` and `remove` fail (or work again).
    pub fn fail_puts(&self, fail: bool) {
        self.fail_puts.store(fail, Ordering::SeqCst);
    }

    /// Makes `flush` fail (or work again); a failed flush drops the staged changes.
    pub fn fail_flushes(&self, fail: bool) {
        self.fail_flushes.store(fail, Ordering::SeqCst);
    }

    /// The leases that survived the last successful flush.
    pub fn durable(&self) -> BTreeMap<Ipv4Addr, Lease> {
        self.lock().durable.clone()
    }

    /// Number of successful flushes so far.
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::SeqCst)
    }

    fn check(&self, op: StoreOp, address: Option<Ipv4Addr>) -> Result<(), StoreError> {
        let flag = if op == StoreOp::Flush {
            &self.fail_flushes
        } else {
            &self.fail_puts
        };
        if flag.load(Ordering::SeqCst) {
            return Err(StoreError::Backend {
                op,
                address,
                source: Box::new(InjectedFailure),
            });
        }
        Ok(())
    }
}

impl LeaseStore for MemoryLeaseStore {
    fn load_all(&self) -> Result<Vec<Lease>, StoreError> {
        Ok(self.lock().durable.values().cloned().collect())
    }

    fn put(&self, lease: &Lease) -> Result<(), StoreError> {
        self.check(StoreOp::Put, Some(lease.address))?;
        self.lock()
            .staged
            .insert(lease.address, Some(lease.clone()));
        Ok(())
    }

    fn remove(&self, addr: Ipv4Addr) -> Result<(), StoreError> {
        self.check(StoreOp::Remove, Some(addr))?;
        self.lock().staged.insert(addr, None);
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let failed = self.check(StoreOp::Flush, None);
        let mut st = self.lock();
        let staged = std::mem::take(&mut st.staged);
        failed?;
        for (addr, lease) in staged {
            match lease {
                Some(l) => st.durable.insert(addr, l),
                None => st.durable.remove(&addr),
            };
        }
        drop(st);
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(last: u8) -> Lease {
        Lease {
            mac: MacAddr([2, 0, 0, 0, 0, last]),
            address: Ipv4Addr::new(10, 77, 0, last),
            expires_at: 100,
            state: LeaseState::Bound,
            hostname: None,
            client_id: None,
        }
    }

    #[test]
    fn lease_golden_json() {
        let mut l = lease(7);
        l.hostname = Some("vm7".into());
        let j = serde_json::to_string(&l).unwrap();
        assert_eq!(
            j,
            r#"{"mac":"02:00:00:00:00:07","address":"10.77.0.7","expires_at":100,"state":"bound","hostname":"vm7"}"#
        );
        assert_eq!(serde_json::from_str::<Lease>(&j).unwrap(), l);
    }

    #[test]
    fn only_flushed_changes_are_durable() {
        let s = MemoryLeaseStore::default();
        s.put(&lease(1)).unwrap();
        assert!(s.durable().is_empty());
        s.flush().unwrap();
        assert_eq!(s.load_all().unwrap(), vec![lease(1)]);
        s.remove(lease(1).address).unwrap();
        s.fail_flushes(true);
        let e = s.flush().unwrap_err();
        assert!(e.to_string().contains("flush failed"), "{e}");
        assert_eq!(
            s.durable().len(),
            1,
            "a failed flush must not apply the removal"
        );
        s.fail_flushes(false);
        s.flush().unwrap();
        assert_eq!(
            s.durable().len(),
            1,
            "the failed batch was dropped, not replayed"
        );
        assert_eq!(s.flush_count(), 2);
    }

    #[test]
    fn failing_puts_name_the_address() {
        let s = MemoryLeaseStore::default();
        s.fail_puts(true);
        let e = s.put(&lease(9)).unwrap_err();
        assert!(e.to_string().contains("put failed for 10.77.0.9"), "{e}");
        let store: &dyn LeaseStore = &s;
        assert!(store.remove(lease(9).address).is_err());
    }

    #[test]
    fn activity_and_binding() {
        let l = lease(3);
        assert!(l.is_bound_to(l.mac, 99));
        assert!(!l.is_bound_to(l.mac, 100));
        assert!(!l.is_bound_to(MacAddr([2, 0, 0, 0, 0, 4]), 50));
    }
}
