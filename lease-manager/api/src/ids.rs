//! Typed identifiers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One boot attempt of one server: created by the LM when it wakes the server, carried in the
/// per-host iPXE script to the agent's kernel command line, and echoed in every agent report.
/// 16 lowercase hex characters (64 random bits).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BootId(u64);

/// A string that is not a boot id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a boot id: expected 16 lowercase hex characters")]
pub struct BootIdError {
    /// The rejected input, truncated to 64 characters.
    pub input: String,
}

impl BootId {
    /// Wraps random bits drawn by the caller (randomness is an argument, never drawn here).
    pub fn from_random(bits: u64) -> Self {
        Self(bits)
    }

    /// The raw value.
    pub fn get(&self) -> u64 {
        self.0
    }
}

impl fmt::Display for BootId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for BootId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootId({self})")
    }
}

impl FromStr for BootId {
    type Err = BootIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            return Err(BootIdError {
                input: s.chars().take(64).collect(),
            });
        }
        u64::from_str_radix(s, 16)
            .map(Self)
            .map_err(|_| BootIdError {
                input: s.to_string(),
            })
    }
}

impl Serialize for BootId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BootId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects() {
        let id = BootId::from_random(0x0123_4567_89ab_cdef);
        assert_eq!(id.to_string(), "0123456789abcdef");
        assert_eq!("0123456789abcdef".parse::<BootId>().unwrap(), id);
        for bad in [
            "",
            "0123456789ABCDEF",
            "0123456789abcde",
            "+123456789abcdef",
            "0123456789abcdefa",
        ] {
            assert!(bad.parse::<BootId>().is_err(), "{bad:?}");
        }
    }
}
