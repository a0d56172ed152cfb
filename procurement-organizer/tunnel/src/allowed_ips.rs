//! Cryptokey routing: IPv4 networks mapped to peers, looked up by longest prefix. A packet from
//! the TUN device goes to the peer that owns its destination; a decrypted packet is accepted
//! only if its source looks up to the peer that sent it (WireGuard whitepaper section 2).
//!
//! Pure. One hash map per prefix length in use, searched from the longest length down, so a
//! gateway with thousands of /32 peers and a few wider networks does a handful of lookups.

use std::collections::HashMap;
use std::net::Ipv4Addr;

/// A network that is not an IPv4 prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{addr}/{len} is not an IPv4 network: the prefix length must be 0 to 32")]
pub struct PrefixError {
    pub addr: Ipv4Addr,
    pub len: u8,
}

/// An IPv4 network with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    len: u8,
}

impl Ipv4Net {
    /// 0.0.0.0/0.
    pub const DEFAULT: Ipv4Net = Ipv4Net {
        addr: Ipv4Addr::UNSPECIFIED,
        len: 0,
    };

    /// `addr/len` with the host bits of `addr` cleared.
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Self, PrefixError> {
        if len > 32 {
            return Err(PrefixError { addr, len });
        }
        Ok(Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask(len)),
            len,
        })
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.len) == u32::from(self.addr)
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn mask(len: u8) -> u32 {
    match len {
        0 => 0,
        l => u32::MAX << (32 - u32::from(l.min(32))),
    }
}

/// Networks -> values (peer slots), longest prefix wins.
#[derive(Debug, Clone)]
pub struct AllowedIps<T> {
    by_len: Vec<HashMap<u32, T>>,
    /// Prefix lengths with at least one entry, longest first.
    lens: Vec<u8>,
}

impl<T> Default for AllowedIps<T> {
    fn default() -> Self {
        Self {
            by_len: (0..=32).map(|_| HashMap::new()).collect(),
            lens: Vec::new(),
        }
    }
}

impl<T: Copy + PartialEq> AllowedIps<T> {
    pub fn new() -> Self {
        Self::default()
    }

    fn table(&self, len: u8) -> Option<&HashMap<u32, T>> {
        self.by_len.get(usize::from(len))
    }

    /// The value that owns exactly `net`, if any.
    pub fn get(&self, net: Ipv4Net) -> Option<T> {
        self.table(net.len)?.get(&u32::from(net.addr)).copied()
    }

    /// Maps `net` to `value`; returns the previous owner of exactly this network.
    pub fn insert(&mut self, net: Ipv4Net, value: T) -> Option<T> {
        let table = self.by_len.get_mut(usize::from(net.len))?;
        let old = table.insert(u32::from(net.addr), value);
        if !self.lens.contains(&net.len) {
            self.lens.push(net.len);
            self.lens.sort_unstable_by(|a, b| b.cmp(a));
        }
        old
    }

    /// Removes every network that maps to `value`.
    pub fn remove_value(&mut self, value: T) {
        for table in &mut self.by_len {
            table.retain(|_, v| *v != value);
        }
        let by_len = &self.by_len;
        self.lens
            .retain(|l| by_len.get(usize::from(*l)).is_some_and(|t| !t.is_empty()));
    }

    /// The value of the longest network containing `ip`.
    pub fn lookup(&self, ip: Ipv4Addr) -> Option<T> {
        let ip = u32::from(ip);
        self.lens.iter().find_map(|&len| {
            self.table(len)
                .and_then(|t| t.get(&(ip & mask(len))))
                .copied()
        })
    }

    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str, len: u8) -> Ipv4Net {
        Ipv4Net::new(s.parse().unwrap(), len).unwrap()
    }

    #[test]
    fn networks_are_normalised_and_checked() {
        assert_eq!(net("10.1.2.3", 24).to_string(), "10.1.2.0/24");
        assert_eq!(net("10.1.2.3", 0).to_string(), "0.0.0.0/0");
        assert_eq!(net("10.1.2.3", 32).to_string(), "10.1.2.3/32");
        assert!(Ipv4Net::new(Ipv4Addr::LOCALHOST, 33).is_err());
        assert!(Ipv4Net::new(Ipv4Addr::LOCALHOST, 255).is_err());
        assert!(net("10.1.0.0", 16).contains("10.1.255.1".parse().unwrap()));
        assert!(!net("10.1.0.0", 16).contains("10.2.0.1".parse().unwrap()));
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = AllowedIps::new();
        assert_eq!(t.lookup("10.0.0.1".parse().unwrap()), None);
        t.insert(net("0.0.0.0", 0), 0u32);
        t.insert(net("10.0.0.0", 8), 1);
        t.insert(net("10.7.0.0", 16), 2);
        t.insert(net("10.7.0.9", 32), 3);
        let at = |s: &str| t.lookup(s.parse().unwrap());
        assert_eq!(at("192.168.1.1"), Some(0));
        assert_eq!(at("10.1.1.1"), Some(1));
        assert_eq!(at("10.7.3.3"), Some(2));
        assert_eq!(at("10.7.0.9"), Some(3));
        assert_eq!(at("10.7.0.10"), Some(2));
    }

    #[test]
    fn removing_a_value_removes_all_its_networks_only() {
        let mut t = AllowedIps::new();
        t.insert(net("10.0.0.0", 8), 1u32);
        t.insert(net("10.7.0.9", 32), 2);
        t.insert(net("10.8.0.0", 16), 2);
        assert_eq!(t.insert(net("10.8.0.0", 16), 2), Some(2));
        t.remove_value(2);
        assert_eq!(t.lookup("10.7.0.9".parse().unwrap()), Some(1));
        assert_eq!(t.lookup("10.8.1.1".parse().unwrap()), Some(1));
        assert_eq!(t.get(net("10.8.0.0", 16)), None);
        t.remove_value(1);
        assert!(t.is_empty());
        assert_eq!(t.lookup("10.7.0.9".parse().unwrap()), None);
    }
}
