//! The validated DHCP configuration the engine runs on, built once from a [`DhcpSection`] by
//! [`DhcpConfig::from_section`]. Every check names the field and says what to do. Pure: no IO.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use lm_api::MacAddr;

use super::checks::{check_boot, check_reservations, check_subnets, check_times};
use super::config::DhcpSection;
use super::net::Ipv4Net;

/// Shortest accepted lease time: clients renew at T1, so shorter leases only add traffic.
pub const MIN_LEASE_TIME_SECS: u32 = 60;
/// Largest pool (addresses), which bounds the allocation scan.
pub const MAX_POOL_SIZE: u32 = 65_536;
/// Largest accepted batch limit.
pub const MAX_BATCH_LIMIT: usize = 4096;
/// Longest offer hold (seconds).
pub const MAX_OFFER_HOLD_SECS: u32 = 300;
/// Room in the BOOTP `file` field (128 bytes with the terminating NUL).
pub const MAX_BOOT_FILE_LEN: usize = 127;

/// A `[dhcp]` value that cannot work, naming the field and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DHCP config: {field}: {problem}")]
pub struct ConfigError {
    /// The offending field, like `dhcp.subnets[0].pools[1].start`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

pub(crate) fn bad(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// An inclusive address range of a pool, as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    /// First address.
    pub start: u32,
    /// Last address (inclusive).
    pub end: u32,
}

impl AddrRange {
    /// Number of addresses.
    pub fn len(&self) -> u32 {
        self.end.saturating_sub(self.start).saturating_add(1)
    }

    /// Never empty once validated; here for completeness.
    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }

    /// True if `addr` is in the range.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        (self.start..=self.end).contains(&u32::from(addr))
    }

    /// True if the two ranges share an address.
    pub fn overlaps(&self, other: &AddrRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

/// A validated subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// The network.
    pub network: Ipv4Net,
    /// Dynamic ranges, disjoint.
    pub pools: Vec<AddrRange>,
    /// Option 3.
    pub routers: Vec<Ipv4Addr>,
    /// Option 6.
    pub dns_servers: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain_name: Option<String>,
}

impl Subnet {
    /// True if `addr` is in one of the dynamic pools.
    pub fn in_pool(&self, addr: Ipv4Addr) -> bool {
        self.pools.iter().any(|p| p.contains(addr))
    }
}

/// The iPXE script URL with `{server}` filled in; `{mac}` is filled per client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate(pub(crate) String);

impl UrlTemplate {
    /// The URL for `mac` (`{mac}` -> `52-54-00-12-34-56`).
    pub fn render(&self, mac: MacAddr) -> String {
        self.0.replace("{mac}", &mac.dashed())
    }
}

/// Validated boot parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootConfig {
    /// siaddr and option 66.
    pub next_server: Ipv4Addr,
    /// BIOS boot file.
    pub bios_file: String,
    /// UEFI x64 boot file.
    pub uefi_file: String,
    /// iPXE script URL.
    pub ipxe_script_url: UrlTemplate,
}

/// The validated `[dhcp]` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    pub(crate) server_address: Ipv4Addr,
    pub(crate) interface: Option<String>,
    pub(crate) listen_port: u16,
    pub(crate) client_port: u16,
    pub(crate) relay_port: u16,
    pub(crate) lease_time: u32,
    pub(crate) renewal_time: u32,
    pub(crate) rebinding_time: u32,
    pub(crate) offer_hold: u32,
    pub(crate) quarantine: u32,
    pub(crate) batch_limit: usize,
    pub(crate) agent_vendor_class: Vec<u8>,
    pub(crate) boot: BootConfig,
    pub(crate) subnets: Vec<Subnet>,
    pub(crate) reserved_by_mac: HashMap<MacAddr, Ipv4Addr>,
    pub(crate) reserved_by_addr: HashMap<Ipv4Addr, MacAddr>,
}

