//! [`LeaseTable`]: the server's leases in memory, indexed by address and by MAC, plus the
//! offer holds (addresses offered but not yet requested, never persisted). It is the single
//! source of truth in memory and is mirrored to a [`LeaseStore`](super::LeaseStore) by the
//! shell. The engine reads it; only [`LeaseTable::apply`] changes it. Pure: no IO.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use lm_api::MacAddr;

use super::lease::{Lease, LeaseState};

/// An address offered to a MAC and held for it until `until` (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferHold {
    /// The client the address was offered to.
    pub mac: MacAddr,
    /// The offered address.
    pub address: Ipv4Addr,
    /// End of the hold.
    pub until: u64,
}

/// One change to the lease table, as decided by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseChange {
    /// Store this lease (bound or declined), replacing whatever was at its address. Durable.
    Put(Lease),
    /// Forget the lease at `address` (RELEASE, or a client moved to another address). Durable.
    Remove {
        /// The address.
        address: Ipv4Addr,
        /// The client that held it.
        mac: MacAddr,
    },
    /// Hold an offered address for a while. In memory only.
    Hold(OfferHold),
}

impl LeaseChange {
    /// True if the change must reach the store before the reply that carries it is sent.
    pub fn is_durable(&self) -> bool {
        !matches!(self, Self::Hold(_))
    }
}

/// Leases and offer holds, indexed by address and by MAC.
#[derive(Debug, Default, Clone)]
pub struct LeaseTable {
    by_addr: HashMap<Ipv4Addr, Lease>,
    /// Bound leases only: the address each MAC holds.
    by_mac: HashMap<MacAddr, Ipv4Addr>,
    holds: HashMap<Ipv4Addr, OfferHold>,
    hold_by_mac: HashMap<MacAddr, Ipv4Addr>,
}

