//! The netboot gate: how the PXE services ask the Lease Manager whether to answer a MAC, and how
//! they tell it what they did. The LM implements both traits; tests use [`StaticDirectory`] and
//! [`RecordingSink`]. Pure: no IO.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use lm_api::{BootEvent, BootId, MacAddr};

/// What the LM expects of a MAC right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Not in the inventory: stay silent.
    Unknown,
    /// In the inventory but not expected to boot now (idle, unreachable, ...): stay silent.
    Closed {
        /// Inventory name.
        name: String,
        /// Why, for the log line ("idle: not woken by the Lease Manager").
        reason: String,
    },
    /// Expected: answer, and boot it with this attempt's parameters.
    Open(HostBoot),
}

/// Per-host boot parameters of an expected server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBoot {
    /// Inventory name (for logs and the iPXE script).
    pub name: String,
    /// Fixed address, when the operator reserved one; otherwise the dynamic pool serves it.
    pub reserved_ip: Option<Ipv4Addr>,
    /// The boot attempt; goes into the kernel command line as `lm.boot=`.
    pub boot_id: BootId,
}

/// The LM's view of the inventory, asked on every DHCP packet and HTTP script request.
/// Must be cheap and must not block (an in-memory map behind a lock).
pub trait BootDirectory: Send + Sync + 'static {
    /// The gate for `mac`.
    fn lookup(&self, mac: MacAddr) -> Gate;

    /// Extra `lm.<key>=<value>` kernel command line words for the per-host boot script of an
    /// open gate (the LM adds the lease and a fresh enrollment token). Called once per script
    /// request; may write to the LM's store, and may start a new boot attempt (a server that
    /// rebooted within its lease): the script then names `host.boot_id` as changed here.
    fn script_args(&self, mac: MacAddr, host: &mut HostBoot) -> Vec<String> {
        let _ = (mac, host);
        Vec::new()
    }
}

/// Where the PXE services report what they did (timeline, wake confirmation).
/// Must not block: implementations queue the event.
pub trait EventSink: Send + Sync + 'static {
    /// Records one event.
    fn record(&self, event: BootEvent);
}

/// A fixed directory for tests, benchmarks and tools: every listed MAC gets the given gate,
/// and `default` decides for the rest (for example `Gate::Open` for a benchmark pool).
#[derive(Debug, Default)]
pub struct StaticDirectory {
    /// Per-MAC gates.
    pub hosts: HashMap<MacAddr, Gate>,
    /// Gate for MACs not in `hosts`; `None` means [`Gate::Unknown`].
    pub default: Option<HostBoot>,
}

impl BootDirectory for StaticDirectory {
    fn lookup(&self, mac: MacAddr) -> Gate {
        match self.hosts.get(&mac) {
            Some(g) => g.clone(),
            None => self
                .default
                .clone()
                .map(Gate::Open)
                .unwrap_or(Gate::Unknown),
        }
    }
}

/// An event sink that keeps everything in memory, for tests.
#[derive(Debug, Default)]
pub struct RecordingSink {
    events: Mutex<Vec<BootEvent>>,
}

impl RecordingSink {
    /// All events so far.
    pub fn events(&self) -> Vec<BootEvent> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl EventSink for RecordingSink {
    fn record(&self, event: BootEvent) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }
}

/// A sink that drops everything (benchmarks).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl EventSink for NullSink {
    fn record(&self, _event: BootEvent) {}
}
