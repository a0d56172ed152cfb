//! The event path from the PXE services and the agent API into the inventory.
//!
//! [`EventQueue`] is the [`pxe::EventSink`] the DHCP/TFTP/HTTP services write to; it never
//! blocks them (an unbounded channel). [`run`] drains it: each event goes into the server's
//! timeline, and DHCP traffic from a woken server confirms the wake (`waking -> booting`).

use std::sync::Arc;

use lm_api::{BootEvent, EventKind};
use pxe::EventSink;
use tokio::sync::mpsc;

use crate::fsm::Input;
use crate::inventory::Inventory;

/// The sending side, handed to the PXE services.
#[derive(Debug, Clone)]
pub struct EventQueue(mpsc::UnboundedSender<BootEvent>);

impl EventQueue {
    /// A queue and its receiving end (for [`run`]).
    pub fn new() -> (Self, mpsc::UnboundedReceiver<BootEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }
}

impl EventSink for EventQueue {
    fn record(&self, event: BootEvent) {
        // The receiver lives as long as the daemon; a send after shutdown is dropped.
        let _ = self.0.send(event);
    }
}

/// Applies one event: state first (so the timeline entry carries the right boot id), then
/// the timeline.
pub fn apply(inv: &Inventory, ev: BootEvent) {
    if let EventKind::Dhcp { message, .. } = &ev.kind
        && matches!(message.as_str(), "DISCOVER" | "REQUEST")
        && let Err(e) = inv.apply(ev.mac, &Input::DhcpSeen)
    {
        tracing::warn!(mac = %ev.mac, error = %e, "dhcp event not applied");
    }
    inv.record(ev.mac, ev.kind);
}

/// Drains the queue until every sender is gone.
pub async fn run(inv: Arc<Inventory>, mut rx: mpsc::UnboundedReceiver<BootEvent>) {
    while let Some(ev) = rx.recv().await {
        let inv = inv.clone();
        // Persisting is blocking IO; keep it off the async workers.
        if let Err(e) = tokio::task::spawn_blocking(move || apply(&inv, ev)).await {
            tracing::error!(error = %e, "event task failed");
        }
    }
}
