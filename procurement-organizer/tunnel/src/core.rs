//! The node's dispatch core: which peer a datagram or a TUN packet belongs to, what boringtun
//! makes of it, and where the result goes. No sockets here: effects go through [`Io`], so two
//! cores can talk in memory in tests.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519;
use rand::{Rng, RngCore};

use crate::allowed_ips::{AllowedIps, Ipv4Net};
use crate::error::NodeError;
use crate::handshakes::Handshakes;
use crate::keys::{PrivateKey, PublicKey};
use crate::packet::{self, Message};
use crate::peer::{Peer, PeerConfig, PeerStats};

/// Largest packet read from the TUN device or the socket.
pub(crate) const MAX_PACKET: usize = 65_536;
/// Room for boringtun's output: a packet plus the 32-byte data header and tag.
const SCRATCH: usize = MAX_PACKET + 64;
/// Handshake messages per second (counted twice: at lookup and in the peer's `Tunn`) before
/// the node answers with cookies instead of doing Diffie-Hellman.
const HANDSHAKES_PER_SEC: u64 = 2 * 100;

/// Where the core's packets go.
pub(crate) trait Io {
    fn send_to(&mut self, datagram: &[u8], to: SocketAddr) -> io::Result<()>;
    fn write_tun(&mut self, packet: &[u8]) -> io::Result<()>;
}

/// Node-wide counters of packets that belong to no peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Datagrams that are not WireGuard messages, or failed the handshake MAC.
    pub invalid: u64,
    /// WireGuard messages for no configured peer (unknown key or receiver index).
    pub unknown_peer: u64,
    /// Cookie replies sent because of handshake load.
    pub cookies_sent: u64,
    /// Packets from the TUN device that are not IPv4 or whose destination no peer owns, and
    /// TUN reads whose virtio header or TCP super-packet could not be taken apart.
    pub no_route: u64,
    /// UDP sends that failed (each may have held several datagrams).
    pub send_failed: u64,
    /// Writes to the TUN device that failed (each may have held several packets).
    pub tun_write_failed: u64,
}

