//! Power drivers: how the LM turns a server on. A trait with one real driver (Wake-on-LAN)
//! and one shared fake for tests. Drivers only deliver; confirming that the server really came
//! up (its DHCPDISCOVER) is the wake supervisor's job ([`crate::wake`]).

pub mod cycle;
mod wol;
pub mod wol_packet;

use lm_api::{MacAddr, WakeMethod};
use std::sync::Mutex;

pub use cycle::{CycleError, PowerCycle};
pub use wol::{WakeOnLan, check_interface};

/// A server as a power driver needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerTarget {
    pub name: String,
    pub mac: MacAddr,
    /// SecureOn password for NICs that require one.
    pub wol_password: Option<MacAddr>,
}

/// Why a power operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    #[error("cannot send the Wake-on-LAN packet for {mac} on {interface} by {method:?}: {source}")]
    Send {
        mac: MacAddr,
        interface: String,
        method: WakeMethod,
        source: std::io::Error,
    },
    #[error(
        "interface {interface:?} not found or unusable: {source} (check [provisioning] interface in the config)"
    )]
    Interface {
        interface: String,
        source: std::io::Error,
    },
}

/// Turns servers on.
pub trait PowerDriver: Send + Sync + 'static {
    /// Sends one wake attempt; returns the methods that were delivered to the wire.
    fn power_on(&self, target: &PowerTarget) -> Result<Vec<WakeMethod>, PowerError>;
}

/// A driver that records what it was asked, for tests.
#[derive(Debug, Default)]
pub struct RecordingPower {
    calls: Mutex<Vec<PowerTarget>>,
}

impl RecordingPower {
    /// Every target asked for, in order.
    pub fn calls(&self) -> Vec<PowerTarget> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl PowerDriver for RecordingPower {
    fn power_on(&self, target: &PowerTarget) -> Result<Vec<WakeMethod>, PowerError> {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(target.clone());
        Ok(vec![WakeMethod::UdpBroadcast])
    }
}
