//! What [`BootHttp::respond`](super::BootHttp::respond) answers: [`BootReply`] with a
//! [`BootBody`] in memory or as a file slice the caller streams, and the [`PendingFetch`] that
//! records a streamed file's event once its byte count is known. Pure, except that dropping a
//! [`PendingFetch`] records an event in the sink it holds.

use std::path::PathBuf;
use std::sync::Arc;

use lm_api::{BootEvent, EventKind, MacAddr};

use crate::gate::EventSink;

/// `Content-Type` of scripts and error bodies.
pub const TEXT: &str = "text/plain; charset=utf-8";
/// `Content-Type` of the kernel and the initramfs.
pub const BINARY: &str = "application/octet-stream";

/// The body of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootBody {
    /// Send these bytes (empty for HEAD).
    Bytes(Vec<u8>),
    /// Stream `len` bytes of `path` starting at `offset`.
    File {
        /// The artifact.
        path: PathBuf,
        /// First byte to send.
        offset: u64,
        /// Bytes to send.
        len: u64,
    },
}

/// The event of a file reply, recorded once the caller knows how many bytes went out.
///
/// Hand it to [`BootHttp::record_done`](super::BootHttp::record_done) (or [`PendingFetch::finish`]) after streaming. If it
/// is dropped without that, the event is still recorded, with the planned body length as
/// `bytes`, so a caller that ignores it never loses the fetch from the timeline.
#[must_use = "hand it to BootHttp::record_done after streaming the body"]
pub struct PendingFetch {
    mac: MacAddr,
    path: String,
    status: u16,
    planned: u64,
    sink: Option<Arc<dyn EventSink>>,
}

impl PendingFetch {
    /// A pending event for `path` fetched by `mac` with `status`, announcing `planned` bytes.
    pub(super) fn new(
        mac: MacAddr,
        path: String,
        status: u16,
        planned: u64,
        sink: Arc<dyn EventSink>,
    ) -> Self {
        Self {
            mac,
            path,
            status,
            planned,
            sink: Some(sink),
        }
    }

    /// The MAC the fetch is attributed to.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// The body length the reply announced (`Content-Length`).
    pub fn planned_bytes(&self) -> u64 {
        self.planned
    }

    /// Records the event with the bytes actually sent.
    pub fn finish(mut self, bytes_sent: u64) {
        self.record(bytes_sent);
    }

    fn record(&mut self, bytes: u64) {
        if let Some(sink) = self.sink.take() {
            let path = std::mem::take(&mut self.path);
            let status = self.status;
            sink.record(BootEvent {
                mac: self.mac,
                kind: EventKind::HttpFetch {
                    path,
                    bytes,
                    status,
                },
            });
        }
    }
}

impl Drop for PendingFetch {
    fn drop(&mut self) {
        self.record(self.planned);
    }
}

impl std::fmt::Debug for PendingFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingFetch")
            .field("mac", &self.mac)
            .field("path", &self.path)
            .field("status", &self.status)
            .field("planned", &self.planned)
            .finish_non_exhaustive()
    }
}

impl PartialEq for PendingFetch {
    fn eq(&self, other: &Self) -> bool {
        (self.mac, &self.path, self.status, self.planned)
            == (other.mac, &other.path, other.status, other.planned)
    }
}

impl Eq for PendingFetch {}

/// What to answer.
#[derive(Debug, PartialEq, Eq)]
pub struct BootReply {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Further headers: `Content-Length` always; `Accept-Ranges` and `Content-Range` for files;
    /// `Allow` on 405; `Cache-Control` on scripts.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: BootBody,
    /// Set for file bodies: pass it to [`BootHttp::record_done`](super::BootHttp::record_done) after streaming.
    pub pending: Option<PendingFetch>,
}

impl BootReply {
    pub(super) fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            content_type: TEXT,
            headers: vec![("Content-Length", body.len().to_string())],
            body: BootBody::Bytes(body.as_bytes().to_vec()),
            pending: None,
        }
    }

    pub(super) fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// A header's value, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A HEAD reply: the GET headers (including its `Content-Length`), no body.
pub(super) fn head_of(reply: BootReply, head: bool) -> BootReply {
    if !head {
        return reply;
    }
    BootReply {
        body: BootBody::Bytes(Vec::new()),
        pending: None,
        ..reply
    }
}
