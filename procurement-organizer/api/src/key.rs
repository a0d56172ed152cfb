//! Image key requests: the agent asks the key service for the key of (image, key epoch); the
//! answer carries the key in base64. The key never shows in `Debug` and is zeroized when the
//! answer is dropped.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, Zeroizing};

/// Length of an image key (AES-256-GCM and ChaCha20-Poly1305 both take 32 bytes).
pub const IMAGE_KEY_LEN: usize = 32;

/// A sealed image's id as the contract carries it: 16 bytes written as exactly 32 lowercase
/// hex digits (the spelling of the sealed-image format's `ImageId` and of the store's file
/// names, so an id can never be a path).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef(pub [u8; 16]);

/// A string that is not an image id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not an image id: expected 32 lowercase hex digits")]
pub struct ImageRefError {
    /// The rejected input, truncated to 40 characters.
    pub input: String,
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageRef({self})")
    }
}

impl FromStr for ImageRef {
    type Err = ImageRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ImageRefError {
            input: s.chars().take(40).collect(),
        };
        let digits = s.as_bytes();
        if digits.len() != 32 {
            return Err(err());
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut out = [0u8; 16];
        for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let (Some(hi), Some(lo)) = (nibble(pair[0]), nibble(pair[1])) else {
                return Err(err());
            };
            *o = hi << 4 | lo;
        }
        Ok(Self(out))
    }
}

impl Serialize for ImageRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ImageRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The tenant's image-signing public key (Ed25519, 32 bytes), written as 64 lowercase hex
/// digits (as the sealed-image format's `VerifyingKey` writes it). Every manifest must verify
/// under it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageSigningKey(pub [u8; 32]);

impl fmt::Display for ImageSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ImageSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageSigningKey({self})")
    }
}

impl FromStr for ImageSigningKey {
    type Err = ImageRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ImageRefError {
            input: s.chars().take(40).collect(),
        };
        if s.len() != 64 {
            return Err(err());
        }
        let (a, b) = s.split_at(32);
        let (hi, lo): (ImageRef, ImageRef) =
            (a.parse().map_err(|_| err())?, b.parse().map_err(|_| err())?);
        let mut k = [0u8; 32];
        k[..16].copy_from_slice(&hi.0);
        k[16..].copy_from_slice(&lo.0);
        Ok(Self(k))
    }
}

impl Serialize for ImageSigningKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ImageSigningKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|_| {
            serde::de::Error::custom("not an Ed25519 public key: expected 64 lowercase hex digits")
        })
    }
}

/// Body of `POST /v1/keys` (agent -> key service, through the tunnel, mutual TLS). The lease
/// and server come from the agent's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    /// The image the lease names.
    pub image: ImageRef,
    /// The key epoch of the manifest the agent fetched.
    pub epoch: u32,
}

/// An image key in base64 (32 bytes). Zeroized on drop; `Debug` shows `<redacted>`.
pub struct ImageKeyB64(Zeroizing<String>);

impl ImageKeyB64 {
    /// Encodes a key.
    pub fn encode(key: &[u8; IMAGE_KEY_LEN]) -> Self {
        Self(Zeroizing::new(STANDARD.encode(key)))
    }

    /// The key's bytes (zeroized when dropped).
    pub fn decode(&self) -> Zeroizing<[u8; IMAGE_KEY_LEN]> {
        let mut buf = Zeroizing::new([0u8; IMAGE_KEY_LEN + 1]);
        let mut out = Zeroizing::new([0u8; IMAGE_KEY_LEN]);
        // Checked when parsed or encoded: always 32 bytes.
        if let Ok(IMAGE_KEY_LEN) = STANDARD.decode_slice(self.0.as_bytes(), &mut buf[..]) {
            out.copy_from_slice(&buf[..IMAGE_KEY_LEN]);
        }
        out
    }

    fn parse(s: Zeroizing<String>) -> Result<Self, &'static str> {
        let mut buf = Zeroizing::new([0u8; IMAGE_KEY_LEN + 1]);
        if s.len() != 44 {
            return Err("the image key must be 44 characters of base64 (32 bytes)");
        }
        match STANDARD.decode_slice(s.as_bytes(), &mut buf[..]) {
            Ok(IMAGE_KEY_LEN) => Ok(Self(s)),
            _ => Err("the image key must be base64 of exactly 32 bytes"),
        }
    }
}

