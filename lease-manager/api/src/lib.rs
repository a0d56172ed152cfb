//! Wire contract of the Lease Manager (LM).
//!
//! Serde types shared by the LM daemon, its operator console, the PXE services and the ramdisk
//! agent. No IO happens here. Paths are versioned (`/v1/...`, see [`paths`]); a change to any
//! type shows up in the golden-JSON tests at the bottom of each module.

mod agent;
mod facts;
mod ids;
mod mac;
pub mod paths;
mod server;

pub use agent::{AgentPhase, AgentReport, HelloRequest, HelloResponse};
pub use facts::{Cpu, Disk, HardwareFacts, Nic, Smbios};
pub use ids::{BootId, BootIdError};
pub use mac::{MacAddr, MacParseError};
pub use server::{
    AddServer, ApiError, BootEvent, EventKind, ServerState, ServerView, TimelineEntry, WakeMethod,
};
