//! A peer: its configuration as the caller gives it, its statistics as the caller sees them, and
//! the node's state for it (boringtun's `Tunn`, endpoint, counters).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use boringtun::noise::Tunn;

use crate::allowed_ips::Ipv4Net;
use crate::keys::PublicKey;

/// A session older than this without a new handshake is dead (WireGuard's Reject-After-Time).
pub(crate) const REJECT_AFTER: Duration = Duration::from_secs(180);

/// One WireGuard peer as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub public_key: PublicKey,
    /// Where to send until the peer is heard from; `None` for peers that connect to us (their
    /// endpoint is learnt from their first authenticated packet). With an endpoint the node
    /// starts a handshake at once.
    pub endpoint: Option<SocketAddr>,
    /// Inner addresses routed to this peer and accepted from it (`(network, prefix length)`,
    /// host bits ignored). A decrypted packet whose source is not in them is dropped.
    pub allowed_ips: Vec<(Ipv4Addr, u8)>,
    /// Seconds between keepalives when otherwise idle (25 keeps NAT mappings open).
    pub persistent_keepalive: Option<u16>,
}

/// A peer as seen from the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStats {
    pub public_key: PublicKey,
    /// Where its packets go now (configured, or learnt from its last authenticated packet).
    pub endpoint: Option<SocketAddr>,
    /// When the last handshake completed (as initiator: its response arrived; as responder:
    /// the first packet on the new session arrived).
    pub last_handshake: Option<SystemTime>,
    /// WireGuard datagram bytes (UDP payloads, handshakes included) received from the peer.
    pub rx_bytes: u64,
    /// WireGuard datagram bytes sent to the peer.
    pub tx_bytes: u64,
    /// Packets from or to this peer that were dropped: inner source outside its allowed IPs,
    /// not IPv4, failed decryption or replay, no endpoint yet, or a failed send.
    pub dropped: u64,
}

/// The node's state of one peer.
pub(crate) struct Peer {
    pub key: PublicKey,
    pub tunn: Tunn,
    pub endpoint: Option<SocketAddr>,
    pub allowed: Vec<Ipv4Net>,
    pub last_handshake: Option<SystemTime>,
    /// As responder: the local index of the session we answered, until its first packet.
    pub unconfirmed: Option<u32>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub dropped: u64,
}

impl Peer {
    pub fn stats(&self) -> PeerStats {
        PeerStats {
            public_key: self.key,
            endpoint: self.endpoint,
            last_handshake: self.last_handshake,
            rx_bytes: self.rx_bytes,
            tx_bytes: self.tx_bytes,
            dropped: self.dropped,
        }
    }

    pub fn handshake_completed(&mut self, now: SystemTime) {
        self.last_handshake = Some(now);
        self.unconfirmed = None;
        tracing::debug!(peer = %self.key, "WireGuard handshake completed");
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("key", &self.key)
            .field("endpoint", &self.endpoint)
            .field("allowed", &self.allowed)
            .field("last_handshake", &self.last_handshake)
            .finish_non_exhaustive()
    }
}