pub(crate) struct Core {
    secret: x25519::StaticSecret,
    public: x25519::PublicKey,
    rate_limiter: Arc<RateLimiter>,
    peers: HashMap<u32, Peer>,
    by_key: HashMap<PublicKey, u32>,
    routes: AllowedIps<u32>,
    scratch: Box<[u8]>,
    stats: NodeStats,
    rng: rand::rngs::StdRng,
    handshakes: Arc<Handshakes>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("peers", &self.peers.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn send(io: &mut impl Io, peer: &mut Peer, datagram: &[u8], to: Option<SocketAddr>) {
    match to {
        Some(to) => match io.send_to(datagram, to) {
            Ok(()) => peer.tx_bytes += datagram.len() as u64,
            Err(e) => {
                peer.dropped += 1;
                tracing::trace!(peer = %peer.key, %to, "send failed: {e}");
            }
        },
        None => peer.dropped += 1,
    }
}

impl Core {
    pub fn new(key: &PrivateKey, rng: rand::rngs::StdRng) -> Self {
        let secret = key.to_x25519();
        let public = x25519::PublicKey::from(&secret);
        Self {
            rate_limiter: Arc::new(RateLimiter::new(&public, HANDSHAKES_PER_SEC)),
            secret,
            public,
            peers: HashMap::new(),
            by_key: HashMap::new(),
            routes: AllowedIps::new(),
            scratch: vec![0u8; SCRATCH].into_boxed_slice(),
            stats: NodeStats::default(),
            rng,
            handshakes: Handshakes::new(),
        }
    }

    pub fn add_peer(&mut self, io: &mut impl Io, cfg: PeerConfig) -> Result<(), NodeError> {
        let key = cfg.public_key;
        if self.by_key.contains_key(&key) {
            return Err(NodeError::PeerExists(key));
        }
        let mut nets = Vec::with_capacity(cfg.allowed_ips.len());
        for &(addr, len) in &cfg.allowed_ips {
            let net = Ipv4Net::new(addr, len)
                .map_err(|source| NodeError::AllowedIp { peer: key, source })?;
            if let Some(owner) = self.routes.get(net).and_then(|s| self.peers.get(&s)) {
                return Err(NodeError::AllowedIpTaken {
                    net,
                    peer: key,
                    owner: owner.key,
                });
            }
            nets.push(net);
        }
        let slot = self.free_slot()?;
        let tunn = Tunn::new(
            self.secret.clone(),
            key.to_x25519(),
            None,
            cfg.persistent_keepalive,
            slot,
            Some(Arc::clone(&self.rate_limiter)),
        )
        .map_err(|reason| NodeError::Tunn { peer: key, reason })?;
        for net in &nets {
            self.routes.insert(*net, slot);
        }
        let mut peer = Peer {
            key,
            tunn,
            endpoint: cfg.endpoint,
            allowed: nets,
            last_handshake: None,
            unconfirmed: None,
            rx_bytes: 0,
            tx_bytes: 0,
            dropped: 0,
        };
        if let Some(to) = peer.endpoint
            && let TunnResult::WriteToNetwork(init) = peer
                .tunn
                .format_handshake_initiation(&mut self.scratch, false)
        {
            send(io, &mut peer, init, Some(to));
        }
        tracing::debug!(peer = %key, allowed = ?peer.allowed, endpoint = ?peer.endpoint, "peer added");
        self.by_key.insert(key, slot);
        self.peers.insert(slot, peer);
        self.handshakes.added(key);
        Ok(())
    }

    /// A random unused 24-bit slot (boringtun puts it in the upper bits of session indices).
    fn free_slot(&mut self) -> Result<u32, NodeError> {
        for _ in 0..1000 {
            let slot = self.rng.gen_range(1..(1u32 << 24));
            if !self.peers.contains_key(&slot) {
                return Ok(slot);
            }
        }
        Err(NodeError::Full)
    }

    /// Forgets the peer and its sessions at once.
    pub fn remove_peer(&mut self, key: &PublicKey) -> Result<(), NodeError> {
        let slot = self
            .by_key
            .remove(key)
            .ok_or(NodeError::UnknownPeer(*key))?;
        self.peers.remove(&slot);
        self.routes.remove_value(slot);
        self.handshakes.removed(key);
        tracing::debug!(peer = %key, "peer removed");
        Ok(())
    }

    pub fn peer_stats(&self) -> Vec<PeerStats> {
        let mut v: Vec<PeerStats> = self.peers.values().map(Peer::stats).collect();
        v.sort_by_key(|p| p.public_key);
        v
    }

    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    /// The completed handshakes, for the handle to wait on.
    pub fn handshakes(&self) -> Arc<Handshakes> {
        Arc::clone(&self.handshakes)
    }

    /// One datagram from `from`.
    pub fn on_datagram(
        &mut self,
        io: &mut impl Io,
        from: SocketAddr,
        datagram: &[u8],
        now: SystemTime,
    ) {
        let Ok(msg) = packet::classify(datagram) else {
            self.stats.invalid += 1;
            return;
        };
        let slot = match msg {
            Message::HandshakeInit => match self.initiator_slot(io, from, datagram) {
                Some(slot) => slot,
                None => return,
            },
            other => match other.peer_index().filter(|s| self.peers.contains_key(s)) {
                Some(slot) => slot,
                None => {
                    self.stats.unknown_peer += 1;
                    return;
                }
            },
        };
        let Core {
            peers,
            routes,
            scratch,
            handshakes,
            ..
        } = self;
        let completed = |peer: &mut Peer| {
            peer.handshake_completed(now);
            handshakes.completed(peer.key, now);
        };
        let Some(peer) = peers.get_mut(&slot) else {
            return;
        };
        peer.rx_bytes += datagram.len() as u64;
        match peer.tunn.decapsulate(Some(from.ip()), datagram, scratch) {
            TunnResult::Done => {
                if let Message::Data { receiver } = msg {
                    peer.endpoint = Some(from);
                    if peer.unconfirmed == Some(receiver) {
                        completed(peer);
                    }
                }
            }
            TunnResult::Err(e) => {
                peer.dropped += 1;
                tracing::trace!(peer = %peer.key, ?msg, "decapsulate: {e:?}");
            }
            TunnResult::WriteToNetwork(reply) => {
                peer.endpoint = Some(from);
                match msg {
                    Message::HandshakeResponse { .. } => completed(peer),
                    Message::HandshakeInit => {
                        // our response's sender index is the new session's local index
                        peer.unconfirmed = reply
                            .get(4..8)
                            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                    }
                    _ => {}
                }
                send(io, peer, reply, Some(from));
                // packets queued while the handshake ran
                while let TunnResult::WriteToNetwork(queued) =
                    peer.tunn.decapsulate(None, &[], scratch)
                {
                    send(io, peer, queued, Some(from));
                }
            }
            TunnResult::WriteToTunnelV4(inner, src) => {
                peer.endpoint = Some(from);
                if let Message::Data { receiver } = msg
                    && peer.unconfirmed == Some(receiver)
                {
                    completed(peer);
                }
                if routes.lookup(src) == Some(slot) {
                    if let Err(e) = io.write_tun(inner) {
                        peer.dropped += 1;
                        tracing::trace!("TUN write failed: {e}");
                    }
                } else {
                    peer.dropped += 1;
                    tracing::debug!(peer = %peer.key, %src, "inner source outside the peer's allowed IPs: dropped");
                }
            }
            TunnResult::WriteToTunnelV6(..) => peer.dropped += 1,
        }
    }

    /// The peer that sent a handshake initiation: the MAC is checked (and under load the
    /// cookie), then the initiator's static key decrypted and looked up.
    fn initiator_slot(
        &mut self,
        io: &mut impl Io,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Option<u32> {
        let parsed = self
            .rate_limiter
            .verify_packet(Some(from.ip()), datagram, &mut self.scratch);
        let half = match parsed {
            Ok(Packet::HandshakeInit(init)) => {
                parse_handshake_anon(&self.secret, &self.public, &init)
            }
            Ok(_) => Err(WireGuardError::WrongPacketType),
            Err(TunnResult::WriteToNetwork(cookie)) => {
                self.stats.cookies_sent += 1;
                let _ = io.send_to(cookie, from);
                return None;
            }
            Err(_) => Err(WireGuardError::InvalidMac),
        };
        match half {
            Ok(half) => {
                let key = PublicKey::from_bytes(half.peer_static_public);
                let slot = self.by_key.get(&key).copied();
                if slot.is_none() {
                    self.stats.unknown_peer += 1;
                    tracing::debug!(peer = %key, %from, "handshake from an unknown key: dropped");
                }
                slot
            }
            Err(e) => {
                self.stats.invalid += 1;
                tracing::trace!(%from, "handshake initiation refused: {e:?}");
                None
            }
        }
    }

    /// One packet read from the TUN device.
    pub fn on_tun_packet(&mut self, io: &mut impl Io, packet: &[u8]) {
        let slot = packet::ipv4_addrs(packet).and_then(|a| self.routes.lookup(a.dst));
        let Some(peer) = slot.and_then(|s| self.peers.get_mut(&s)) else {
            self.stats.no_route += 1;
            return;
        };
        match peer.tunn.encapsulate(packet, &mut self.scratch) {
            TunnResult::WriteToNetwork(datagram) => {
                let to = peer.endpoint;
                send(io, peer, datagram, to);
            }
            TunnResult::Err(e) => {
                peer.dropped += 1;
                tracing::trace!(peer = %peer.key, "encapsulate: {e:?}");
            }
            _ => {}
        }
    }

    /// Timers of every peer (call every 100-250 ms): retransmitted handshakes, rekeys,
    /// keepalives; and the handshake rate limiter's per-second count.
    pub fn tick(&mut self, io: &mut impl Io) {
        self.rate_limiter.reset_count();
        for peer in self.peers.values_mut() {
            match peer.tunn.update_timers(&mut self.scratch) {
                TunnResult::WriteToNetwork(datagram) => {
                    let to = peer.endpoint;
                    send(io, peer, datagram, to);
                }
                TunnResult::Err(WireGuardError::ConnectionExpired) | TunnResult::Done => {}
                TunnResult::Err(e) => tracing::trace!(peer = %peer.key, "timers: {e:?}"),
                _ => {}
            }
        }
    }

    /// A fresh RNG for [`Core::new`] from the operating system.
    pub fn os_rng() -> rand::rngs::StdRng {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        rand::SeedableRng::from_seed(seed)
    }
}
