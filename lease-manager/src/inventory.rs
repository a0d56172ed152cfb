//! The server inventory: the in-memory view the PXE services read on every packet (the
//! netboot gate), kept in step with the store. Every state change is persisted before it
//! becomes visible or is answered, then announced on a broadcast channel (wake supervisor,
//! console `watch`). IO: through [`Store`] only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use lm_api::{
    AddServer, EventKind, HardwareFacts, MacAddr, ServerState, ServerView, TimelineEntry,
};
use pxe::{BootDirectory, Gate, HostBoot};
use tokio::sync::broadcast;

use crate::clock::Clock;
use crate::fsm::{self, Input, Refusal};
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
    Store(#[from] StoreError),
}

/// A state change, as announced.
#[derive(Debug, Clone)]
pub struct StateChange {
    pub mac: MacAddr,
    pub state: ServerState,
}

#[derive(Debug, Default)]
struct Maps {
    by_mac: HashMap<MacAddr, ServerRecord>,
    by_name: HashMap<String, MacAddr>,
}

/// The inventory.
#[derive(Debug)]
pub struct Inventory {
    store: Store,
    clock: Arc<dyn Clock>,
    maps: RwLock<Maps>,
    writer: Mutex<()>,
    changes: broadcast::Sender<StateChange>,
}

fn valid_name(name: &str) -> Result<(), InventoryError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(InventoryError::Invalid {
            field: "name",
            reason: format!(
                "{name:?}: use 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit"
            ),
        })
    }
}

impl Inventory {
    /// Loads the inventory from the store.
    pub fn load(store: Store, clock: Arc<dyn Clock>) -> Result<Self, InventoryError> {
        let mut maps = Maps::default();
        for rec in store.servers()? {
            maps.by_name.insert(rec.name.clone(), rec.mac);
            maps.by_mac.insert(rec.mac, rec);
        }
        let (changes, _) = broadcast::channel(1024);
        Ok(Self {
            store,
            clock,
            maps: RwLock::new(maps),
            writer: Mutex::new(()),
            changes,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes to state changes.
    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.changes.subscribe()
    }

    /// The clock the inventory stamps with.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Looks a server up by name or MAC.
    pub fn find(&self, key: &str) -> Result<ServerRecord, InventoryError> {
        let maps = self.read();
        let mac = match key.parse::<MacAddr>() {
            Ok(m) => Some(m),
            Err(_) => maps.by_name.get(key).copied(),
        };
        mac.and_then(|m| maps.by_mac.get(&m).cloned())
            .ok_or_else(|| InventoryError::NotFound(key.to_string()))
    }

    /// The record of `mac`, if known.
    pub fn get(&self, mac: MacAddr) -> Option<ServerRecord> {
        self.read().by_mac.get(&mac).cloned()
    }

    /// Adds a server (idle). Persisted before it returns.
    pub fn add(&self, req: AddServer) -> Result<ServerView, InventoryError> {
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
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        {
            let maps = self.read();
            if let Some(m) = maps.by_name.get(&req.name) {
                return Err(InventoryError::Duplicate {
                    what: "name",
                    value: req.name,
                    existing: m.to_string(),
                });
            }
            if let Some(r) = maps.by_mac.get(&req.mac) {
                return Err(InventoryError::Duplicate {
                    what: "MAC",
                    value: req.mac.to_string(),
                    existing: r.name.clone(),
                });
            }
            if let Some(ip) = req.reserved_ip
                && let Some(r) = maps.by_mac.values().find(|r| r.reserved_ip == Some(ip))
            {
                return Err(InventoryError::Duplicate {
                    what: "reserved address",
                    value: ip.to_string(),
                    existing: r.name.clone(),
                });
            }
        }
        let rec = ServerRecord {
            name: req.name,
            mac: req.mac,
            reserved_ip: req.reserved_ip,
            wol_password: req.wol_password,
            state: ServerState::Idle,
            since_ms: self.clock.now_ms(),
            facts: None,
        };
        self.store.put_server(&rec)?;
        let mut maps = self.maps.write().unwrap_or_else(|p| p.into_inner());
        maps.by_name.insert(rec.name.clone(), rec.mac);
        maps.by_mac.insert(rec.mac, rec.clone());
        Ok(view(&rec, vec![]))
    }

    /// Removes a server; refused while it is booting (reset it first).
    pub fn remove(&self, key: &str) -> Result<ServerRecord, InventoryError> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let rec = self.find(key)?;
        if fsm::gate_open(&rec.state) {
            let boot_id = rec
                .state
                .boot_id()
                .unwrap_or(lm_api::BootId::from_random(0));
            return Err(InventoryError::Refused {
                name: rec.name.clone(),
                refusal: Refusal::Busy {
                    state: rec.state.name(),
                    boot_id,
                },
            });
        }
        self.store.remove_server(rec.mac)?;
        let mut maps = self.maps.write().unwrap_or_else(|p| p.into_inner());
        maps.by_name.remove(&rec.name);
        maps.by_mac.remove(&rec.mac);
        Ok(rec)
    }

    /// Applies a state-machine input; the new state is persisted before it is visible.
    pub fn apply(
        &self,
        mac: MacAddr,
        input: &Input,
    ) -> Result<Option<ServerState>, InventoryError> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut rec = self
            .get(mac)
            .ok_or_else(|| InventoryError::NotFound(mac.to_string()))?;
        let next = fsm::step(&rec.state, input).map_err(|refusal| InventoryError::Refused {
            name: rec.name.clone(),
            refusal,
        })?;
        let Some(state) = next else { return Ok(None) };
        tracing::info!(server = %rec.name, mac = %mac, from = rec.state.name(), to = state.name(), "server state");
        rec.state = state.clone();
        rec.since_ms = self.clock.now_ms();
        self.persist(rec)?;
        let _ = self.changes.send(StateChange {
            mac,
            state: state.clone(),
        });
        Ok(Some(state))
    }

