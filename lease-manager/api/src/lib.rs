//! Wire contract of the Lease Manager (LM).
//!
//! Serde types shared by the LM daemon, its operator console, the PXE services and the ramdisk
//! agent. No IO happens here. Paths are versioned (`/v1/...`, see [`paths`]); a change to any
//! type shows up in the golden-JSON tests at the bottom of each module.

mod agent;
mod audit;
pub mod body;
mod facts;
mod gateway;
mod ids;
mod lease;
mod mac;
mod names;
pub mod paths;
mod server;
mod tenant;

pub use agent::{
    AgentAction, AgentPhase, AgentReport, EnrollRequest, EnrollResponse, Heartbeat,
    HeartbeatResponse, HelloRequest, HelloResponse,
};
pub use audit::{AuditEntry, AuditVerification};
pub use body::{BodyError, MAX_BODY, parse_body};
pub use facts::{Cpu, Disk, HardwareFacts, Nic, Smbios};
pub use gateway::{GatewaySpec, GatewaySpecError};
pub use ids::{BootId, BootIdError};
pub use lease::{
    CreateLease, CreateLeaseResponse, LeaseServer, LeaseState, LeaseView, MAX_COUNT, RenewLease,
    Tunnel,
};
pub use mac::{MacAddr, MacParseError};
pub use names::{LeaseId, LeaseIdError, Name, NameError};
pub use server::{
    AddServer, ApiError, BootEvent, EventKind, ServerState, ServerView, TimelineEntry, WakeMethod,
};
pub use tenant::{AddTenant, CredentialBundle, TenantView};
