//! The `[dhcp]` section of the Lease Manager's TOML config, as written by the operator
//! ("wire" structs, serde with `deny_unknown_fields`), with every default named here.
//! [`DhcpConfig::from_section`](super::DhcpConfig::from_section) validates it once into the
//! form the engine uses. Pure: no IO.
//!
//! ```toml
//! [dhcp]
//! server_address = "10.77.0.1"      # option 54, default next-server, must be inside a subnet
//! interface = "br0"                 # SO_BINDTODEVICE; omit to listen on every interface
//! lease_time_secs = 3600
//!
//! [dhcp.boot]
//! bios_file = "undionly.kpxe"
//! uefi_file = "snponly.efi"
//! ipxe_script_url = "http://{server}:8080/boot/{mac}.ipxe"
//!
//! [[dhcp.subnets]]
//! network = "10.77.0.0/24"
//! pools = [{ start = "10.77.0.100", end = "10.77.0.199" }]
//! routers = ["10.77.0.1"]
//!
//! [[dhcp.reservations]]
//! mac = "52:54:00:12:34:56"
//! address = "10.77.0.10"
//! ```

use std::net::Ipv4Addr;

use lm_api::MacAddr;
use serde::{Deserialize, Serialize};

use super::net::Ipv4Net;

/// UDP port the server listens on (RFC 2131 section 4.1).
pub const DEFAULT_LISTEN_PORT: u16 = 67;
/// UDP port replies to clients go to.
pub const DEFAULT_CLIENT_PORT: u16 = 68;
/// UDP port replies to relay agents (giaddr) go to.
pub const DEFAULT_RELAY_PORT: u16 = 67;
/// Lease time (option 51): long enough for a whole provisioning run.
pub const DEFAULT_LEASE_TIME_SECS: u32 = 3600;
/// How long an offered address stays held for the client it was offered to.
pub const DEFAULT_OFFER_HOLD_SECS: u32 = 30;
/// How long a DECLINEd address is kept out of the pool (someone else is using it).
pub const DEFAULT_DECLINE_QUARANTINE_SECS: u32 = 600;
/// Most datagrams handled per group commit (one store flush per batch).
pub const DEFAULT_BATCH_LIMIT: usize = 256;
/// Option 60 the ramdisk agent's own DHCP client sends; it gets an address and no boot file.
pub const DEFAULT_AGENT_VENDOR_CLASS: &str = "lease-agent";
/// Boot file for BIOS PXE ROMs (option 93 = 0): iPXE chain-loaded over TFTP.
pub const DEFAULT_BIOS_FILE: &str = "undionly.kpxe";
/// Boot file for UEFI x64 PXE ROMs (option 93 = 7 or 9).
pub const DEFAULT_UEFI_FILE: &str = "ipxe.efi";
/// Where iPXE fetches its per-host script; `{server}` becomes `server_address`, `{mac}` the
/// client's MAC as `52-54-00-12-34-56`.
pub const DEFAULT_IPXE_SCRIPT_URL: &str = "http://{server}:8080/boot/{mac}.ipxe";

/// The `[dhcp]` section as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DhcpSection {
    /// The Lease Manager's address on the provisioning network: server identifier (option 54),
    /// default next-server, and the address whose subnet serves directly attached clients.
    pub server_address: Ipv4Addr,
    /// Provisioning interface to bind to (SO_BINDTODEVICE); none = every interface.
    #[serde(default)]
    pub interface: Option<String>,
    /// Port to listen on; default [`DEFAULT_LISTEN_PORT`] (0 = any free port, for tests).
    #[serde(default = "default_listen_port")]
    pub listen_port: u16,
    /// Port of replies to clients; default [`DEFAULT_CLIENT_PORT`].
    #[serde(default = "default_client_port")]
    pub client_port: u16,
    /// Port of replies to relay agents; default [`DEFAULT_RELAY_PORT`].
    #[serde(default = "default_relay_port")]
    pub relay_port: u16,
    /// Lease time in seconds (option 51); default [`DEFAULT_LEASE_TIME_SECS`].
    #[serde(default = "default_lease_time")]
    pub lease_time_secs: u32,
    /// T1 (option 58); default half the lease time.
    #[serde(default)]
    pub renewal_time_secs: Option<u32>,
    /// T2 (option 59); default 7/8 of the lease time.
    #[serde(default)]
    pub rebinding_time_secs: Option<u32>,
    /// Offer hold in seconds; default [`DEFAULT_OFFER_HOLD_SECS`].
    #[serde(default = "default_offer_hold")]
    pub offer_hold_secs: u32,
    /// Quarantine of declined addresses in seconds; default [`DEFAULT_DECLINE_QUARANTINE_SECS`].
    #[serde(default = "default_quarantine")]
    pub decline_quarantine_secs: u32,
    /// Datagrams per group commit; default [`DEFAULT_BATCH_LIMIT`].
    #[serde(default = "default_batch_limit")]
    pub batch_limit: usize,
    /// Option 60 of the ramdisk agent; default [`DEFAULT_AGENT_VENDOR_CLASS`].
    #[serde(default = "default_agent_class")]
    pub agent_vendor_class: String,
    /// Network-boot parameters.
    #[serde(default)]
    pub boot: BootSection,
    /// The subnets served, at least one (the one holding `server_address`, plus relayed ones).
    pub subnets: Vec<SubnetSection>,
    /// Fixed addresses per MAC (the LM's per-server `reserved_ip` comes through the gate instead).
    #[serde(default)]
    pub reservations: Vec<ReservationSection>,
}

