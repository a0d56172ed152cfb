//! Pure core of the ramdisk agent (`/init` of the network-booted initramfs).
//!
//! No IO happens here: no sockets, files or clocks. Time arrives as a monotonic `Duration`
//! (`now`) and randomness as `u64` values, both passed by the `/init` shell, so every module runs
//! under plain `cargo test` and in fuzz targets.
//!
//! - [`cmdline`]: the kernel command line and the agent's `lm.*` arguments ([`lm_url`]).
//! - [`sequence`] + [`backoff`]: the bring-up phases and the retry/power-off policy.
//! - [`dhcp_client`] + [`dhcp_lease`] + [`dhcp_wire`] + [`frame`]: the agent's own DHCPv4 client,
//!   its leases, pre-decode checks, and its Ethernet/IPv4/UDP frames.
//! - [`facts`]: parsers of the /proc and /sys text the hardware facts come from.
//! - [`http`] + [`lm_exchange`]: the HTTP/1.1 request/response codec and the hello, report,
//!   enroll and heartbeat exchanges with the Lease Manager on top of it.
//! - [`lease`]: what a leased agent does with its enrollment and with each heartbeat answer.
//! - [`secret`]: the token and key bytes held in RAM, redacted and zeroed.
//! - [`tunnel_plan`]: the gateway's registration answer checked against the enrollment, and
//!   the tunnel built from it; [`transfer`]: the image store's answers and the resume policy.
//! - [`startup_table`]: the start-up key table on the local disk; [`start_gate`]: the order of
//!   the checks before a stored image may start; [`disk_layout`]: the local disk's headers.

pub mod backoff;
pub mod cmdline;
pub mod dhcp_client;
pub mod dhcp_lease;
pub mod dhcp_wire;
pub mod disk_layout;
pub mod facts;
pub mod frame;
pub mod http;
pub mod lease;
pub mod lm_exchange;
pub mod lm_url;
pub mod secret;
pub mod sequence;
pub mod start_gate;
pub mod startup_table;
pub mod transfer;
pub mod tunnel_plan;

pub use cmdline::{AgentArgs, CmdlineError, Enrollment, LogLevel};
pub use lm_url::{LmHost, LmUrl};
pub use sequence::{Next, Outcome, Policy, PowerOffReason, Sequence};
