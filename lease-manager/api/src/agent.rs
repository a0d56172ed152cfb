//! Messages from the ramdisk agent to the LM.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::{BootId, HardwareFacts, MacAddr};

/// Body of `POST /v1/agent/hello`: the agent is up, has an address, and reports its hardware.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelloRequest {
    /// The boot attempt, from `lm.boot=` on the kernel command line.
    pub boot_id: BootId,
    /// The NIC the server booted from (`lm.mac=`), the key of the server in the inventory.
    pub boot_mac: MacAddr,
    /// The address the agent's own DHCP client obtained.
    pub address: Ipv4Addr,
    /// Agent version string (crate version + build).
    pub agent_version: String,
    /// Seconds since the kernel started, when the agent sent this.
    pub uptime_ms: u64,
    /// What the machine is made of.
    pub facts: HardwareFacts,
}

/// Answer to a hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelloResponse {
    /// The inventory name of this server.
    pub server: String,
    /// Seconds between the agent's heartbeats.
    pub heartbeat_secs: u32,
}

/// Phases of the agent's life, reported with markers on the console and to the LM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentPhase {
    /// PID 1 set-up: mounts, console.
    Init,
    /// Loading kernel modules.
    Modules,
    /// Waiting for the boot NIC to appear and get a link.
    Link,
    /// The agent's own DHCP client.
    Dhcp,
    /// Collecting hardware facts.
    Facts,
    /// Reporting to the LM over HTTPS.
    Hello,
    /// Up and waiting for work, sending heartbeats.
    Ready,
}

impl AgentPhase {
    /// The console marker word of the phase (`AGENT-PHASE dhcp ...`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::Modules => "modules",
            Self::Link => "link",
            Self::Dhcp => "dhcp",
            Self::Facts => "facts",
            Self::Hello => "hello",
            Self::Ready => "ready",
        }
    }
}

/// Body of `POST /v1/agent/report`: progress, a heartbeat, or a failure in a phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentReport {
    pub boot_id: BootId,
    pub boot_mac: MacAddr,
    pub phase: AgentPhase,
    /// False when the phase failed; `detail` then holds the error chain.
    pub ok: bool,
    /// Free text, at most 4 KiB (longer bodies are refused).
    pub detail: String,
    /// Attempt number within the phase (1-based).
    pub attempt: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_golden_json() {
        let hello = HelloRequest {
            boot_id: "00000000000000ff".parse().unwrap(),
            boot_mac: "52:54:00:00:00:01".parse().unwrap(),
            address: Ipv4Addr::new(10, 77, 0, 50),
            agent_version: "0.1.0".into(),
            uptime_ms: 1500,
            facts: HardwareFacts::default(),
        };
        let j = serde_json::to_string(&hello).unwrap();
        assert_eq!(
            j,
            r#"{"boot_id":"00000000000000ff","boot_mac":"52:54:00:00:00:01","address":"10.77.0.50","agent_version":"0.1.0","uptime_ms":1500,"facts":{"nics":[],"smbios":{"uuid":null,"serial":null,"vendor":null,"product":null},"cpu":{"model":"","logical":0},"memory_bytes":0,"disks":[]}}"#
        );
        assert_eq!(serde_json::from_str::<HelloRequest>(&j).unwrap(), hello);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let j = r#"{"boot_id":"00000000000000ff","boot_mac":"52:54:00:00:00:01","phase":"dhcp","ok":true,"detail":"","attempt":1,"extra":1}"#;
        let err = serde_json::from_str::<AgentReport>(j)
            .unwrap_err()
            .to_string();
        assert!(err.contains("extra"), "{err}");
    }
}
