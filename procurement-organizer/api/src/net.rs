//! Network values of the contract: a WireGuard public key (base64 of 32 bytes, as `wg pubkey`
//! prints it) and an IPv4 network (`10.99.0.0/24`).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A WireGuard public key: 32 bytes, written as standard base64 with padding (44 characters).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WgPublicKey(pub [u8; 32]);

/// A string that is not a WireGuard public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a WireGuard public key: expected 44 characters of standard base64 (32 bytes), as `wg pubkey` prints it"
)]
pub struct WgPublicKeyError;

impl WgPublicKey {
    /// The key as `wg pubkey` prints it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Display for WgPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for WgPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WgPublicKey({self})")
    }
}

impl FromStr for WgPublicKey {
    type Err = WgPublicKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 44 {
            return Err(WgPublicKeyError);
        }
        let mut buf = [0u8; 33];
        match STANDARD.decode_slice(s, &mut buf) {
            Ok(32) => {
                let mut k = [0u8; 32];
                k.copy_from_slice(&buf[..32]);
                Ok(Self(k))
            }
            _ => Err(WgPublicKeyError),
        }
    }
}

impl Serialize for WgPublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WgPublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An IPv4 network: its first address and prefix length; host bits must be zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

/// A string or value that is not an IPv4 network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    #[error("{input:?} is not an IPv4 network: write it as a.b.c.d/len")]
    Syntax { input: String },
    #[error("{input:?}: prefix length must be 0 to 32")]
    Prefix { input: String },
    #[error("{input:?} has host bits set: the network of that address is {network}")]
    HostBits { input: String, network: String },
}

impl Ipv4Net {
    /// A network; refuses a prefix over 32 and host bits set.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, NetError> {
        let input = format!("{addr}/{prefix}");
        if prefix > 32 {
            return Err(NetError::Prefix { input });
        }
        let net = Self { addr, prefix };
        let network = Ipv4Addr::from(u32::from(addr) & net.mask());
        if network != addr {
            return Err(NetError::HostBits {
                input,
                network: format!("{network}/{prefix}"),
            });
        }
        Ok(net)
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The netmask as an integer.
    pub fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    /// Number of addresses in the network (2^(32 - prefix)).
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The `i`-th address of the network, if `i` is inside it.
    pub fn nth(&self, i: u64) -> Option<Ipv4Addr> {
        if i >= self.size() {
            return None;
        }
        let i = u32::try_from(i).ok()?;
        Some(Ipv4Addr::from(u32::from(self.addr) | i))
    }

    /// Whether the two networks share an address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Debug for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ipv4Net({self})")
    }
}

impl FromStr for Ipv4Net {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || NetError::Syntax {
            input: s.chars().take(64).collect(),
        };
        let (a, p) = s.split_once('/').ok_or_else(syntax)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| syntax())?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let prefix: u8 = p.parse().map_err(|_| syntax())?;
        Self::new(addr, prefix)
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

    #[test]
    fn wg_keys_round_trip_and_refuse_wrong_sizes() {
        let k = WgPublicKey([7; 32]);
        let s = k.to_string();
        assert_eq!(s.len(), 44);
        assert_eq!(s.parse::<WgPublicKey>().unwrap(), k);
        for bad in [
            "",
            "AAAA",
            &"A".repeat(44),
            &"A".repeat(43),
            &format!("{}==", "A".repeat(42)),
            &format!("{}=", "*".repeat(43)),
            &format!("{}=", "é".repeat(21)),
            &format!(" {}", &s[1..]),
        ] {
            assert!(bad.parse::<WgPublicKey>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn networks_parse_strictly() {
        let n: Ipv4Net = "10.99.0.0/24".parse().unwrap();
        assert_eq!(n.size(), 256);
        assert!(n.contains("10.99.0.77".parse().unwrap()));
        assert!(!n.contains("10.99.1.0".parse().unwrap()));
        assert_eq!(n.nth(1), Some("10.99.0.1".parse().unwrap()));
        assert_eq!(n.nth(256), None);
        assert_eq!("0.0.0.0/0".parse::<Ipv4Net>().unwrap().size(), 1 << 32);
        assert_eq!("1.2.3.4/32".parse::<Ipv4Net>().unwrap().size(), 1);
        assert!(n.overlaps(&"10.0.0.0/8".parse().unwrap()));
        assert!(!n.overlaps(&"172.30.0.0/24".parse().unwrap()));
        for bad in [
            "10.99.0.1/24",
            "10.99.0.0/33",
            "10.99.0.0",
            "10.99.0.0/",
            "10.99.0.0/+8",
            "10.99.0.0/024",
            "10.99.0/24",
            "x/24",
        ] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad:?}");
        }
        let e = "10.99.0.1/24".parse::<Ipv4Net>().unwrap_err().to_string();
        assert!(e.contains("10.99.0.0/24"), "{e}");
    }
}
