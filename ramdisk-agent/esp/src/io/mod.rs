//! The thin IO shell around the pure core: a userspace ESP endpoint over a UDP/4500 socket and
//! a TUN device ([`Endpoint`]), single-threaded with poll(2). Does IO.
//!
//! Rekeying: the IKE layer installs the successor pair with [`Command::Install`] and removes
//! the old inbound SA later ([`Command::RemoveInbound`]); [`SaStatus`] says when a soft limit
//! is reached. Not here yet: NAT-T port float and keepalive sending,
//! the TUN offloads `wg-tunnel` uses (virtio-net header, TSO/GRO, UDP GSO).

mod endpoint;
mod tun;

pub use endpoint::{
    Command, Counters, Endpoint, EndpointConfig, EndpointError, IkeDatagram, MAX_INBOUND, SaStatus,
};
pub use tun::{PacketDevice, TX_QUEUE_LEN, TunDevice, TunError};