impl DhcpConfig {
    /// Validates the section once; the error names the first field that cannot work.
    pub fn from_section(s: &DhcpSection) -> Result<Self, ConfigError> {
        let subnets = check_subnets(&s.subnets)?;
        let server = s.server_address;
        if !subnets.iter().any(|n| n.network.is_host(server)) {
            return Err(bad(
                "dhcp.server_address",
                format!(
                    "{server} is not a host address of any [[dhcp.subnets]]: add the provisioning network as a subnet"
                ),
            ));
        }
        if subnets.iter().any(|n| n.in_pool(server)) {
            return Err(bad(
                "dhcp.server_address",
                format!("{server} is inside a pool and could be handed out: shrink the pool"),
            ));
        }
        if let Some(ifname) = &s.interface {
            let ok = !ifname.is_empty()
                && ifname.len() < 16
                && ifname.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
            if !ok {
                return Err(bad(
                    "dhcp.interface",
                    format!(
                        "{ifname:?} is not an interface name (1-15 visible characters, no '/'): use the name `ip link` shows, or omit it"
                    ),
                ));
            }
        }
        for (field, port) in [
            ("dhcp.client_port", s.client_port),
            ("dhcp.relay_port", s.relay_port),
        ] {
            if port == 0 {
                return Err(bad(
                    field,
                    "port 0 cannot be sent to: use 68 (clients) or 67 (relays)",
                ));
            }
        }
        let (lease_time, renewal_time, rebinding_time) = check_times(s)?;
        if s.offer_hold_secs == 0 || s.offer_hold_secs > MAX_OFFER_HOLD_SECS {
            return Err(bad(
                "dhcp.offer_hold_secs",
                format!(
                    "{} is out of range: use 1-{MAX_OFFER_HOLD_SECS} (about 30 is usual)",
                    s.offer_hold_secs
                ),
            ));
        }
        if s.decline_quarantine_secs == 0 {
            return Err(bad(
                "dhcp.decline_quarantine_secs",
                "must be at least 1 second (600 is usual)",
            ));
        }
        if s.batch_limit == 0 || s.batch_limit > MAX_BATCH_LIMIT {
            return Err(bad(
                "dhcp.batch_limit",
                format!(
                    "{} is out of range: use 1-{MAX_BATCH_LIMIT} (256 is usual)",
                    s.batch_limit
                ),
            ));
        }
        if s.agent_vendor_class.is_empty() || s.agent_vendor_class.len() > 255 {
            return Err(bad(
                "dhcp.agent_vendor_class",
                "must be 1-255 bytes (the agent's option 60)",
            ));
        }
        let boot = check_boot(&s.boot, server)?;
        let (reserved_by_mac, reserved_by_addr) = check_reservations(s, &subnets)?;
        Ok(Self {
            server_address: server,
            interface: s.interface.clone(),
            listen_port: s.listen_port,
            client_port: s.client_port,
            relay_port: s.relay_port,
            lease_time,
            renewal_time,
            rebinding_time,
            offer_hold: s.offer_hold_secs,
            quarantine: s.decline_quarantine_secs,
            batch_limit: s.batch_limit,
            agent_vendor_class: s.agent_vendor_class.as_bytes().to_vec(),
            boot,
            subnets,
            reserved_by_mac,
            reserved_by_addr,
        })
    }

    /// Server identifier and the address of the provisioning interface.
    pub fn server_address(&self) -> Ipv4Addr {
        self.server_address
    }

    /// Interface to bind to, if any.
    pub fn interface(&self) -> Option<&str> {
        self.interface.as_deref()
    }

    /// Listening port (0 = any).
    pub fn listen_port(&self) -> u16 {
        self.listen_port
    }

    /// Datagrams per group commit.
    pub fn batch_limit(&self) -> usize {
        self.batch_limit
    }

    /// The subnets served.
    pub fn subnets(&self) -> &[Subnet] {
        &self.subnets
    }

    /// Boot parameters.
    pub fn boot(&self) -> &BootConfig {
        &self.boot
    }

    /// The subnet that holds `addr`.
    pub fn subnet_of(&self, addr: Ipv4Addr) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.network.contains(addr))
    }
}

#[cfg(test)]
mod tests;
