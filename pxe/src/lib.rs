//! Network-boot services the Lease Manager runs on the provisioning interface.
//!
//! - [`dhcp`]: a pure DHCPv4 engine (`request + lease view + gate + now -> decision`) and the
//!   UDP socket shell around it, with leases persisted through [`dhcp::LeaseStore`] before any
//!   ACK leaves.
//! - [`tftp`]: a read-only TFTP server (a pure RFC 1350/2347/7440 transfer state machine, one
//!   thread and socket per transfer) with a strict path mapping.
//! - [`http_boot`]: the per-host iPXE script and the kernel/initramfs with Range support, as a
//!   framework-free request -> reply function; the LM's HTTP listener does the IO.
//! - [`gate`]: the contract with the LM (who may boot, and where events go).
//!
//! The engines and parsers do no IO; the `*_server` modules own sockets.

pub mod dhcp;
pub mod gate;
pub mod http_boot;
pub mod tftp;

pub use dhcp::{DhcpConfig, DhcpSection, DhcpServer, LeaseLookup, LeaseStore};
pub use gate::{
    BootDirectory, EventSink, Gate, HostBoot, NullSink, RecordingSink, StaticDirectory,
};
pub use http_boot::{BootBody, BootHttp, BootHttpConfig, BootReply};
pub use tftp::{TftpOptions, TftpService};
