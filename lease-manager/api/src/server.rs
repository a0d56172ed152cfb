//! The server inventory and the per-server boot timeline, as the console sees them.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::{AgentPhase, BootId, HardwareFacts, LeaseId, MacAddr};

/// Where a server is in its life cycle. Whether it belongs to a lease is kept next to the
/// state ([`ServerView::lease`]).
///
/// ```text
/// idle -> reserved -> waking -> booting -> enrolling -> tunneling -> transferring -> running
///   ^                                                                                  |
///   +------------------------ wiping <- releasing <-------------------------------------+
/// maintenance boot (no lease): idle -> waking -> booting -> agent-up
/// off the path: unreachable (no wake confirmed), failed (agent gave up), quarantined (a
/// released server did not confirm its wipe; an operator must look at it)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum ServerState {
    /// Powered off or idle; the netboot gate is closed.
    Idle,
    /// Assigned to a lease, about to be woken.
    Reserved,
    /// A wake was sent; waiting for the server's DHCPDISCOVER to confirm it.
    Waking { boot_id: BootId, attempt: u32 },
    /// The server is network-booting (seen on DHCP); the gate is open for this boot.
    Booting { boot_id: BootId },
    /// Maintenance boot (no lease): the agent said hello and reported its facts.
    AgentUp { boot_id: BootId },
    /// Lease boot: the agent said hello; waiting for it to enroll with its token.
    Enrolling { boot_id: BootId },
    /// Enrolled (holds a certificate for the lease); building the tunnel to the tenant.
    Tunneling { boot_id: BootId },
    /// Pulling the tenant's sealed image through the tunnel.
    Transferring { boot_id: BootId },
    /// Running the tenant's image.
    Running { boot_id: BootId },
    /// The lease is over; waiting for the agent to pick that up and wipe.
    Releasing { boot_id: Option<BootId> },
    /// The agent is wiping what the lease left on the host.
    Wiping { boot_id: BootId },
    /// No DHCPDISCOVER came after the whole wake retry budget.
    Unreachable { boot_id: BootId, reason: String },
    /// The agent reported a failure it could not recover from.
    Failed { boot_id: BootId, reason: String },
    /// Taken out of service until an operator resets it (for example: released but the wipe
    /// was never confirmed).
    Quarantined { reason: String },
}

impl ServerState {
    /// Short name for tables.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Reserved => "reserved",
            Self::Waking { .. } => "waking",
            Self::Booting { .. } => "booting",
            Self::AgentUp { .. } => "agent-up",
            Self::Enrolling { .. } => "enrolling",
            Self::Tunneling { .. } => "tunneling",
            Self::Transferring { .. } => "transferring",
            Self::Running { .. } => "running",
            Self::Releasing { .. } => "releasing",
            Self::Wiping { .. } => "wiping",
            Self::Unreachable { .. } => "unreachable",
            Self::Failed { .. } => "failed",
            Self::Quarantined { .. } => "quarantined",
        }
    }

    /// The boot attempt the state belongs to, if any.
    pub fn boot_id(&self) -> Option<BootId> {
        match self {
            Self::Idle | Self::Reserved | Self::Quarantined { .. } => None,
            Self::Releasing { boot_id } => *boot_id,
            Self::Waking { boot_id, .. }
            | Self::Booting { boot_id }
            | Self::AgentUp { boot_id }
            | Self::Enrolling { boot_id }
            | Self::Tunneling { boot_id }
            | Self::Transferring { boot_id }
            | Self::Running { boot_id }
            | Self::Wiping { boot_id }
            | Self::Unreachable { boot_id, .. }
            | Self::Failed { boot_id, .. } => Some(*boot_id),
        }
    }
}

/// How a wake was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WakeMethod {
    /// UDP broadcast to 255.255.255.255:9 bound to the provisioning interface.
    UdpBroadcast,
    /// Raw Ethernet frame with EtherType 0x0842.
    #[serde(rename = "ethertype-0842")]
    Ethertype0842,
}

/// What happened, one entry of a server's boot timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum EventKind {
    /// A magic packet went out.
    WakeSent {
        attempt: u32,
        methods: Vec<WakeMethod>,
    },
    /// The server's DHCPDISCOVER confirmed the wake.
    WakeConfirmed { after_ms: u64 },
    /// The wake retry budget ran out.
    Unreachable { attempts: u32 },
    /// DHCP traffic from this MAC (`message` is DISCOVER, REQUEST, ...; `client` says who asked:
    /// `pxe-bios`, `pxe-uefi`, `ipxe`, `agent`).
    Dhcp {
        message: String,
        client: String,
        reply: Option<String>,
        address: Option<Ipv4Addr>,
    },
    /// A TFTP read finished (or failed).
    TftpFetch { file: String, bytes: u64, ok: bool },
    /// An HTTP boot artifact was served.
    HttpFetch {
        path: String,
        bytes: u64,
        status: u16,
    },
    /// The agent said hello.
    AgentHello {
        address: Ipv4Addr,
        agent_version: String,
        uptime_ms: u64,
    },
    /// The agent reported on a phase.
    AgentReport {
        phase: AgentPhase,
        ok: bool,
        detail: String,
        attempt: u32,
    },
}

/// An event as the PXE services and the API hand it to the LM core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootEvent {
    pub mac: MacAddr,
    pub kind: EventKind,
}

/// One stored timeline entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The boot attempt it belongs to, when there is one.
    pub boot_id: Option<BootId>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// A server as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerView {
    pub name: String,
    pub mac: MacAddr,
    /// Fixed DHCP address, when the operator reserved one.
    pub reserved_ip: Option<Ipv4Addr>,
    #[serde(flatten)]
    pub state: ServerState,
    /// The lease the server belongs to, if any.
    #[serde(default)]
    pub lease: Option<LeaseId>,
    /// Unix ms of the last state change.
    pub since_ms: u64,
    /// Facts from the latest agent hello.
    pub facts: Option<HardwareFacts>,
    /// The timeline of the current (or last) boot attempt; only in `show`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelineEntry>,
}

/// Body of `POST /v1/servers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddServer {
    pub name: String,
    pub mac: MacAddr,
    #[serde(default)]
    pub reserved_ip: Option<Ipv4Addr>,
    /// SecureOn password (6 bytes, written like a MAC), if the NIC wants one.
    #[serde(default)]
    pub wol_password: Option<MacAddr>,
}

/// Error body of every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong, naming the input, and what to do.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_entry_golden_json() {
        let e = TimelineEntry {
            at_ms: 1,
            boot_id: None,
            kind: EventKind::TftpFetch {
                file: "undionly.kpxe".into(),
                bytes: 10,
                ok: true,
            },
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"at_ms":1,"boot_id":null,"kind":"tftp-fetch","file":"undionly.kpxe","bytes":10,"ok":true}"#
        );
    }

    #[test]
    fn server_state_is_flattened() {
        let v = ServerView {
            name: "vm1".into(),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            reserved_ip: None,
            state: ServerState::Booting {
                boot_id: BootId::from_random(1),
            },
            lease: None,
            since_ms: 5,
            facts: None,
            timeline: vec![],
        };
        let j = serde_json::to_string(&v).unwrap();
        assert_eq!(
            j,
            r#"{"name":"vm1","mac":"02:00:00:00:00:01","reserved_ip":null,"state":"booting","boot_id":"0000000000000001","lease":null,"since_ms":5,"facts":null}"#
        );
        assert_eq!(serde_json::from_str::<ServerView>(&j).unwrap(), v);
    }
}
