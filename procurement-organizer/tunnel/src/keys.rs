//! WireGuard static keys: [`PrivateKey`] (an x25519 secret, zeroized on drop, never printed) and
//! [`PublicKey`] (32 bytes), both written as standard base64 with padding, as `wg genkey` and
//! `wg pubkey` write them (44 characters).
//!
//! Pure: randomness comes in as an argument ([`PrivateKey::generate`]) or from the OS RNG.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use boringtun::x25519;
use rand::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;

/// A key that is not 32 bytes of standard base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "a WireGuard {what} key is 44 characters of base64 (as `wg genkey`/`wg pubkey` print it); got {len} characters"
    )]
    Length { what: &'static str, len: usize },
    #[error("a WireGuard {what} key is standard base64; this one does not decode")]
    Base64 { what: &'static str },
}

fn decode(what: &'static str, text: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let text = text.trim();
    if text.len() != 44 {
        return Err(KeyError::Length {
            what,
            len: text.len(),
        });
    }
    let mut buf = Zeroizing::new([0u8; 33]);
    let n = STANDARD
        .decode_slice(text, &mut buf[..])
        .map_err(|_| KeyError::Base64 { what })?;
    if n != KEY_LEN {
        return Err(KeyError::Length {
            what,
            len: text.len(),
        });
    }
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    out.copy_from_slice(&buf[..KEY_LEN]);
    Ok(out)
}

/// A WireGuard public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key as `wg pubkey` prints it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub(crate) fn to_x25519(self) -> x25519::PublicKey {
        x25519::PublicKey::from(self.0)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Ok(Self(*decode("public", s)?))
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A WireGuard private key (x25519 static secret). Zeroized on drop; `Debug` shows only the
/// public half.
#[derive(Clone)]
pub struct PrivateKey(Zeroizing<[u8; KEY_LEN]>);

impl PrivateKey {
    /// A new key from `rng`, clamped as `wg genkey` clamps it.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(&mut bytes[..]);
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        Self(bytes)
    }

    /// A new key from the operating system's RNG.
    pub fn generate_os() -> Self {
        Self::generate(&mut rand::rngs::OsRng)
    }

    /// Takes the 32 bytes (the caller's copy is the caller's to zeroize).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Parses the base64 form (`wg genkey` output; surrounding white space is ignored).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        Ok(Self(decode("private", text)?))
    }

    /// The base64 form, in a string that is zeroized on drop.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(&self.0[..]))
    }

    /// The raw bytes (for sealing the key elsewhere; do not log).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub fn public_key(&self) -> PublicKey {
        let public = x25519::PublicKey::from(&self.to_x25519());
        PublicKey(public.to_bytes())
    }

    /// boringtun's secret type (zeroized on drop by x25519-dalek).
    pub(crate) fn to_x25519(&self) -> x25519::StaticSecret {
        let mut bytes = *self.0;
        let secret = x25519::StaticSecret::from(bytes);
        bytes.zeroize();
        secret
    }
}

impl FromStr for PrivateKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::from_base64(s)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(<redacted>, public {})", self.public_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    // Made with wireguard-tools: `wg genkey | tee priv | wg pubkey`.
    const WG_PRIVATE: &str = "+FyYDj4DdOrxi8G/jIOk1ieUBLWI9fdWNxIt3W9Yw0g=";
    const WG_PUBLIC: &str = "a9/BCQgdQnc/YfvFDezETdldEOV3s2xtku6yAQf8uTM=";

    #[test]
    fn public_key_matches_wireguard_tools() {
        let k: PrivateKey = WG_PRIVATE.parse().unwrap();
        assert_eq!(k.public_key().to_string(), WG_PUBLIC);
        assert_eq!(&*k.to_base64(), WG_PRIVATE);
        let p: PublicKey = format!(" {WG_PUBLIC}\n").parse().unwrap();
        assert_eq!(p, k.public_key());
    }

    #[test]
    fn generated_keys_are_clamped_and_reproducible_from_a_seed() {
        let a = PrivateKey::generate(&mut rand::rngs::StdRng::seed_from_u64(7));
        let b = PrivateKey::generate(&mut rand::rngs::StdRng::seed_from_u64(7));
        assert_eq!(a.as_bytes(), b.as_bytes());
        assert_eq!(a.as_bytes()[0] & 7, 0);
        assert_eq!(a.as_bytes()[31] & 0xc0, 0x40);
        assert_ne!(
            PrivateKey::generate_os().public_key(),
            PrivateKey::generate_os().public_key()
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let k: PrivateKey = WG_PRIVATE.parse().unwrap();
        let shown = format!("{k:?}");
        assert!(!shown.contains(WG_PRIVATE), "{shown}");
        assert!(
            shown.contains("redacted") && shown.contains(WG_PUBLIC),
            "{shown}"
        );
    }

    #[test]
    fn hostile_key_text_is_refused() {
        for bad in [
            "",
            "abc",
            "8Pd7mT6KS6P1b6rTPyvyFCVGX9v/6krjKtFzmq9nWxs",
            "8Pd7mT6KS6P1b6rTPyvyFCVGX9v/6krjKtFzmq9nWxs==",
            "8Pd7mT6KS6P1b6rTPyvyFCVGX9v/6krjKtFzmq9nWx!=",
            "8Pd7mT6KS6P1b6rTPyvyFCVGX9v_6krjKtFzmq9nWxs=",
            "ééééééééééééééééééééééé",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
        ] {
            assert!(bad.parse::<PublicKey>().is_err(), "{bad:?}");
            assert!(PrivateKey::from_base64(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn public_key_serde_is_the_base64_string() {
        let p: PublicKey = WG_PUBLIC.parse().unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, format!("\"{WG_PUBLIC}\""));
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), p);
        assert!(serde_json::from_str::<PublicKey>("\"nope\"").is_err());
    }
}