impl LeaseTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A table holding `leases` (as loaded from the store). Should the store hold two bound
    /// leases for one MAC, the one expiring last wins in memory.
    pub fn from_leases(leases: impl IntoIterator<Item = Lease>) -> Self {
        let mut leases: Vec<Lease> = leases.into_iter().collect();
        leases.sort_by_key(|l| l.expires_at);
        let mut table = Self::new();
        for lease in leases {
            table.apply(&LeaseChange::Put(lease));
        }
        table
    }

    /// Number of leases (bound or declined, expired or not).
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// True if there are no leases.
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    /// All leases, in no particular order.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.by_addr.values()
    }

    /// The lease record at `addr`, expired or not.
    pub fn lease_at(&self, addr: Ipv4Addr) -> Option<&Lease> {
        self.by_addr.get(&addr)
    }

    /// The bound lease of `mac`, expired or not.
    pub fn lease_of(&self, mac: MacAddr) -> Option<&Lease> {
        self.by_mac.get(&mac).and_then(|a| self.by_addr.get(a))
    }

    /// The bound, unexpired lease of `mac`.
    pub fn active_lease_of(&self, mac: MacAddr, now: u64) -> Option<&Lease> {
        self.lease_of(mac).filter(|l| l.is_active(now))
    }

    /// The unexpired offer hold of `mac`.
    pub fn hold_of(&self, mac: MacAddr, now: u64) -> Option<&OfferHold> {
        let addr = self.hold_by_mac.get(&mac)?;
        self.holds
            .get(addr)
            .filter(|h| h.until > now && h.mac == mac)
    }

    /// The MAC an address is bound to right now (for TFTP/HTTP: who is asking?).
    pub fn mac_for(&self, addr: Ipv4Addr, now: u64) -> Option<MacAddr> {
        let lease = self.by_addr.get(&addr)?;
        (lease.state == LeaseState::Bound && lease.is_active(now)).then_some(lease.mac)
    }

    /// Who (other than `mac`) keeps `addr` from being given to `mac` at `now`: an unexpired
    /// lease of another MAC, a quarantine, or another MAC's unexpired offer hold.
    pub fn holder_other_than(&self, addr: Ipv4Addr, mac: MacAddr, now: u64) -> Option<MacAddr> {
        if let Some(l) = self.by_addr.get(&addr)
            && l.is_active(now)
            && (l.state == LeaseState::Declined || l.mac != mac)
        {
            return Some(l.mac);
        }
        self.holds
            .get(&addr)
            .filter(|h| h.until > now && h.mac != mac)
            .map(|h| h.mac)
    }

    /// True if `addr` may be offered to or bound to `mac` at `now`.
    pub fn is_free_for(&self, addr: Ipv4Addr, mac: MacAddr, now: u64) -> bool {
        self.holder_other_than(addr, mac, now).is_none()
    }

    /// Applies one change.
    pub fn apply(&mut self, change: &LeaseChange) {
        match change {
            LeaseChange::Put(lease) => self.put(lease.clone()),
            LeaseChange::Remove { address, .. } => {
                self.remove_addr(*address);
            }
            LeaseChange::Hold(hold) => {
                self.drop_hold_of(hold.mac);
                if let Some(old) = self.holds.insert(hold.address, *hold)
                    && old.mac != hold.mac
                {
                    self.hold_by_mac.remove(&old.mac);
                }
                self.hold_by_mac.insert(hold.mac, hold.address);
            }
        }
    }

    fn put(&mut self, lease: Lease) {
        let addr = lease.address;
        self.remove_addr(addr);
        if let Some(h) = self.holds.remove(&addr) {
            self.hold_by_mac.remove(&h.mac);
        }
        if lease.state == LeaseState::Bound {
            self.drop_hold_of(lease.mac);
            if let Some(old) = self.by_mac.insert(lease.mac, addr) {
                self.by_addr.remove(&old);
            }
        }
        self.by_addr.insert(addr, lease);
    }

    fn remove_addr(&mut self, addr: Ipv4Addr) -> Option<Lease> {
        let old = self.by_addr.remove(&addr)?;
        if self.by_mac.get(&old.mac) == Some(&addr) {
            self.by_mac.remove(&old.mac);
        }
        Some(old)
    }

    fn drop_hold_of(&mut self, mac: MacAddr) {
        if let Some(addr) = self.hold_by_mac.remove(&mac)
            && self.holds.get(&addr).is_some_and(|h| h.mac == mac)
        {
            self.holds.remove(&addr);
        }
    }

    /// Drops expired offer holds and expired leases; returns the removed leases so the caller
    /// can remove them from the store too.
    pub fn prune(&mut self, now: u64) -> Vec<Lease> {
        let stale: Vec<(MacAddr, Ipv4Addr)> = self
            .holds
            .values()
            .filter(|h| h.until <= now)
            .map(|h| (h.mac, h.address))
            .collect();
        for (mac, addr) in stale {
            self.holds.remove(&addr);
            if self.hold_by_mac.get(&mac) == Some(&addr) {
                self.hold_by_mac.remove(&mac);
            }
        }
        let expired: Vec<Ipv4Addr> = self
            .by_addr
            .values()
            .filter(|l| !l.is_active(now))
            .map(|l| l.address)
            .collect();
        expired
            .into_iter()
            .filter_map(|a| self.remove_addr(a))
            .collect()
    }

    /// Checks the index invariants (tests and debugging).
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        for (mac, addr) in &self.by_mac {
            let l = self.by_addr.get(addr).expect("by_mac points at a lease");
            assert_eq!((l.mac, l.state), (*mac, LeaseState::Bound));
        }
        for l in self
            .by_addr
            .values()
            .filter(|l| l.state == LeaseState::Bound)
        {
            assert_eq!(
                self.by_mac.get(&l.mac),
                Some(&l.address),
                "bound lease not indexed"
            );
        }
        for (mac, addr) in &self.hold_by_mac {
            assert_eq!(self.holds.get(addr).map(|h| h.mac), Some(*mac));
        }
        assert_eq!(self.holds.len(), self.hold_by_mac.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }
    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, n)
    }
    fn bound(m: u8, a: u8, exp: u64) -> Lease {
        Lease {
            mac: mac(m),
            address: ip(a),
            expires_at: exp,
            state: LeaseState::Bound,
            hostname: None,
            client_id: None,
        }
    }

    #[test]
    fn one_bound_lease_per_mac_and_per_address() {
        let mut t = LeaseTable::new();
        t.apply(&LeaseChange::Put(bound(1, 10, 100)));
        t.apply(&LeaseChange::Put(bound(1, 11, 100)));
        assert!(
            t.lease_at(ip(10)).is_none(),
            "moving a MAC drops its old lease in memory"
        );
        t.apply(&LeaseChange::Put(bound(2, 11, 200)));
        assert!(t.lease_of(mac(1)).is_none());
        assert_eq!(t.lease_of(mac(2)).map(|l| l.address), Some(ip(11)));
        t.check_invariants();
    }

    #[test]
    fn holds_block_other_macs_until_they_expire_or_bind() {
        let mut t = LeaseTable::new();
        t.apply(&LeaseChange::Hold(OfferHold {
            mac: mac(1),
            address: ip(20),
            until: 30,
        }));
        assert!(!t.is_free_for(ip(20), mac(2), 29));
        assert!(t.is_free_for(ip(20), mac(1), 29));
        assert!(t.is_free_for(ip(20), mac(2), 30));
        t.apply(&LeaseChange::Hold(OfferHold {
            mac: mac(1),
            address: ip(21),
            until: 30,
        }));
        assert!(
            t.is_free_for(ip(20), mac(2), 0),
            "a new offer replaces the old hold"
        );
        t.apply(&LeaseChange::Put(bound(1, 21, 100)));
        assert!(t.hold_of(mac(1), 0).is_none(), "binding consumes the hold");
        t.check_invariants();
    }

    #[test]
    fn declined_addresses_belong_to_nobody() {
        let mut t = LeaseTable::new();
        t.apply(&LeaseChange::Put(bound(1, 30, 100)));
        let mut q = bound(1, 30, 50);
        q.state = LeaseState::Declined;
        t.apply(&LeaseChange::Put(q));
        assert!(t.lease_of(mac(1)).is_none());
        assert!(
            !t.is_free_for(ip(30), mac(1), 49),
            "not even for the MAC that declined it"
        );
        assert!(t.is_free_for(ip(30), mac(1), 50));
        assert_eq!(t.mac_for(ip(30), 10), None);
        t.check_invariants();
    }

    #[test]
    fn prune_and_remove() {
        let mut t =
            LeaseTable::from_leases([bound(1, 40, 10), bound(2, 41, 100), bound(1, 42, 50)]);
        assert_eq!(
            t.lease_of(mac(1)).map(|l| l.address),
            Some(ip(42)),
            "latest expiry wins at load"
        );
        t.apply(&LeaseChange::Hold(OfferHold {
            mac: mac(3),
            address: ip(43),
            until: 60,
        }));
        let gone = t.prune(60);
        assert_eq!(
            gone.iter().map(|l| l.address).collect::<Vec<_>>(),
            vec![ip(42)]
        );
        assert!(t.hold_of(mac(3), 0).is_none());
        t.apply(&LeaseChange::Remove {
            address: ip(41),
            mac: mac(2),
        });
        assert!(t.is_empty());
        t.check_invariants();
    }
}
