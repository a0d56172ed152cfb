//! Hardware facts the agent collects on the server and reports in its hello.

use serde::{Deserialize, Serialize};

use crate::MacAddr;

/// Everything the agent learned about the machine it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareFacts {
    /// Network interfaces other than loopback.
    pub nics: Vec<Nic>,
    /// SMBIOS system information (from /sys/class/dmi/id).
    pub smbios: Smbios,
    /// Processors.
    pub cpu: Cpu,
    /// Total memory in bytes (MemTotal).
    pub memory_bytes: u64,
    /// Block devices (no partitions, no ram/loop devices).
    pub disks: Vec<Disk>,
    /// The TPM's major version (2 for TPM 2.0), from /sys/class/tpm/tpm0; `None`: no TPM, so a
    /// start-up key on this server gets only the weak root derived from these facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_version: Option<u8>,
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    /// Kernel name, e.g. `eth0`.
    pub name: String,
    /// Permanent hardware address.
    pub mac: MacAddr,
    /// Kernel driver, e.g. `virtio_net`, when known.
    pub driver: Option<String>,
    /// Link speed in Mbit/s, when the driver reports one.
    pub speed_mbps: Option<u32>,
}

/// SMBIOS type 1 system information; fields are `None` when the firmware leaves them empty.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smbios {
    pub uuid: Option<String>,
    pub serial: Option<String>,
    pub vendor: Option<String>,
    pub product: Option<String>,
}

/// Processor summary.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cpu {
    /// `model name` of the first processor.
    pub model: String,
    /// Logical processors online.
    pub logical: u32,
}

/// A block device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// Kernel name, e.g. `vda`.
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
    pub model: Option<String>,
    pub serial: Option<String>,
}
