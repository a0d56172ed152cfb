//! Durable state of the Lease Manager on sled (the only crate that touches sled).
//!
//! Trees: `servers` (MAC -> [`ServerRecord`] JSON), `timeline` (MAC ++ sequence -> entry JSON),
//! `dhcp_leases` (IPv4 -> lease JSON, written by the DHCP server through [`crate::dhcp_store`]),
//! and the ledger's trees (leases, tenants, tokens, revoked, audit, meta: see
//! [`crate::store_ledger`]).
//! Every mutation that a caller acknowledges is flushed first (persist, then reply).

use std::path::{Path, PathBuf};

use lm_api::{MacAddr, TimelineEntry};

/// What the store failed at.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the Lease Manager database at {path}: {source} (is another lease-manager using this state_dir?)"
    )]
    Open { path: PathBuf, source: sled::Error },
    #[error("database {op} failed: {source}")]
    Db {
        op: &'static str,
        source: sled::Error,
    },
    #[error("corrupt {what} record in the database: {source}")]
    Corrupt {
        what: &'static str,
        source: serde_json::Error,
    },
}

pub use crate::ledger::ServerRecord;

/// Most timeline entries kept per server; older ones are dropped (a machine stuck PXE-booting
/// while idle would otherwise grow its timeline forever).
pub const TIMELINE_MAX: usize = 2000;
/// The timeline of the server just appended to is trimmed about once per this many appends.
const TRIM_EVERY: u64 = 64;

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) db: sled::Db,
    pub(crate) servers: sled::Tree,
    timeline: sled::Tree,
    leases: sled::Tree,
    pub(crate) ledger: crate::store_ledger::LedgerTrees,
}

pub(crate) fn db_err(op: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |source| StoreError::Db { op, source }
}