    /// Stores the facts of an agent hello (persisted before it returns).
    pub fn set_facts(&self, mac: MacAddr, facts: HardwareFacts) -> Result<(), InventoryError> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut rec = self
            .get(mac)
            .ok_or_else(|| InventoryError::NotFound(mac.to_string()))?;
        rec.facts = Some(facts);
        self.persist(rec)
    }

    /// Writes a record (flushed) and only then makes it visible. Callers hold `writer`.
    fn persist(&self, rec: ServerRecord) -> Result<(), InventoryError> {
        self.store.put_server(&rec)?;
        self.maps
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .by_mac
            .insert(rec.mac, rec);
        Ok(())
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
            .by_mac
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

    /// Makes the timeline durable (called periodically and at shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.store.flush()
    }
}

fn view(r: &ServerRecord, timeline: Vec<TimelineEntry>) -> ServerView {
    ServerView {
        name: r.name.clone(),
        mac: r.mac,
        reserved_ip: r.reserved_ip,
        state: r.state.clone(),
        since_ms: r.since_ms,
        facts: r.facts.clone(),
        timeline,
    }
}

impl BootDirectory for Inventory {
    fn lookup(&self, mac: MacAddr) -> Gate {
        let maps = self.read();
        let Some(r) = maps.by_mac.get(&mac) else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use lm_api::BootId;

    fn inv(dir: &std::path::Path) -> Inventory {
        Inventory::load(Store::open(dir).unwrap(), Arc::new(ManualClock::new(1_000))).unwrap()
    }

    fn add(i: &Inventory, name: &str, last: u8) -> Result<ServerView, InventoryError> {
        i.add(AddServer {
            name: name.into(),
            mac: MacAddr([0x52, 0x54, 0, 0, 0, last]),
            reserved_ip: Some(std::net::Ipv4Addr::new(10, 77, 0, last)),
            wol_password: None,
        })
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
            matches!(i.remove("a"), Err(InventoryError::Refused { .. })),
            "removing a booting server"
        );
        i.apply(mac, &Input::Reset).unwrap();
        i.remove("a").unwrap();
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
            .add(AddServer {
                name: "c".into(),
                mac: MacAddr([0x52, 0x54, 0, 0, 0, 3]),
                reserved_ip: Some(std::net::Ipv4Addr::new(10, 77, 0, 1)),
                wol_password: None,
            })
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
            .add(AddServer {
                name: "m".into(),
                mac: MacAddr([1, 0, 0, 0, 0, 1]),
                reserved_ip: None,
                wol_password: None,
            })
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
