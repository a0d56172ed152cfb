//! [`BootHttp`]: HTTP boot as a request -> reply function; the LM's HTTP listener does the IO.
//!
//! - `GET|HEAD /boot/{mac}.ipxe`: gate `Open` -> 200 with the per-host script.
//! - `GET|HEAD /boot/{mac}/vmlinuz|initrd`: gate `Open` -> the file, with `Range` support
//!   (200, 206 with `Content-Range: bytes a-b/len`, 416 with `Content-Range: bytes */len`).
//!   Range applies to GET only (RFC 9110); `If-Range` is not supported and is ignored.
//! - gate `Unknown` or `Closed` -> 404 and a log line naming the MAC and the reason; a bad MAC
//!   in a boot path -> 400; any other path -> 404; any other method -> 405.
//!
//! The only IO is a `stat` of the artifact when a file reply is built, so an operator can
//! replace the kernel or initramfs (atomically, by rename) without a restart. The caller
//! streams [`BootBody::File`] (`len` bytes from `offset`) and must send the headers as given.
//!
//! Events (`EventKind::HttpFetch`) are recorded for MACs in the inventory (gate `Open` or
//! `Closed`). A reply whose body is in memory (script, errors, HEAD) is recorded inside
//! [`BootHttp::respond`]. A file body's byte count is only known after streaming: the reply
//! then carries a [`PendingFetch`] that the caller hands to [`BootHttp::record_done`] with
//! the bytes actually sent; if the caller just drops it, the event is recorded with the
//! planned length (`Content-Length`) instead, so no fetch goes missing from the timeline.

use std::path::PathBuf;
use std::sync::Arc;

use lm_api::{BootEvent, EventKind, MacAddr};

use super::ipxe::{ScriptError, ScriptTemplate};
use super::range::{ByteRange, parse_range};
use super::reply::{BINARY, BootBody, BootReply, PendingFetch, head_of};
use super::routes::{Artifact, BootRoute, RouteError, route};
use crate::gate::{BootDirectory, EventSink, Gate};