impl fmt::Debug for ImageKeyB64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl PartialEq for ImageKeyB64 {
    fn eq(&self, other: &Self) -> bool {
        // Not secret-dependent timing critical (tests only compare), but constant-time anyway.
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for ImageKeyB64 {}

impl Serialize for ImageKeyB64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ImageKeyB64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut s = String::deserialize(d)?;
        let owned = Zeroizing::new(std::mem::take(&mut s));
        s.zeroize();
        Self::parse(owned).map_err(serde::de::Error::custom)
    }
}

/// Answer to a key request: the key of (image, epoch). Never logged; dropped (and so
/// zeroized) as soon as the agent has wrapped it.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAnswer {
    pub image: ImageRef,
    pub epoch: u32,
    pub key: ImageKeyB64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> ImageRef {
        ImageRef([0xab; 16])
    }

    #[test]
    fn image_refs_are_exactly_32_lowercase_hex() {
        let s = "ab".repeat(16);
        assert_eq!(id().to_string(), s);
        assert_eq!(s.parse::<ImageRef>().unwrap(), id());
        for bad in [
            "",
            "AB".repeat(16).as_str(),
            &"ab".repeat(15),
            &"ab".repeat(17),
            &format!("{}/", "a".repeat(31)),
            &format!("..{}", "a".repeat(30)),
            &format!("{}é", "a".repeat(30)),
            &format!("+{}", "a".repeat(31)),
        ] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn signing_keys_are_64_lowercase_hex() {
        let k = ImageSigningKey([0xc3; 32]);
        let s = "c3".repeat(32);
        assert_eq!(k.to_string(), s);
        assert_eq!(s.parse::<ImageSigningKey>().unwrap(), k);
        for bad in [
            "C3".repeat(32),
            "c3".repeat(31),
            "c3".repeat(33),
            format!("{}zz", "c3".repeat(31)),
        ] {
            assert!(bad.parse::<ImageSigningKey>().is_err(), "{bad}");
        }
    }

    #[test]
    fn key_request_golden_json() {
        let r = KeyRequest {
            image: id(),
            epoch: 3,
        };
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(j, format!(r#"{{"image":"{}","epoch":3}}"#, "ab".repeat(16)));
        assert_eq!(serde_json::from_str::<KeyRequest>(&j).unwrap(), r);
    }

    #[test]
    fn key_answer_golden_json_and_redaction() {
        let a = KeyAnswer {
            image: id(),
            epoch: 1,
            key: ImageKeyB64::encode(&[0x42; 32]),
        };
        let j = serde_json::to_string(&a).unwrap();
        assert_eq!(
            j,
            format!(
                r#"{{"image":"{}","epoch":1,"key":"QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="}}"#,
                "ab".repeat(16)
            )
        );
        let back: KeyAnswer = serde_json::from_str(&j).unwrap();
        assert_eq!(*back.key.decode(), [0x42; 32]);
        assert_eq!(back, a);
        let d = format!("{a:?}");
        assert!(d.contains("<redacted>") && !d.contains("QkJC"), "{d}");
    }

    #[test]
    fn key_answers_with_wrong_key_sizes_are_refused() {
        let img = "ab".repeat(16);
        for key in [
            "",
            "QkJC",
            "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQg==", // 31 bytes
            "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJC", // 33 bytes
            "!kJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=",
        ] {
            let j = format!(r#"{{"image":"{img}","epoch":1,"key":"{key}"}}"#);
            let e = crate::parse_body::<KeyAnswer>(j.as_bytes()).unwrap_err();
            assert!(e.message.contains("key"), "{key}: {e}");
        }
        let j = format!(
            r#"{{"image":"{img}","epoch":1,"key":"QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=","x":0}}"#
        );
        assert!(crate::parse_body::<KeyAnswer>(j.as_bytes()).is_err());
    }
}