/// `[dhcp.boot]`: what PXE and iPXE clients are told to load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootSection {
    /// TFTP server (siaddr, option 66); default `server_address`.
    #[serde(default)]
    pub next_server: Option<Ipv4Addr>,
    /// BIOS boot file; default [`DEFAULT_BIOS_FILE`].
    #[serde(default = "default_bios_file")]
    pub bios_file: String,
    /// UEFI x64 boot file; default [`DEFAULT_UEFI_FILE`] (for example `snponly.efi`).
    #[serde(default = "default_uefi_file")]
    pub uefi_file: String,
    /// iPXE script URL template; default [`DEFAULT_IPXE_SCRIPT_URL`].
    #[serde(default = "default_ipxe_url")]
    pub ipxe_script_url: String,
}

impl Default for BootSection {
    fn default() -> Self {
        Self {
            next_server: None,
            bios_file: default_bios_file(),
            uefi_file: default_uefi_file(),
            ipxe_script_url: default_ipxe_url(),
        }
    }
}

/// `[[dhcp.subnets]]`: one subnet with its dynamic pools and options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetSection {
    /// The network, like `10.77.0.0/24`.
    pub network: Ipv4Net,
    /// Dynamic ranges (inclusive); may be empty when only reservations are served.
    #[serde(default)]
    pub pools: Vec<PoolSection>,
    /// Routers (option 3), inside the subnet.
    #[serde(default)]
    pub routers: Vec<Ipv4Addr>,
    /// DNS servers (option 6).
    #[serde(default)]
    pub dns_servers: Vec<Ipv4Addr>,
    /// Domain name (option 15).
    #[serde(default)]
    pub domain_name: Option<String>,
}

/// An inclusive address range of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSection {
    /// First address handed out.
    pub start: Ipv4Addr,
    /// Last address handed out.
    pub end: Ipv4Addr,
}

/// `[[dhcp.reservations]]`: a fixed address for a MAC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservationSection {
    /// The client.
    pub mac: MacAddr,
    /// Its address, inside a subnet (outside the pools is best).
    pub address: Ipv4Addr,
}

fn default_listen_port() -> u16 {
    DEFAULT_LISTEN_PORT
}
fn default_client_port() -> u16 {
    DEFAULT_CLIENT_PORT
}
fn default_relay_port() -> u16 {
    DEFAULT_RELAY_PORT
}
fn default_lease_time() -> u32 {
    DEFAULT_LEASE_TIME_SECS
}
fn default_offer_hold() -> u32 {
    DEFAULT_OFFER_HOLD_SECS
}
fn default_quarantine() -> u32 {
    DEFAULT_DECLINE_QUARANTINE_SECS
}
fn default_batch_limit() -> usize {
    DEFAULT_BATCH_LIMIT
}
fn default_agent_class() -> String {
    DEFAULT_AGENT_VENDOR_CLASS.into()
}
fn default_bios_file() -> String {
    DEFAULT_BIOS_FILE.into()
}
fn default_uefi_file() -> String {
    DEFAULT_UEFI_FILE.into()
}
fn default_ipxe_url() -> String {
    DEFAULT_IPXE_SCRIPT_URL.into()
}

impl DhcpSection {
    /// A minimal section: one subnet with one pool, every other field at its default.
    pub fn single_subnet(server_address: Ipv4Addr, network: Ipv4Net, pool: PoolSection) -> Self {
        Self {
            server_address,
            interface: None,
            listen_port: DEFAULT_LISTEN_PORT,
            client_port: DEFAULT_CLIENT_PORT,
            relay_port: DEFAULT_RELAY_PORT,
            lease_time_secs: DEFAULT_LEASE_TIME_SECS,
            renewal_time_secs: None,
            rebinding_time_secs: None,
            offer_hold_secs: DEFAULT_OFFER_HOLD_SECS,
            decline_quarantine_secs: DEFAULT_DECLINE_QUARANTINE_SECS,
            batch_limit: DEFAULT_BATCH_LIMIT,
            agent_vendor_class: default_agent_class(),
            boot: BootSection::default(),
            subnets: vec![SubnetSection {
                network,
                pools: vec![pool],
                routers: vec![],
                dns_servers: vec![],
                domain_name: None,
            }],
            reservations: vec![],
        }
    }
}