/// Configuration of HTTP boot, validated by [`BootHttp::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootHttpConfig {
    /// The kernel served as `/boot/{mac}/vmlinuz`.
    pub kernel: PathBuf,
    /// The initramfs served as `/boot/{mac}/initrd`.
    pub initrd: PathBuf,
    /// `host:port` as iPXE reaches this listener (goes into the script's URLs).
    pub http_host: String,
    /// The LM API URL the agent talks to (`lm.url=`).
    pub api_url: String,
    /// Kernel command line before the `lm.*` keys; see
    /// [`DEFAULT_CMDLINE_BASE`](super::ipxe::DEFAULT_CMDLINE_BASE).
    pub cmdline_base: String,
}

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum BootHttpError {
    /// A value cannot go into the iPXE script.
    #[error("HTTP boot configuration: {0}")]
    Script(#[from] ScriptError),
    /// A boot artifact cannot be used.
    #[error("boot artifact {}: {reason}", path.display())]
    Artifact {
        /// The configured path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// HTTP boot for iPXE: scripts and artifacts, gated by the LM's directory.
pub struct BootHttp {
    kernel: PathBuf,
    initrd: PathBuf,
    template: ScriptTemplate,
    directory: Arc<dyn BootDirectory>,
    sink: Arc<dyn EventSink>,
}

impl std::fmt::Debug for BootHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootHttp")
            .field("kernel", &self.kernel)
            .field("initrd", &self.initrd)
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

impl BootHttp {
    /// Validates the configuration (no IO: the artifacts may appear later; see
    /// [`BootHttp::check_artifacts`]).
    pub fn new(
        config: BootHttpConfig,
        directory: Arc<dyn BootDirectory>,
        sink: Arc<dyn EventSink>,
    ) -> Result<Self, BootHttpError> {
        let template =
            ScriptTemplate::new(&config.http_host, &config.api_url, &config.cmdline_base)?;
        Ok(Self {
            kernel: config.kernel,
            initrd: config.initrd,
            template,
            directory,
            sink,
        })
    }

    /// Stats both artifacts (IO) and returns their lengths: a start-up check for the daemon.
    pub fn check_artifacts(&self) -> Result<(u64, u64), BootHttpError> {
        Ok((stat(&self.kernel)?, stat(&self.initrd)?))
    }

    /// Answers one request. `method` is the HTTP method as sent (`GET`, `HEAD`), `path` the
    /// request target's path, `range` the `Range` header value if any.
    pub fn respond(&self, method: &str, path: &str, range: Option<&str>) -> BootReply {
        let head = match method {
            "GET" => false,
            "HEAD" => true,
            _ => {
                return BootReply::text(405, "method not allowed: use GET or HEAD\n")
                    .with_header("Allow", "GET, HEAD".into());
            }
        };
        let route = match route(path) {
            Ok(route) => route,
            Err(RouteError::NotFound) => return head_of(BootReply::text(404, "not found\n"), head),
            Err(e @ RouteError::BadMac { .. }) => {
                tracing::info!(path = %path.escape_debug(), error = %e, "HTTP boot: bad MAC in path");
                return head_of(BootReply::text(400, &format!("{e}\n")), head);
            }
        };
        let mac = route.mac();
        let gate = self.directory.lookup(mac);
        let reply = match (&gate, route) {
            (Gate::Open(host), BootRoute::Script(_)) => {
                let mut host = host.clone();
                let extra = self.directory.script_args(mac, &mut host);
                match self
                    .template
                    .render_with(&host.name, mac, host.boot_id, &extra)
                {
                    Ok(script) => {
                        tracing::info!(%mac, server = %host.name, boot_id = %host.boot_id,
                            "HTTP boot: iPXE script");
                        BootReply::text(200, &script)
                            .with_header("Cache-Control", "no-store".into())
                    }
                    Err(e) => {
                        tracing::error!(%mac, error = %e, "HTTP boot: cannot render the iPXE script");
                        BootReply::text(500, "cannot render the boot script for this server\n")
                    }
                }
            }
            (Gate::Open(_), BootRoute::File(_, artifact)) => {
                self.file_reply(mac, artifact, if head { None } else { range })
            }
            (Gate::Unknown, _) => {
                tracing::info!(%mac, reason = "not in the inventory", "HTTP boot: refused");
                BootReply::text(404, "no boot is expected for this MAC\n")
            }
            (Gate::Closed { name, reason }, _) => {
                tracing::info!(%mac, server = %name, %reason, "HTTP boot: refused");
                BootReply::text(404, "no boot is expected for this MAC\n")
            }
        };
        let mut reply = head_of(reply, head);
        if gate == Gate::Unknown {
            return reply; // no server to attach an event to
        }
        let event_path = route.canonical_path();
        match &reply.body {
            BootBody::Bytes(bytes) => {
                self.record(mac, event_path, bytes.len() as u64, reply.status)
            }
            BootBody::File { len, .. } => {
                let pending =
                    PendingFetch::new(mac, event_path, reply.status, *len, self.sink.clone());
                reply.pending = Some(pending);
            }
        }
        reply
    }

    /// Records the event of a streamed file reply once `bytes_sent` is known.
    pub fn record_done(&self, fetch: PendingFetch, bytes_sent: u64) {
        fetch.finish(bytes_sent);
    }

    fn record(&self, mac: MacAddr, path: String, bytes: u64, status: u16) {
        self.sink.record(BootEvent {
            mac,
            kind: EventKind::HttpFetch {
                path,
                bytes,
                status,
            },
        });
    }

    fn file_reply(&self, mac: MacAddr, artifact: Artifact, range: Option<&str>) -> BootReply {
        let path = match artifact {
            Artifact::Kernel => &self.kernel,
            Artifact::Initrd => &self.initrd,
        };
        let len = match stat(path) {
            Ok(len) => len,
            Err(e) => {
                tracing::error!(%mac, error = %e, "HTTP boot: artifact unavailable");
                return BootReply::text(500, "boot artifact unavailable\n");
            }
        };
        let byte_range = range.map_or(ByteRange::Whole, |h| parse_range(h, len));
        let (status, offset) = match byte_range {
            ByteRange::Whole => (200, 0),
            ByteRange::Partial { start, .. } => (206, start),
            ByteRange::Unsatisfiable => {
                tracing::info!(%mac, range = %range.unwrap_or("").escape_debug(), len,
                    "HTTP boot: range not satisfiable");
                return BootReply::text(416, "range not satisfiable\n")
                    .with_header("Content-Range", format!("bytes */{len}"));
            }
        };
        let body_len = byte_range.body_len(len);
        tracing::info!(%mac, file = artifact.file_name(), status, offset, bytes = body_len,
            "HTTP boot: artifact");
        let mut reply = BootReply {
            status,
            content_type: BINARY,
            headers: vec![
                ("Content-Length", body_len.to_string()),
                ("Accept-Ranges", "bytes".into()),
            ],
            body: BootBody::File {
                path: path.clone(),
                offset,
                len: body_len,
            },
            pending: None,
        };
        if let ByteRange::Partial {
            start,
            end_inclusive,
        } = byte_range
        {
            reply.headers.push((
                "Content-Range",
                format!("bytes {start}-{end_inclusive}/{len}"),
            ));
        }
        reply
    }
}

/// Length of a regular file (IO: one `stat`).
fn stat(path: &std::path::Path) -> Result<u64, BootHttpError> {
    let artifact = |reason: String| BootHttpError::Artifact {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| artifact(e.to_string()))?;
    if !meta.is_file() {
        return Err(artifact("not a regular file".into()));
    }
    Ok(meta.len())
}