impl Store {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|source| StoreError::Open {
                path: dir.to_path_buf(),
                source,
            })?;
        let servers = db.open_tree("servers").map_err(db_err("open servers"))?;
        let timeline = db.open_tree("timeline").map_err(db_err("open timeline"))?;
        let leases = db
            .open_tree("dhcp_leases")
            .map_err(db_err("open dhcp_leases"))?;
        let ledger = crate::store_ledger::LedgerTrees::open(&db)?;
        Ok(Self {
            db,
            servers,
            timeline,
            leases,
            ledger,
        })
    }

    /// Opens `dir` again after a handle to it was dropped in this process. sled's
    /// background flusher thread keeps its own reference to the database for a moment after
    /// the last handle goes, so the file lock can outlive the drop; this waits (up to 10 s)
    /// for it. Tests only: a daemon opens its store once per process.
    #[cfg(test)]
    pub(crate) fn reopen(dir: &Path) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Self::open(dir) {
                Err(StoreError::Open { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => return r,
            }
        }
    }

    /// Makes every write so far durable (fsync).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(db_err("flush"))
    }

    /// All servers.
    pub fn servers(&self) -> Result<Vec<ServerRecord>, StoreError> {
        self.servers
            .iter()
            .map(|kv| {
                let (_, v) = kv.map_err(db_err("read servers"))?;
                serde_json::from_slice(&v).map_err(|source| StoreError::Corrupt {
                    what: "server",
                    source,
                })
            })
            .collect()
    }

    /// Writes a server record and flushes.
    pub fn put_server(&self, rec: &ServerRecord) -> Result<(), StoreError> {
        let v = serde_json::to_vec(rec).map_err(|source| StoreError::Corrupt {
            what: "server",
            source,
        })?;
        self.servers
            .insert(rec.mac.octets(), v)
            .map_err(db_err("write server"))?;
        self.flush()
    }

    /// Removes a server and its timeline, then flushes.
    pub fn remove_server(&self, mac: MacAddr) -> Result<(), StoreError> {
        self.servers
            .remove(mac.octets())
            .map_err(db_err("remove server"))?;
        for kv in self.timeline.scan_prefix(mac.octets()) {
            let (k, _) = kv.map_err(db_err("scan timeline"))?;
            self.timeline.remove(k).map_err(db_err("remove timeline"))?;
        }
        self.flush()
    }

    /// Appends a timeline entry (flushed with the next state change or by the periodic flush).
    pub fn append_timeline(&self, mac: MacAddr, entry: &TimelineEntry) -> Result<(), StoreError> {
        let seq = self.db.generate_id().map_err(db_err("generate id"))?;
        let mut key = Vec::with_capacity(14);
        key.extend_from_slice(&mac.octets());
        key.extend_from_slice(&seq.to_be_bytes());
        let v = serde_json::to_vec(entry).map_err(|source| StoreError::Corrupt {
            what: "timeline",
            source,
        })?;
        self.timeline
            .insert(key, v)
            .map_err(db_err("write timeline"))?;
        if seq % TRIM_EVERY == 0 {
            self.trim_timeline(mac, TIMELINE_MAX)?;
        }
        Ok(())
    }

    /// Drops the oldest entries of `mac`'s timeline beyond `keep`.
    pub(crate) fn trim_timeline(&self, mac: MacAddr, keep: usize) -> Result<(), StoreError> {
        let keys: Vec<sled::IVec> = self
            .timeline
            .scan_prefix(mac.octets())
            .keys()
            .collect::<Result<_, _>>()
            .map_err(db_err("scan timeline"))?;
        for k in keys.iter().take(keys.len().saturating_sub(keep)) {
            self.timeline.remove(k).map_err(db_err("trim timeline"))?;
        }
        Ok(())
    }

    /// The timeline of one server, oldest first.
    pub fn timeline(&self, mac: MacAddr) -> Result<Vec<TimelineEntry>, StoreError> {
        self.timeline
            .scan_prefix(mac.octets())
            .map(|kv| {
                let (_, v) = kv.map_err(db_err("read timeline"))?;
                serde_json::from_slice(&v).map_err(|source| StoreError::Corrupt {
                    what: "timeline",
                    source,
                })
            })
            .collect()
    }

    /// The DHCP lease tree, for [`crate::dhcp_store::SledLeaseStore`].
    pub(crate) fn lease_tree(&self) -> &sled::Tree {
        &self.leases
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lm_api::{EventKind, ServerState};

    fn rec(name: &str, last: u8) -> ServerRecord {
        ServerRecord {
            name: name.into(),
            mac: MacAddr([0x52, 0x54, 0, 0, 0, last]),
            reserved_ip: None,
            wol_password: None,
            state: ServerState::Idle,
            since_ms: 1,
            facts: None,
            lease: None,
            cert_serial: None,
            token_key: None,
            started_boot: None,
        }
    }

    #[test]
    fn servers_and_timelines_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.put_server(&rec("a", 1)).unwrap();
            s.put_server(&rec("b", 2)).unwrap();
            for i in 0..3 {
                let e = TimelineEntry {
                    at_ms: i,
                    boot_id: None,
                    kind: EventKind::TftpFetch {
                        file: format!("f{i}"),
                        bytes: i,
                        ok: true,
                    },
                };
                s.append_timeline(MacAddr([0x52, 0x54, 0, 0, 0, 1]), &e)
                    .unwrap();
            }
            s.flush().unwrap();
        }
        let s = Store::reopen(dir.path()).unwrap();
        let names: Vec<_> = s.servers().unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["a", "b"]);
        let t = s.timeline(MacAddr([0x52, 0x54, 0, 0, 0, 1])).unwrap();
        assert_eq!(t.iter().map(|e| e.at_ms).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(
            s.timeline(MacAddr([0x52, 0x54, 0, 0, 0, 2]))
                .unwrap()
                .is_empty()
        );
        s.remove_server(MacAddr([0x52, 0x54, 0, 0, 0, 1])).unwrap();
        assert!(
            s.timeline(MacAddr([0x52, 0x54, 0, 0, 0, 1]))
                .unwrap()
                .is_empty()
        );
        assert_eq!(s.servers().unwrap().len(), 1);
    }

    #[test]
    fn timelines_are_bounded_and_keep_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let (a, b) = (
            MacAddr([0x52, 0x54, 0, 0, 0, 1]),
            MacAddr([0x52, 0x54, 0, 0, 0, 2]),
        );
        let entry = |i: u64| TimelineEntry {
            at_ms: i,
            boot_id: None,
            kind: EventKind::TftpFetch {
                file: "f".into(),
                bytes: i,
                ok: true,
            },
        };
        s.append_timeline(b, &entry(0)).unwrap();
        for i in 0..(TIMELINE_MAX as u64 + 300) {
            s.append_timeline(a, &entry(i)).unwrap();
        }
        let t = s.timeline(a).unwrap();
        assert!(t.len() <= TIMELINE_MAX + TRIM_EVERY as usize, "{}", t.len());
        assert_eq!(
            t.last().unwrap().at_ms,
            TIMELINE_MAX as u64 + 299,
            "newest kept"
        );
        s.trim_timeline(a, 10).unwrap();
        let t = s.timeline(a).unwrap();
        assert_eq!(
            t.iter().map(|e| e.at_ms).collect::<Vec<_>>(),
            (TIMELINE_MAX as u64 + 290..TIMELINE_MAX as u64 + 300).collect::<Vec<_>>()
        );
        assert_eq!(s.timeline(b).unwrap().len(), 1, "other servers untouched");
    }

    #[test]
    fn second_open_of_the_same_dir_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let _s = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("another lease-manager"), "{err}");
    }
}
