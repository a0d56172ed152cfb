//! [`FetchReport`]: reports one TFTP read as `EventKind::TftpFetch` when it ends, with the
//! bytes the client acknowledged and `ok` when it acknowledged the last block. Also logs the
//! end of the transfer. No IO of its own (the sink decides).

use std::net::SocketAddr;
use std::sync::Arc;

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

    /// Logs the end of the transfer and records the event (once: it consumes the report).
    pub fn finish(self, bytes: u64, ok: bool) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::RecordingSink;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    fn report(mac: Option<MacAddr>) -> (Arc<RecordingSink>, FetchReport) {
        let sink = Arc::new(RecordingSink::default());
        let client: SocketAddr = "10.77.0.50:2000".parse().unwrap();
        let report = FetchReport::new(sink.clone(), client, mac, "undionly.kpxe".into());
        (sink, report)
    }

    fn fetch(bytes: u64, ok: bool) -> BootEvent {
        BootEvent {
            mac: MAC,
            kind: EventKind::TftpFetch {
                file: "undionly.kpxe".into(),
                bytes,
                ok,
            },
        }
    }

    #[test]
    fn records_the_outcome_with_the_byte_count() {
        let (sink, r) = report(Some(MAC));
        r.finish(1000, true);
        assert_eq!(sink.events(), vec![fetch(1000, true)]);
        let (sink, r) = report(Some(MAC));
        r.finish(512, false);
        assert_eq!(sink.events(), vec![fetch(512, false)]);
    }

    #[test]
    fn unknown_mac_records_nothing() {
        let (sink, r) = report(None);
        r.finish(10, true);
        assert!(sink.events().is_empty());
    }
}
