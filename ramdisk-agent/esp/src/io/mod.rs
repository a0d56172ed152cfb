//! The thin IO shell around the pure core: a userspace ESP endpoint over a UDP/4500 socket and
//! a TUN device ([`Endpoint`]), single-threaded with poll(2). Does IO.
//!
//! Not here yet: several SA pairs (rekey overlap: the IKE layer installs the successor and the
//! old inbound SA keeps taking packets for a while), NAT-T port float and keepalive sending,
//! the TUN offloads `wg-tunnel` uses (virtio-net header, TSO/GRO, UDP GSO).

mod endpoint;
mod tun;

pub use endpoint::{Counters, Endpoint, EndpointConfig, EndpointError, IkeDatagram};
pub use tun::{PacketDevice, TunDevice, TunError};
