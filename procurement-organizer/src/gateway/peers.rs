//! The gateway's peer table: one peer per (lease, server), each with a single tunnel address
//! from the tunnel network and, at a WireGuard gateway, its WireGuard key (an IPsec peer has
//! none: its LM certificate is its IKE credential, and the address becomes its only TSi). Pure; the shell persists it (`<state>/gateway/peers.json`)
//! before it answers, and re-adds every peer to WireGuard after a restart.
//!
//! Allocation: the lowest free host address, never the network address, the gateway's own
//! address or the broadcast address. A server that registers again keeps its address (its key
//! is replaced); a key already used by another server is refused, so two peers can never
//! share a key or an address.

use std::net::Ipv4Addr;

use lm_api::{LeaseId, Name};
use po_api::{Ipv4Net, WgPublicKey};
use serde::{Deserialize, Serialize};

/// One admitted peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerEntry {
    pub lease: LeaseId,
    pub server: Name,
    /// The WireGuard key (WireGuard gateways; absent for IPsec peers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wg_public_key: Option<WgPublicKey>,
    pub address: Ipv4Addr,
    /// Unix ms of the last registration.
    pub registered_ms: u64,
}

/// The table (also its file format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerTable {
    network: Ipv4Net,
    gateway: Ipv4Addr,
    peers: Vec<PeerEntry>,
}

/// What a registration changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub entry: PeerEntry,
    /// The server's previous key, to remove from WireGuard (a re-registration).
    pub replaced: Option<WgPublicKey>,
    /// The same server registered the same key (or again no key) again: WireGuard already
    /// has the peer.
    pub unchanged: bool,
}

/// Why a registration could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error("the tunnel network {network} has no free address ({used} in use)")]
    Full { network: Ipv4Net, used: usize },
    #[error("WireGuard key {key} is already registered for server {server} of lease {lease}")]
    KeyInUse {
        key: WgPublicKey,
        lease: LeaseId,
        server: Name,
    },
}

impl PeerTable {
    /// An empty table for `network`, the gateway holding `gateway`.
    pub fn new(network: Ipv4Net, gateway: Ipv4Addr) -> Self {
        Self {
            network,
            gateway,
            peers: Vec::new(),
        }
    }

    pub fn network(&self) -> Ipv4Net {
        self.network
    }

    pub fn peers(&self) -> &[PeerEntry] {
        &self.peers
    }

    /// The tunnel address of (lease, server), if registered.
    pub fn address_of(&self, lease: LeaseId, server: &Name) -> Option<Ipv4Addr> {
        self.peers
            .iter()
            .find(|p| p.lease == lease && &p.server == server)
            .map(|p| p.address)
    }

    fn usable(&self, ip: Ipv4Addr) -> bool {
        let last = self.network.size().saturating_sub(1);
        self.network.contains(ip)
            && ip != self.network.addr()
            && ip != self.gateway
            && Some(ip) != self.network.nth(last)
    }

    /// Registers (lease, server) with `key` (`None`: an IPsec peer) at `now_ms`.
    pub fn register(
        &mut self,
        lease: LeaseId,
        server: &Name,
        key: Option<WgPublicKey>,
        now_ms: u64,
    ) -> Result<Registered, PeerError> {
        if let Some(key) = key
            && let Some(other) = self.peers.iter().find(|p| {
                p.wg_public_key == Some(key) && !(p.lease == lease && &p.server == server)
            })
        {
            return Err(PeerError::KeyInUse {
                key,
                lease: other.lease,
                server: other.server.clone(),
            });
        }
        if let Some(p) = self
            .peers
            .iter_mut()
            .find(|p| p.lease == lease && &p.server == server)
        {
            let old = std::mem::replace(&mut p.wg_public_key, key);
            p.registered_ms = now_ms;
            return Ok(Registered {
                entry: p.clone(),
                replaced: old.filter(|o| Some(*o) != key),
                unchanged: old == key,
            });
        }
        let used: std::collections::BTreeSet<Ipv4Addr> =
            self.peers.iter().map(|p| p.address).collect();
        let address = (1..self.network.size())
            .filter_map(|i| self.network.nth(i))
            .find(|ip| self.usable(*ip) && !used.contains(ip))
            .ok_or(PeerError::Full {
                network: self.network,
                used: used.len(),
            })?;
        let entry = PeerEntry {
            lease,
            server: server.clone(),
            wg_public_key: key,
            address,
            registered_ms: now_ms,
        };
        self.peers.push(entry.clone());
        Ok(Registered {
            entry,
            replaced: None,
            unchanged: false,
        })
    }

    /// Removes every peer of `lease`; returns them (to remove from WireGuard).
    pub fn remove_lease(&mut self, lease: LeaseId) -> Vec<PeerEntry> {
        let (gone, kept) = std::mem::take(&mut self.peers)
            .into_iter()
            .partition(|p| p.lease == lease);
        self.peers = kept;
        gone
    }

    /// Removes one server's peer.
    pub fn remove_server(&mut self, lease: LeaseId, server: &Name) -> Option<PeerEntry> {
        let i = self
            .peers
            .iter()
            .position(|p| p.lease == lease && &p.server == server)?;
        Some(self.peers.remove(i))
    }

