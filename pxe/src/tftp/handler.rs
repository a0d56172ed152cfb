//! [`ReadOnlyHandler`]: the policy of the appliance's TFTP server. Read requests are mapped
//! with [`map_path`](super::path::map_path), opened with
//! [`open_in_root`](super::path::open_in_root), and handed to the transfer with a
//! [`FetchReport`] that reports them; write requests are refused with an access violation.
//! Refusals are logged at warn with the client address and the reason.
//!
//! TFTP carries no MAC, so events are attributed with a `client_mac` lookup (the DHCP lease
//! table); an event is recorded only when the lookup knows the client. Does file IO (on the
//! transfer's thread), no socket IO.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lm_api::{BootEvent, EventKind, MacAddr};

use super::packet::ErrorCode;
use super::path::{OpenedFile, ResolveError, display_name, map_path, open_in_root};
use super::report::FetchReport;
use crate::gate::EventSink;

/// Looks up the MAC of a client address (the DHCP lease table provides it).
pub type ClientMac = Arc<dyn Fn(Ipv4Addr) -> Option<MacAddr> + Send + Sync>;

/// Bytes read from the file at a time (per transfer): a 1468-byte lock-step transfer makes
/// one `pread` per 178 blocks, and nothing is read before the first block is due.
const CHUNK: usize = 256 * 1024;

/// The bytes of one transfer: the open file, read a chunk at a time at the requested offset
/// (so retransmissions, which go back at most one window, read again what they need).
#[derive(Debug)]
pub struct FileData {
    file: File,
    len: u64,
    chunk: Vec<u8>,
    chunk_start: u64,
}

impl FileData {
    /// Serves the first `len` bytes of `file` (a file that grew after the stat is served as it
    /// was measured, which is what `tsize` said).
    pub fn new(file: File, len: u64) -> Self {
        Self {
            file,
            len,
            chunk: Vec::new(),
            chunk_start: 0,
        }
    }

    /// Fills `out` with the bytes at `offset`; reading past `len`, or a file that shrank since
    /// the open, is an error.
    pub fn read_at(&mut self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let end = offset
            .checked_add(out.len() as u64)
            .filter(|end| *end <= self.len)
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        let chunk_end = self.chunk_start + self.chunk.len() as u64;
        if offset < self.chunk_start || end > chunk_end {
            let want = (self.len - offset).min(CHUNK as u64).max(out.len() as u64);
            self.chunk.resize(want as usize, 0);
            self.chunk_start = offset;
            if let Err(e) = self.file.read_exact_at(&mut self.chunk, offset) {
                self.chunk.clear();
                return Err(e);
            }
        }
        let at = (offset - self.chunk_start) as usize;
        out.copy_from_slice(&self.chunk[at..at + out.len()]);
        Ok(())
    }
}

/// A read the handler accepted: the bytes, their length, and the report of its end.
#[derive(Debug)]
pub struct OpenedRead {
    /// The file's bytes.
    pub data: FileData,
    /// The length served (and answered as `tsize`).
    pub len: u64,
    /// Where the end of the transfer is reported.
    pub report: FetchReport,
}

/// A refused request: the ERROR packet to send. Already logged and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The TFTP error code.
    pub code: ErrorCode,
    /// Its message.
    pub message: &'static str,
}

const NOT_FOUND: Refusal = Refusal {
    code: ErrorCode::FileNotFound,
    message: "File not found",
};
const ACCESS: Refusal = Refusal {
    code: ErrorCode::AccessViolation,
    message: "Access violation",
};

/// A read-only handler serving regular files under one canonical root.
pub struct ReadOnlyHandler {
    root: PathBuf,
    sink: Arc<dyn EventSink>,
    client_mac: ClientMac,
}

impl std::fmt::Debug for ReadOnlyHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyHandler")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl ReadOnlyHandler {
    /// A handler for `canonical_root`, which must already be canonical (see
    /// [`std::fs::canonicalize`]; [`TftpService::bind`](super::TftpService::bind) does it).
    pub fn new(canonical_root: PathBuf, sink: Arc<dyn EventSink>, client_mac: ClientMac) -> Self {
        Self {
            root: canonical_root,
            sink,
            client_mac,
        }
    }

    /// The served root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The MAC the lookup gives for `client` (IPv4, or IPv4-mapped IPv6).
    pub fn mac_of(&self, client: &SocketAddr) -> Option<MacAddr> {
        let ip = match client.ip() {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(ip) => ip.to_ipv4_mapped(),
        };
        ip.and_then(|ip| (self.client_mac)(ip))
    }

    fn record_failure(&self, mac: Option<MacAddr>, file: String) {
        if let Some(mac) = mac {
            self.sink.record(BootEvent {
                mac,
                kind: EventKind::TftpFetch {
                    file,
                    bytes: 0,
                    ok: false,
                },
            });
        }
    }

    /// Maps and opens a read request (file IO: call it off any event loop).
    pub fn open_read(&self, client: &SocketAddr, requested: &Path) -> Result<OpenedRead, Refusal> {
        let mac = self.mac_of(client);
        let shown = display_name(requested.as_os_str());
        let mac_s = mac
            .map(|m| m.to_string())
            .unwrap_or_else(|| "unknown".into());
        let mapped = match map_path(&self.root, requested) {
            Ok(mapped) => mapped,
            Err(refused) => {
                tracing::warn!(%client, mac = %mac_s, file = %shown, reason = %refused,
                    "TFTP read refused");
                self.record_failure(mac, shown);
                return Err(ACCESS);
            }
        };
        let OpenedFile { file, len, path } = match open_in_root(&self.root, &mapped) {
            Ok(opened) => opened,
            Err(err) => {
                let reply = match &err {
                    ResolveError::Missing { .. } | ResolveError::NotAFile { .. } => {
                        tracing::info!(%client, mac = %mac_s, reason = %err, "TFTP file not found");
                        NOT_FOUND
                    }
                    ResolveError::OutsideRoot { .. } | ResolveError::Io { .. } => {
                        tracing::warn!(%client, mac = %mac_s, reason = %err, "TFTP read refused");
                        ACCESS
                    }
                };
                self.record_failure(mac, mapped.as_str().to_owned());
                return Err(reply);
            }
        };
        tracing::info!(%client, mac = %mac_s, file = %mapped.as_str(), path = %path.display(),
            bytes = len, "TFTP read starts");
        let data = FileData::new(file, len);
        let report = FetchReport::new(self.sink.clone(), *client, mac, mapped.as_str().to_owned());
        Ok(OpenedRead { data, len, report })
    }

    /// Refuses a write request (the server is read-only) and logs it.
    pub fn refuse_write(&self, client: &SocketAddr, requested: &Path) -> Refusal {
        tracing::warn!(%client, file = %display_name(requested.as_os_str()),
            "TFTP write refused: the server is read-only");
        ACCESS
    }
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
