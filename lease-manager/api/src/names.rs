//! Names and identifiers of leases and tenants.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A lease: `l-` and 16 lowercase hex characters (64 random bits drawn by the LM).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseId(u64);

/// A string that is not a lease id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a lease id: expected `l-` and 16 lowercase hex characters")]
pub struct LeaseIdError {
    /// The rejected input, truncated to 64 characters.
    pub input: String,
}

impl LeaseId {
    /// Wraps random bits drawn by the caller.
    pub fn from_random(bits: u64) -> Self {
        Self(bits)
    }

    /// The raw value (store keys).
    pub fn get(&self) -> u64 {
        self.0
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "l-{:016x}", self.0)
    }
}

impl fmt::Debug for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseId({self})")
    }
}

impl FromStr for LeaseId {
    type Err = LeaseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || LeaseIdError {
            input: s.chars().take(64).collect(),
        };
        let hex = s.strip_prefix("l-").ok_or_else(err)?;
        if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(err());
        }
        u64::from_str_radix(hex, 16).map(Self).map_err(|_| err())
    }
}

impl Serialize for LeaseId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LeaseId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A name of a server, tenant or operator: 1-63 of `[A-Za-z0-9._-]`, starting with a letter
/// or digit. Safe in certificate identities, file names, URLs and log lines.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

/// A string that is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a valid name: use 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit"
)]
pub struct NameError {
    /// The rejected input, truncated to 64 characters.
    pub input: String,
}

impl Name {
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({:?})", self.0)
    }
}

impl FromStr for Name {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && s.as_bytes()[0].is_ascii_alphanumeric();
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(NameError {
                input: s.chars().take(64).collect(),
            })
        }
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_id_round_trips_and_rejects() {
        let id = LeaseId::from_random(0xfeed);
        assert_eq!(id.to_string(), "l-000000000000feed");
        assert_eq!("l-000000000000feed".parse::<LeaseId>().unwrap(), id);
        for bad in [
            "",
            "l-",
            "000000000000feed",
            "l-000000000000FEED",
            "l-000000000000feed0",
            "L-000000000000feed",
            "l-+00000000000feed",
        ] {
            assert!(bad.parse::<LeaseId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_are_checked() {
        for good in ["acme", "a", "vm-1.rack_2", &"x".repeat(63)] {
            assert!(good.parse::<Name>().is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "-a",
            ".a",
            "a b",
            "a/b",
            "a:b",
            "é",
            &"x".repeat(64),
            "a\0",
        ] {
            assert!(bad.parse::<Name>().is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<Name>("\"a:b\"").is_err());
    }
}
