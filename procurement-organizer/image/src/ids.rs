//! Typed identities of a sealed image: its id, its key epoch and its AEAD. Pure.

use std::fmt;
use std::str::FromStr;

use ring::rand::SecureRandom;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// An image's identity: 16 random bytes, shown as 32 lowercase hex digits (also the file
/// names `<image-id>.manifest` / `<image-id>.chunks`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageId([u8; 16]);

impl ImageId {
    /// A fresh random id. Every sealing of new content needs a fresh id or a new key epoch.
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self> {
        let mut b = [0u8; 16];
        rng.fill(&mut b).map_err(|_| Error::Random)?;
        Ok(Self(b))
    }

    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageId({self})")
    }
}

impl FromStr for ImageId {
    type Err = Error;

    /// Exactly 32 lowercase hex digits (one spelling per id, as in file names).
    fn from_str(s: &str) -> Result<Self> {
        let ok = s.len() == 32
            && s.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        if !ok {
            return Err(Error::malformed(
                "image_id",
                format!(
                    "{:?} is not 32 lowercase hex digits",
                    s.chars().take(40).collect::<String>()
                ),
            ));
        }
        let mut b = [0u8; 16];
        hex::decode_to_slice(s, &mut b).map_err(|e| Error::malformed("image_id", e.to_string()))?;
        Ok(Self(b))
    }
}

impl Serialize for ImageId {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ImageId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The key epoch an image is sealed under: the image key is per image and epoch, and a key
/// rotation re-seals the image under the next epoch with a new key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyEpoch(pub u32);

impl fmt::Display for KeyEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for KeyEpoch {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        s.parse::<u32>().map(Self).map_err(|_| {
            Error::malformed(
                "key_epoch",
                format!("{s:?} is not a number from 0 to 4294967295"),
            )
        })
    }
}

/// The AEAD that seals the chunks. Both have a 32-byte key, a 12-byte nonce and a 16-byte tag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Aead {
    /// AES-256-GCM (the default: AES-NI + PCLMULQDQ make it the fastest on x86-64 servers).
    #[default]
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    /// ChaCha20-Poly1305 (for hosts without AES instructions).
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
}

impl Aead {
    /// Every mode, in id order.
    pub const ALL: [Aead; 2] = [Aead::Aes256Gcm, Aead::ChaCha20Poly1305];

    /// The name used in manifests and on command lines.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Aes256Gcm => "aes-256-gcm",
            Self::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }

    /// The byte that stands for this mode in key derivation and associated data.
    pub const fn id(self) -> u8 {
        match self {
            Self::Aes256Gcm => 1,
            Self::ChaCha20Poly1305 => 2,
        }
    }

    pub(crate) fn ring(self) -> &'static ring::aead::Algorithm {
        match self {
            Self::Aes256Gcm => &ring::aead::AES_256_GCM,
            Self::ChaCha20Poly1305 => &ring::aead::CHACHA20_POLY1305,
        }
    }
}

impl fmt::Display for Aead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Aead {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                Error::malformed(
                    "aead",
                    format!(
                        "{:?} is not a known AEAD (aes-256-gcm, chacha20-poly1305)",
                        s.chars().take(40).collect::<String>()
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_id_round_trips_and_refuses_other_spellings() {
        let id = ImageId::from_bytes([0xab; 16]);
        assert_eq!(id.to_string(), "ab".repeat(16));
        assert_eq!(id.to_string().parse::<ImageId>().unwrap(), id);
        for bad in [
            "",
            "AB".repeat(16).as_str(),
            &"ab".repeat(15),
            &"zz".repeat(16),
            &"ab".repeat(17),
        ] {
            assert!(
                matches!(
                    bad.parse::<ImageId>(),
                    Err(Error::Malformed {
                        field: "image_id",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<ImageId>(&json).unwrap(), id);
    }

    #[test]
    fn aead_names() {
        for a in Aead::ALL {
            assert_eq!(a.name().parse::<Aead>().unwrap(), a);
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                format!("\"{}\"", a.name())
            );
        }
        assert!("aes-128-gcm".parse::<Aead>().is_err());
        assert!("7".parse::<KeyEpoch>().is_ok());
        assert!("-1".parse::<KeyEpoch>().is_err());
    }
}
