//! [`FetchReader`]: the reader async-tftp pulls one transfer's bytes from. It counts what
//! async-tftp takes and reports the transfer exactly once, as `EventKind::TftpFetch`: when the
//! inner reader first reports EOF (`ok: true`) or, failing that, when the reader is dropped
//! (`ok: false`: the client went away, a block was never acknowledged, or the read failed).
//!
//! `ok` means the whole file was handed to the transfer. async-tftp does not tell the handler
//! whether the client acknowledged the final window, so a client that vanishes after the last
//! block still counts as `ok`. No IO of its own (the inner reader may do IO).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_lite::AsyncRead;
use lm_api::{BootEvent, EventKind, MacAddr};

use crate::gate::EventSink;

/// Who fetched what, and where to report it when the transfer ends.
pub struct FetchReport {
    sink: Arc<dyn EventSink>,
    client: SocketAddr,
    mac: Option<MacAddr>,
    file: String,
}

impl FetchReport {
    /// A report for `file` fetched by `client`; an event is recorded only when `mac` is known.
    pub fn new(
        sink: Arc<dyn EventSink>,
        client: SocketAddr,
        mac: Option<MacAddr>,
        file: String,
    ) -> Self {
        Self {
            sink,
            client,
            mac,
            file,
        }
    }

    fn finish(self, bytes: u64, ok: bool) {
        let mac = self
            .mac
            .map(|m| m.to_string())
            .unwrap_or_else(|| "unknown".into());
        if ok {
            tracing::info!(client = %self.client, %mac, file = %self.file, bytes, "TFTP read done");
        } else {
            tracing::warn!(
                client = %self.client, %mac, file = %self.file, bytes,
                "TFTP read ended before the end of the file"
            );
        }
        if let Some(mac) = self.mac {
            self.sink.record(BootEvent {
                mac,
                kind: EventKind::TftpFetch {
                    file: self.file,
                    bytes,
                    ok,
                },
            });
        }
    }
}

impl std::fmt::Debug for FetchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchReport")
            .field("client", &self.client)
            .field("mac", &self.mac)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// Counts the bytes read through it and reports the transfer once (see the module doc).
#[derive(Debug)]
pub struct FetchReader<R> {
    inner: R,
    bytes: u64,
    report: Option<FetchReport>,
}

impl<R> FetchReader<R> {
    /// Wraps `inner`; `report` says where the end of the transfer goes.
    pub fn new(inner: R, report: FetchReport) -> Self {
        Self {
            inner,
            bytes: 0,
            report: Some(report),
        }
    }

    /// Bytes handed out so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    fn finish(&mut self, ok: bool) {
        if let Some(report) = self.report.take() {
            report.finish(self.bytes, ok);
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for FetchReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if n == 0 && !buf.is_empty() {
            this.finish(true);
        } else {
            this.bytes = this.bytes.saturating_add(n as u64);
        }
        Poll::Ready(Ok(n))
    }
}

impl<R> Drop for FetchReader<R> {
    fn drop(&mut self) {
        self.finish(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::RecordingSink;
    use futures_lite::future::block_on;
    use futures_lite::io::{AsyncReadExt, Cursor};

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    fn reader(
        data: Vec<u8>,
        mac: Option<MacAddr>,
    ) -> (Arc<RecordingSink>, FetchReader<Cursor<Vec<u8>>>) {
        let sink = Arc::new(RecordingSink::default());
        let client: SocketAddr = "10.77.0.50:2000".parse().unwrap();
        let report = FetchReport::new(sink.clone(), client, mac, "undionly.kpxe".into());
        (sink, FetchReader::new(Cursor::new(data), report))
    }

    fn fetch(file: &str, bytes: u64, ok: bool) -> BootEvent {
        BootEvent {
            mac: MAC,
            kind: EventKind::TftpFetch {
                file: file.into(),
                bytes,
                ok,
            },
        }
    }

    #[test]
    fn reports_once_at_eof_with_the_byte_count() {
        let (sink, mut r) = reader(vec![7; 1000], Some(MAC));
        let mut buf = [0u8; 300];
        let mut total = 0;
        loop {
            let n = block_on(r.read(&mut buf)).unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        assert_eq!(total, 1000);
        assert_eq!(r.bytes_read(), 1000);
        assert_eq!(sink.events(), vec![fetch("undionly.kpxe", 1000, true)]);
        // A second EOF read and the drop add nothing.
        assert_eq!(block_on(r.read(&mut buf)).unwrap(), 0);
        drop(r);
        assert_eq!(sink.events().len(), 1);
    }

    #[test]
    fn drop_before_eof_reports_failure() {
        let (sink, mut r) = reader(vec![1; 1000], Some(MAC));
        let mut buf = [0u8; 512];
        let n = block_on(r.read(&mut buf)).unwrap();
        assert_eq!(n, 512);
        drop(r);
        assert_eq!(sink.events(), vec![fetch("undionly.kpxe", 512, false)]);
    }

    #[test]
    fn empty_buffer_reads_are_not_eof() {
        let (sink, mut r) = reader(vec![1; 10], Some(MAC));
        assert_eq!(block_on(r.read(&mut [])).unwrap(), 0);
        assert!(sink.events().is_empty());
        let mut all = Vec::new();
        block_on(r.read_to_end(&mut all)).unwrap();
        assert_eq!(sink.events(), vec![fetch("undionly.kpxe", 10, true)]);
    }

    #[test]
    fn empty_file_is_ok_with_zero_bytes() {
        let (sink, mut r) = reader(Vec::new(), Some(MAC));
        let mut buf = [0u8; 8];
        assert_eq!(block_on(r.read(&mut buf)).unwrap(), 0);
        assert_eq!(sink.events(), vec![fetch("undionly.kpxe", 0, true)]);
    }

    #[test]
    fn unknown_mac_records_nothing() {
        let (sink, mut r) = reader(vec![1; 10], None);
        let mut all = Vec::new();
        block_on(r.read_to_end(&mut all)).unwrap();
        drop(r);
        assert!(sink.events().is_empty());
    }
}
