//! IPv4 networks written as CIDR (`10.77.0.0/24`) in the `[dhcp]` config, and the address
//! arithmetic the engine needs (mask, broadcast, membership). Pure: no IO.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IPv4 network: an address with no host bits set and a prefix length of 0-32.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    network: Ipv4Addr,
    prefix: u8,
}

/// A string that is not an IPv4 network in CIDR form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not an IPv4 network: write the network address and prefix length, like 10.77.0.0/24{hint}"
)]
pub struct NetParseError {
    /// The rejected input, truncated to 64 characters.
    pub input: String,
    /// Extra advice (for example the correct network address when host bits were set).
    pub hint: String,
}

impl Ipv4Net {
    /// The network `addr/prefix`; `None` if `prefix > 32` or `addr` has host bits set.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        let net = Self {
            network: addr,
            prefix,
        };
        (prefix <= 32 && u32::from(addr) & !net.mask_bits() == 0).then_some(net)
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask_bits(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// The subnet mask (option 1).
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    /// The directed broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !self.mask_bits())
    }

    /// True if `addr` is inside the network (network and broadcast addresses included).
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask_bits() == u32::from(self.network)
    }

    /// True if `addr` is inside the network and usable by a host (not the network or broadcast
    /// address; /31 and /32 have no such reserved addresses).
    pub fn is_host(&self, addr: Ipv4Addr) -> bool {
        self.contains(addr)
            && (self.prefix >= 31 || (addr != self.network && addr != self.broadcast()))
    }

    /// True if the two networks share an address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl fmt::Debug for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Ipv4Net {
    type Err = NetParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |hint: String| NetParseError {
            input: s.chars().take(64).collect(),
            hint,
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(|| err(String::new()))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| err(String::new()))?;
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(String::new()));
        }
        let prefix: u8 = prefix.parse().map_err(|_| err(String::new()))?;
        if prefix > 32 {
            return Err(err(" (the prefix length is at most 32)".into()));
        }
        Self::new(addr, prefix).ok_or_else(|| {
            let bits = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            let fixed = Ipv4Addr::from(u32::from(addr) & bits);
            err(format!(
                " (host bits are set: did you mean {fixed}/{prefix}?)"
            ))
        })
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn arithmetic_of_a_slash_24() {
        let n: Ipv4Net = "10.77.0.0/24".parse().unwrap();
        assert_eq!(n.mask(), ip("255.255.255.0"));
        assert_eq!(n.broadcast(), ip("10.77.0.255"));
        assert!(n.contains(ip("10.77.0.0")) && n.contains(ip("10.77.0.255")));
        assert!(!n.contains(ip("10.77.1.0")));
        assert!(n.is_host(ip("10.77.0.1")) && !n.is_host(ip("10.77.0.255")));
        assert!(!n.is_host(ip("10.77.0.0")));
        assert_eq!(n.to_string(), "10.77.0.0/24");
    }

    #[test]
    fn edge_prefixes() {
        let all: Ipv4Net = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("255.255.255.255")));
        assert_eq!(all.mask(), ip("0.0.0.0"));
        let one: Ipv4Net = "10.0.0.7/32".parse().unwrap();
        assert!(one.is_host(ip("10.0.0.7")) && !one.contains(ip("10.0.0.8")));
        let a: Ipv4Net = "10.0.0.0/8".parse().unwrap();
        let b: Ipv4Net = "10.9.0.0/16".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!b.overlaps(&"10.10.0.0/16".parse().unwrap()));
    }

    #[test]
    fn rejects_hostile_input() {
        for bad in [
            "",
            "/",
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/+8",
            "10.0.0.0/008",
            "10.0.0.0/24/1",
            "10.0.0.1/24",
            "10.0.0/24",
            "::1/64",
            "10.0.0.0/2\u{0}",
        ] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad:?} accepted");
        }
        let e = "10.77.0.1/24".parse::<Ipv4Net>().unwrap_err();
        assert!(e.to_string().contains("did you mean 10.77.0.0/24"), "{e}");
    }
}
