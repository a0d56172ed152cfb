//! [`ReadOnlyHandler`]: the async-tftp [`Handler`] of the appliance. Read requests are mapped
//! with [`map_path`](super::path::map_path), opened with
//! [`open_in_root`](super::path::open_in_root) on a blocking thread, and streamed through a
//! [`FetchReader`] that reports the transfer; write requests are refused with an access
//! violation. Refusals are logged at warn with the client address and the reason.
//!
//! TFTP carries no MAC, so events are attributed with a `client_mac` lookup (the DHCP lease
//! table); an event is recorded only when the lookup knows the client. Does file IO (through
//! `blocking`), no socket IO.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_tftp::packet;
use async_tftp::server::Handler;
use blocking::Unblock;
use lm_api::{BootEvent, EventKind, MacAddr};

use super::fetch_reader::{FetchReader, FetchReport};
use super::path::{OpenedFile, ResolveError, display_name, map_path, open_in_root};
use crate::gate::EventSink;

/// Looks up the MAC of a client address (the DHCP lease table provides it).
pub type ClientMac = Arc<dyn Fn(Ipv4Addr) -> Option<MacAddr> + Send + Sync>;

/// Read-ahead buffer between the blocking file reader and the transfer (per transfer).
const READ_AHEAD: usize = 256 * 1024;
/// Files up to this size are read into memory at open: boot loaders and kernels are small, and
/// a lock-step transfer then costs no thread hand-off per block. Larger files are streamed.
const IN_MEMORY_MAX: u64 = 64 * 1024 * 1024;

/// The data of one transfer: in memory, or streamed from the blocking pool.
#[derive(Debug)]
pub enum FileSource {
    /// The whole file, read at open.
    Memory(futures_lite::io::Cursor<Vec<u8>>),
    /// Read ahead by a blocking thread.
    Stream(Unblock<File>),
}

impl futures_lite::AsyncRead for FileSource {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            FileSource::Memory(c) => std::pin::Pin::new(c).poll_read(cx, buf),
            FileSource::Stream(u) => std::pin::Pin::new(u).poll_read(cx, buf),
        }
    }
}

fn load(file: File, len: u64) -> std::io::Result<FileSource> {
    use std::io::Read;
    if len > IN_MEMORY_MAX {
        return Ok(FileSource::Stream(Unblock::with_capacity(READ_AHEAD, file)));
    }
    let mut data = Vec::with_capacity(len as usize);
    // `take`: a file that grew after the stat is served as it was measured (tsize).
    file.take(len).read_to_end(&mut data)?;
    Ok(FileSource::Memory(futures_lite::io::Cursor::new(data)))
}

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

    fn mac_of(&self, client: &SocketAddr) -> Option<MacAddr> {
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

    /// Maps and opens a read request. Errors are the TFTP error to send, already logged and
    /// reported.
    async fn open(
        &self,
        client: &SocketAddr,
        requested: &Path,
    ) -> Result<(FetchReader<FileSource>, u64), packet::Error> {
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
                return Err(packet::Error::PermissionDenied);
            }
        };
        let root = self.root.clone();
        let job = mapped.clone();
        let opened = blocking::unblock(move || open_in_root(&root, &job)).await;
        let OpenedFile { file, len, path } = match opened {
            Ok(opened) => opened,
            Err(err) => {
                let reply = match &err {
                    ResolveError::Missing { .. } | ResolveError::NotAFile { .. } => {
                        tracing::info!(%client, mac = %mac_s, reason = %err, "TFTP file not found");
                        packet::Error::FileNotFound
                    }
                    ResolveError::OutsideRoot { .. } | ResolveError::Io { .. } => {
                        tracing::warn!(%client, mac = %mac_s, reason = %err, "TFTP read refused");
                        packet::Error::PermissionDenied
                    }
                };
                self.record_failure(mac, mapped.as_str().to_owned());
                return Err(reply);
            }
        };
        tracing::info!(%client, mac = %mac_s, file = %mapped.as_str(), path = %path.display(),
            bytes = len, "TFTP read starts");
        let source = match blocking::unblock(move || load(file, len)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%client, mac = %mac_s, file = %mapped.as_str(), error = %e, "TFTP read failed");
                self.record_failure(mac, mapped.as_str().to_owned());
                return Err(packet::Error::PermissionDenied);
            }
        };
        let report = FetchReport::new(self.sink.clone(), *client, mac, mapped.as_str().to_owned());
        Ok((FetchReader::new(source, report), len))
    }
}

