//! The organizer's record of the leases it asked for: the tenant's approval list. A lease is
//! approved while it is in the record and this organizer has not released it. The gateway
//! reads the record at every decision; `request` writes it (durably) before it prints the
//! LM's answer, `release` marks a lease released before it asks the LM.
//!
//! File: `<state_dir>/leases.json` (JSON, mode 0600, replaced atomically), guarded by an
//! exclusive `flock` on `<state_dir>/leases.lock` while a command changes it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use lm_api::{LeaseId, Tunnel};
use serde::{Deserialize, Serialize};

use crate::files;

/// Largest record file read.
const MAX_RECORD_LEN: usize = 16 * 1024 * 1024;
/// The record format's version.
const VERSION: u32 = 1;

/// One lease the organizer asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedLease {
    pub id: LeaseId,
    /// Unix ms when the LM granted the request.
    pub requested_ms: u64,
    pub count: u32,
    pub duration_s: u64,
    pub tunnel: Tunnel,
    pub role: Option<String>,
    /// The sealed image the lease names (its id).
    pub image: Option<String>,
    /// Unix ms when this organizer released it (approval ends there).
    pub released_ms: Option<u64>,
}

/// The whole record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub version: u32,
    pub leases: BTreeMap<LeaseId, RequestedLease>,
}

/// Why a lease is not approved by the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotApproved {
    /// This organizer never asked for it.
    Unknown,
    /// This organizer released it.
    Released,
}

impl Record {
    /// The lease if it is approved: requested here and not released.
    pub fn approved(&self, id: LeaseId) -> Result<&RequestedLease, NotApproved> {
        match self.leases.get(&id) {
            None => Err(NotApproved::Unknown),
            Some(l) if l.released_ms.is_some() => Err(NotApproved::Released),
            Some(l) => Ok(l),
        }
    }

    /// Adds a granted lease.
    pub fn add(&mut self, lease: RequestedLease) {
        self.leases.insert(lease.id, lease);
    }

    /// Marks a lease released at `now_ms`; false if it is not in the record.
    pub fn mark_released(&mut self, id: LeaseId, now_ms: u64) -> bool {
        match self.leases.get_mut(&id) {
            Some(l) => {
                l.released_ms.get_or_insert(now_ms);
                true
            }
            None => false,
        }
    }

    /// Parses the file's bytes.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> anyhow::Result<Self> {
        if bytes.len() > MAX_RECORD_LEN {
            anyhow::bail!(
                "{} is {} bytes, larger than {MAX_RECORD_LEN}: not a lease record",
                path.display(),
                bytes.len()
            );
        }
        let r: Record = serde_json::from_slice(bytes).with_context(|| {
            format!(
                "{} is not a lease record; restore it from a backup (it is the tenant's approval list)",
                path.display()
            )
        })?;
        if r.version != VERSION {
            anyhow::bail!(
                "{} is a lease record of version {}, this build reads version {VERSION}",
                path.display(),
                r.version
            );
        }
        if let Some((k, l)) = r.leases.iter().find(|(k, l)| **k != l.id) {
            anyhow::bail!("{}: entry {k} holds lease {}", path.display(), l.id);
        }
        Ok(r)
    }
}

/// The record's files in a state folder.
#[derive(Debug, Clone)]
pub struct RecordFile {
    path: PathBuf,
    lock: PathBuf,
}

/// An exclusive hold on the record while a command changes it (the lock goes with the file
/// descriptor when this is dropped).
#[derive(Debug)]
pub struct RecordLock {
    _file: File,
}

impl RecordFile {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join("leases.json"),
            lock: state_dir.join("leases.lock"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The record (empty when the file does not exist yet).
    pub fn load(&self) -> anyhow::Result<Record> {
        match files::read_optional(&self.path)? {
            Some(b) => Record::from_bytes(&b, &self.path),
            None => Ok(Record {
                version: VERSION,
                leases: BTreeMap::new(),
            }),
        }
    }

    /// Waits for the exclusive lock.
    pub fn lock(&self) -> anyhow::Result<RecordLock> {
        if let Some(dir) = self.lock.parent() {
            files::private_dir(dir)?;
        }
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&self.lock)
            .with_context(|| format!("cannot open the lock file {}", self.lock.display()))?;
        // SAFETY: flock(2) on a file descriptor this function owns for the call's duration.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot lock {}", self.lock.display()));
        }
        Ok(RecordLock { _file: f })
    }

    /// Loads, changes and durably writes the record under the lock.
    pub fn update<T>(&self, change: impl FnOnce(&mut Record) -> T) -> anyhow::Result<T> {
        let _held = self.lock()?;
        let mut r = self.load()?;
        let out = change(&mut r);
        r.version = VERSION;
        let bytes = serde_json::to_vec_pretty(&r).context("encoding the lease record")?;
        files::replace_private(&self.path, &bytes)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(bits: u64) -> RequestedLease {
        RequestedLease {
            id: LeaseId::from_random(bits),
            requested_ms: 1,
            count: 2,
            duration_s: 3600,
            tunnel: Tunnel::Wireguard,
            role: Some("web".into()),
            image: Some("ab".repeat(16)),
            released_ms: None,
        }
    }

    #[test]
    fn approval_follows_the_record() {
        let mut r = Record::default();
        let id = LeaseId::from_random(1);
        assert_eq!(r.approved(id), Err(NotApproved::Unknown));
        r.add(lease(1));
        assert!(r.approved(id).is_ok());
        assert!(r.mark_released(id, 5));
        assert_eq!(r.approved(id), Err(NotApproved::Released));
        assert!(r.mark_released(id, 9));
        assert_eq!(
            r.leases[&id].released_ms,
            Some(5),
            "the first release time stays"
        );
        assert!(!r.mark_released(LeaseId::from_random(2), 5));
    }

    #[test]
    fn survives_a_round_trip_and_refuses_garbage() {
        let d = tempfile::tempdir().unwrap();
        let f = RecordFile::new(d.path());
        assert!(f.load().unwrap().leases.is_empty());
        f.update(|r| r.add(lease(7))).unwrap();
        f.update(|r| r.add(lease(8))).unwrap();
        let r = f.load().unwrap();
        assert_eq!(r.leases.len(), 2);
        assert_eq!(r.leases[&LeaseId::from_random(7)], lease(7));
        for bad in [
            &b"{"[..],
            br#"{"version":2,"leases":{}}"#,
            br#"{"version":1,"leases":{},"x":1}"#,
            br#"{"version":1,"leases":{"l-0000000000000001":{"id":"l-0000000000000002","requested_ms":1,"count":1,"duration_s":1,"tunnel":"wireguard","role":null,"image":null,"released_ms":null}}}"#,
        ] {
            std::fs::write(f.path(), bad).unwrap();
            let e = format!("{:#}", f.load().unwrap_err());
            assert!(e.contains("leases.json"), "{e}");
        }
    }
}