    /// Leases with at least one peer.
    pub fn leases(&self) -> Vec<LeaseId> {
        let mut v: Vec<LeaseId> = self.peers.iter().map(|p| p.lease).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Checks a table read from disk against the configuration: same network and gateway
    /// address, every address usable and unique, every key unique.
    pub fn check(&self, network: Ipv4Net, gateway: Ipv4Addr) -> Result<(), String> {
        if self.network != network || self.gateway != gateway {
            return Err(format!(
                "it was made for tunnel network {} (gateway {}), the config says {network} (gateway {gateway}); remove it to start with no peers",
                self.network, self.gateway
            ));
        }
        let mut addrs = std::collections::BTreeSet::new();
        let mut keys = std::collections::BTreeSet::new();
        let mut names = std::collections::BTreeSet::new();
        for p in &self.peers {
            if !self.usable(p.address) || !addrs.insert(p.address) {
                return Err(format!(
                    "address {} is not usable or given twice",
                    p.address
                ));
            }
            let key_twice = p.wg_public_key.is_some_and(|k| !keys.insert(k));
            if key_twice || !names.insert((p.lease, p.server.clone())) {
                return Err(format!("peer {} of {} is listed twice", p.server, p.lease));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn table(net: &str) -> PeerTable {
        let n: Ipv4Net = net.parse().unwrap();
        PeerTable::new(n, n.nth(1).unwrap())
    }

    fn name(i: u32) -> Name {
        format!("vm{i}").parse().unwrap()
    }

    fn key(i: u8) -> Option<WgPublicKey> {
        Some(WgPublicKey([i; 32]))
    }

    #[test]
    fn addresses_skip_network_gateway_and_broadcast() {
        let mut t = table("10.99.0.0/30");
        let l = LeaseId::from_random(1);
        let a = t.register(l, &name(1), key(1), 0).unwrap();
        assert_eq!(a.entry.address, Ipv4Addr::new(10, 99, 0, 2));
        assert_eq!(
            t.register(l, &name(2), key(2), 0),
            Err(PeerError::Full {
                network: "10.99.0.0/30".parse().unwrap(),
                used: 1
            })
        );
        assert_eq!(t.remove_lease(l).len(), 1);
        assert_eq!(
            t.register(l, &name(2), key(2), 0).unwrap().entry.address,
            Ipv4Addr::new(10, 99, 0, 2),
            "a freed address is given again"
        );
    }

    #[test]
    fn re_registration_keeps_the_address_and_replaces_the_key() {
        let mut t = table("10.99.0.0/24");
        let l = LeaseId::from_random(1);
        let first = t.register(l, &name(1), key(1), 1).unwrap();
        t.register(l, &name(2), key(2), 1).unwrap();
        let again = t.register(l, &name(1), key(3), 2).unwrap();
        assert_eq!(again.entry.address, first.entry.address);
        assert_eq!(again.replaced, key(1));
        let same = t.register(l, &name(1), key(3), 3).unwrap();
        assert_eq!((same.replaced, same.unchanged), (None, true));
        assert!(!again.unchanged);
        let stolen = t.register(l, &name(4), key(2), 4).unwrap_err();
        assert!(matches!(stolen, PeerError::KeyInUse { .. }), "{stolen}");
        assert_eq!(t.address_of(l, &name(1)), Some(first.entry.address));
        assert_eq!(t.remove_server(l, &name(1)).unwrap().wg_public_key, key(3));
        // IPsec peers have no key: any number of them, each with its own address.
        let a = t.register(l, &name(7), None, 5).unwrap();
        let b = t.register(l, &name(8), None, 5).unwrap();
        assert_ne!(a.entry.address, b.entry.address);
        let again = t.register(l, &name(7), None, 6).unwrap();
        assert_eq!(again.entry.address, a.entry.address);
        assert!(again.unchanged && again.replaced.is_none());
        assert_eq!(t.address_of(l, &name(1)), None);
        t.check(t.network(), Ipv4Addr::new(10, 99, 0, 1)).unwrap();
        assert!(
            t.check("10.98.0.0/24".parse().unwrap(), Ipv4Addr::new(10, 98, 0, 1))
                .is_err()
        );
    }

    proptest! {
        /// Whatever the order of registrations and removals: no address twice, none of the
        /// reserved ones, all inside the network, and the table passes its own check.
        #[test]
        fn no_address_twice(ops in prop::collection::vec((0u64..4, 0u32..12, 0u8..20, any::<bool>()), 1..80)) {
            let mut t = table("10.99.0.0/28");
            for (lease, server, k, remove) in ops {
                let l = LeaseId::from_random(lease);
                if remove {
                    t.remove_lease(l);
                } else {
                    let _ = t.register(l, &name(server), key(k), 0);
                }
                let mut seen = std::collections::BTreeSet::new();
                for p in t.peers() {
                    prop_assert!(seen.insert(p.address));
                    prop_assert!(t.network().contains(p.address));
                    prop_assert!(p.address != Ipv4Addr::new(10, 99, 0, 0));
                    prop_assert!(p.address != Ipv4Addr::new(10, 99, 0, 1));
                    prop_assert!(p.address != Ipv4Addr::new(10, 99, 0, 15));
                }
                prop_assert!(t.check(t.network(), Ipv4Addr::new(10, 99, 0, 1)).is_ok());
            }
        }
    }
}
