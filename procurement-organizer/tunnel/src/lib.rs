//! Userspace WireGuard over a TUN device, for the tenant gateway (many peers, long-running) and
//! the ramdisk agent (one peer, a static PID-1 binary without an async runtime). The home of
//! boringtun: no other crate of the workspace depends on it.
//!
//! - [`PrivateKey`] / [`PublicKey`]: x25519 keys in wg's base64 form (pure).
//! - [`Tun`]: a layer-3 TUN device with its address, MTU and routes set by ioctl ([`ifconfig`],
//!   also used by the agent for its NIC).
//! - [`Node`]: a WireGuard endpoint on its own thread, blocking IO with poll(2) over the UDP
//!   socket, the TUN fd and an eventfd; one `boringtun::noise::Tunn` per peer; cryptokey
//!   routing by longest prefix ([`AllowedIps`]); steered through a [`NodeHandle`].
//! - [`packet`]: the datagram and IPv4 header parsing done before boringtun (pure, fuzzed).
//! - [`offload`]: TCP segmentation and coalescing for the TUN device's virtio header (pure,
//!   fuzzed).
//!
//! ```no_run
//! use std::time::Duration;
//! use wg_tunnel::{Node, NodeConfig, PeerConfig, PrivateKey, Tun};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tun = Tun::create("wg0")?;
//! tun.set_ipv4("10.90.0.2".parse()?, 24)?;
//! tun.set_mtu(1420)?;
//! tun.up()?;
//! let gateway: wg_tunnel::PublicKey = "a9/BCQgdQnc/YfvFDezETdldEOV3s2xtku6yAQf8uTM=".parse()?;
//! let node = Node::spawn(NodeConfig {
//!     private_key: PrivateKey::generate_os(),
//!     listen: "0.0.0.0:0".parse()?,
//!     tun,
//!     peers: vec![PeerConfig {
//!         public_key: gateway,
//!         endpoint: Some("10.77.0.2:51820".parse()?),
//!         allowed_ips: vec![("10.90.0.0".parse()?, 24)],
//!         persistent_keepalive: Some(25),
//!     }],
//! })?;
//! node.wait_handshake(&gateway, Duration::from_secs(10))?; // fail closed until the tunnel is up
//! # Ok(()) }
//! ```

mod allowed_ips;
mod core;
mod error;
mod event_loop;
mod handshakes;
pub mod ifconfig;
mod keys;
mod node;
pub mod offload;
pub mod packet;
mod peer;
mod tun;
mod udp;

pub use allowed_ips::{AllowedIps, Ipv4Net, PrefixError};
pub use core::NodeStats;
pub use error::NodeError;
pub use keys::{KEY_LEN, KeyError, PrivateKey, PublicKey};
pub use node::{Node, NodeConfig, NodeHandle};
pub use peer::{PeerConfig, PeerStats};
pub use tun::{Tun, TunError};

#[cfg(test)]
mod core_tests;
#[cfg(test)]
mod offload_tests;
