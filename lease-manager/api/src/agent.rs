//! Messages from the ramdisk agent to the LM.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::{BootId, GatewaySpec, HardwareFacts, LeaseId, MacAddr, Tunnel};

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
    /// Enrolling for a lease: key pair in RAM, CSR with the token from the command line.
    Enroll,
    /// Registering with the tenant's gateway and building the WireGuard tunnel to it.
    Tunnel,
    /// Pulling the sealed image through the tunnel and verifying every chunk.
    Transfer,
    /// Storing the image on the local disk under a host-bound start-up key, passing the start
    /// gate, and starting the tenant OS with kexec.
    Start,
    /// Up and waiting for work, sending heartbeats.
    Ready,
    /// The lease was released: wiping what the lease left on the host, then power-off.
    Wipe,
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
            Self::Enroll => "enroll",
            Self::Tunnel => "tunnel",
            Self::Transfer => "transfer",
            Self::Start => "start",
            Self::Ready => "ready",
            Self::Wipe => "wipe",
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

/// Body of `POST /v1/agent/enroll`. TLS without a client certificate: the single-use token
/// (from `lm.token=` on the kernel command line) authenticates the request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// From `lm.lease=`.
    pub lease: LeaseId,
    pub boot_id: BootId,
    pub boot_mac: MacAddr,
    /// From `lm.token=`: 64 lowercase hex characters (256 random bits).
    pub token: String,
    /// PKCS#10 request (PEM) for the key the agent generated in RAM.
    pub csr_pem: String,
}

impl std::fmt::Debug for EnrollRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("lease", &self.lease)
            .field("boot_id", &self.boot_id)
            .field("boot_mac", &self.boot_mac)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Answer to an enrollment: the agent's certificate for this lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollResponse {
    pub server: String,
    pub lease: LeaseId,
    /// The agent certificate (PEM); its URI names the lease and the server.
    pub cert_pem: String,
    /// Serial of that certificate (hex).
    pub serial: String,
    /// The certificate's end: never after the lease's end.
    pub not_after_ms: u64,
    pub tunnel: Tunnel,
    pub heartbeat_secs: u32,
    /// The sealed image the lease names, if any.
    #[serde(default)]
    pub image: Option<String>,
    /// The tenant's gateway, if the lease names one.
    #[serde(default)]
    pub gateway: Option<GatewaySpec>,
}

/// Body of `POST /v1/agent/heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub boot_id: BootId,
    pub boot_mac: MacAddr,
    pub uptime_ms: u64,
}

/// What the LM wants the agent to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentAction {
    /// Carry on.
    Continue,
    /// The lease is over: wipe, report `wipe` ok, power off.
    Release,
}

/// Answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatResponse {
    pub action: AgentAction,
    /// The end of the lease the server is in, if any (Unix ms).
    pub lease_ends_ms: Option<u64>,
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
