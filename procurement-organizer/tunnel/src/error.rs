//! The node's error type.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::allowed_ips::{Ipv4Net, PrefixError};
use crate::keys::PublicKey;

/// What went wrong starting, steering or running a [`crate::Node`].
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot bind the WireGuard UDP socket to {addr} (in use? pick another port or 0)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot set up the node: {what}")]
    Setup {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("peer {0} is configured already (remove it first to change it)")]
    PeerExists(PublicKey),
    #[error("no peer {0} on this node")]
    UnknownPeer(PublicKey),
    #[error("allowed IP {net} of peer {peer} belongs to peer {owner} already")]
    AllowedIpTaken {
        net: Ipv4Net,
        peer: PublicKey,
        owner: PublicKey,
    },
    #[error("peer {peer}: {source}")]
    AllowedIp {
        peer: PublicKey,
        #[source]
        source: PrefixError,
    },
    #[error("peer {peer}: boringtun refused the tunnel: {reason}")]
    Tunn {
        peer: PublicKey,
        reason: &'static str,
    },
    #[error("no more peer slots (2^24 - 1 peers on one node)")]
    Full,
    #[error("no WireGuard handshake with peer {peer} within {waited:?}")]
    HandshakeTimeout { peer: PublicKey, waited: Duration },
    #[error("the node's TUN device failed: {0}")]
    TunIo(#[source] io::Error),
    #[error("the node's thread has stopped (shut down, or failed: see shutdown())")]
    Stopped,
    #[error("the node's thread panicked")]
    Panicked,
}