impl Handler for ReadOnlyHandler {
    type Reader = FetchReader<FileSource>;
    type Writer = futures_lite::io::Sink;

    async fn read_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
    ) -> Result<(Self::Reader, Option<u64>), packet::Error> {
        let (reader, len) = self.open(client, path).await?;
        Ok((reader, Some(len)))
    }

    async fn write_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
        _size: Option<u64>,
    ) -> Result<Self::Writer, packet::Error> {
        tracing::warn!(%client, file = %display_name(path.as_os_str()),
            "TFTP write refused: the server is read-only");
        Err(packet::Error::PermissionDenied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::RecordingSink;
    use futures_lite::future::block_on;
    use futures_lite::io::AsyncReadExt;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    struct Fixture {
        _dir: tempfile::TempDir,
        sink: Arc<RecordingSink>,
        handler: ReadOnlyHandler,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("ipxe.efi"), vec![9u8; 3000]).unwrap();
        let sink = Arc::new(RecordingSink::default());
        let lookup: ClientMac =
            Arc::new(|ip: Ipv4Addr| (ip == Ipv4Addr::new(10, 77, 0, 50)).then_some(MAC));
        let handler = ReadOnlyHandler::new(root, sink.clone(), lookup);
        Fixture {
            _dir: dir,
            sink,
            handler,
        }
    }

    fn known() -> SocketAddr {
        "10.77.0.50:1234".parse().unwrap()
    }

    fn code(e: &packet::Error) -> &'static str {
        match e {
            packet::Error::FileNotFound => "not-found",
            packet::Error::PermissionDenied => "access",
            _ => "other",
        }
    }

    #[test]
    fn reads_a_file_and_reports_it() {
        let mut f = fixture();
        let (mut reader, size) =
            block_on(f.handler.read_req_open(&known(), Path::new("/ipxe.efi")))
                .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(size, Some(3000));
        let mut data = Vec::new();
        block_on(reader.read_to_end(&mut data)).unwrap();
        assert_eq!(data, vec![9u8; 3000]);
        let kind = EventKind::TftpFetch {
            file: "ipxe.efi".into(),
            bytes: 3000,
            ok: true,
        };
        assert_eq!(f.sink.events(), vec![BootEvent { mac: MAC, kind }]);
    }

    #[test]
    fn v4_mapped_v6_clients_are_attributed() {
        let f = fixture();
        let v6: SocketAddr = "[::ffff:10.77.0.50]:1234".parse().unwrap();
        assert_eq!(f.handler.mac_of(&v6), Some(MAC));
        let other: SocketAddr = "[fd99::5]:1234".parse().unwrap();
        assert_eq!(f.handler.mac_of(&other), None);
    }

    #[test]
    fn refusals_get_access_violation_and_a_failed_event() {
        let mut f = fixture();
        for name in [
            "../../etc/passwd",
            "..\\..\\etc\\passwd",
            "C:\\boot.ini",
            "",
        ] {
            let err = block_on(f.handler.read_req_open(&known(), Path::new(name))).err();
            assert_eq!(err.as_ref().map(code), Some("access"), "{name:?}");
        }
        let events = f.sink.events();
        assert_eq!(events.len(), 4);
        assert!(events.iter().all(|e| matches!(
            &e.kind,
            EventKind::TftpFetch {
                bytes: 0,
                ok: false,
                ..
            }
        )));
    }

    #[test]
    fn missing_files_are_not_found_and_unknown_clients_not_reported() {
        let mut f = fixture();
        let stranger: SocketAddr = "10.77.0.99:1".parse().unwrap();
        let err = block_on(f.handler.read_req_open(&stranger, Path::new("/etc/passwd"))).err();
        assert_eq!(err.as_ref().map(code), Some("not-found"));
        assert!(f.sink.events().is_empty());
    }

    #[test]
    fn writes_are_refused() {
        let mut f = fixture();
        let err = block_on(f.handler.write_req_open(&known(), Path::new("x"), Some(1))).err();
        assert_eq!(err.as_ref().map(code), Some("access"));
    }
}
