//! Keys: the per-image AEAD key ([`ImageKey`]) and the tenant's Ed25519 image-signing key
//! ([`SigningKey`], [`VerifyingKey`]). Secrets are zeroized on drop and never shown by `Debug`.
//! Pure, except the PKCS#8 file helpers of [`SigningKey`].

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::SecureRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};

/// The 32-byte secret an image is sealed with (one per image and key epoch). The chunk key and
/// the manifest's key check value are derived from it (see `docs/formats.md`).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ImageKey([u8; 32]);

impl ImageKey {
    /// A fresh random key.
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self> {
        let mut k = Self([0u8; 32]);
        rng.fill(&mut k.0).map_err(|_| Error::Random)?;
        Ok(k)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// From a slice of exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let b: [u8; 32] = bytes.try_into().map_err(|_| Error::Key {
            why: format!("an image key is 32 bytes, got {}", bytes.len()),
        })?;
        Ok(Self(b))
    }

    /// The key bytes, for handing to the key service. Do not log them.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ImageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ImageKey(<redacted>)")
    }
}

/// The tenant's Ed25519 image-signing key (signs manifests). Keeps its PKCS#8 document so it
/// can be saved; both are zeroized on drop (ring's own copy of the expanded key is not).
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
}

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";
const MAX_KEY_FILE: u64 = 16 * 1024;

impl SigningKey {
    /// A fresh key pair (PKCS#8 v2).
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self> {
        let doc = Ed25519KeyPair::generate_pkcs8(rng).map_err(|_| Error::Random)?;
        Self::from_pkcs8_der(doc.as_ref())
    }

    /// From an unencrypted PKCS#8 (v1 as written by `openssl genpkey -algorithm ed25519`, or
    /// v2) DER document.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let pair = Ed25519KeyPair::from_pkcs8(der)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(der))
            .map_err(|e| Error::Key {
                why: format!("not an unencrypted Ed25519 PKCS#8 key: {e}"),
            })?;
        Ok(Self {
            pair,
            pkcs8: Zeroizing::new(der.to_vec()),
        })
    }

    /// From PEM (`-----BEGIN PRIVATE KEY-----`) or DER bytes.
    pub fn from_pkcs8(bytes: &[u8]) -> Result<Self> {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Self::from_pkcs8_der(bytes);
        };
        let text = text.trim();
        let Some(body) = text
            .strip_prefix(PEM_BEGIN)
            .and_then(|r| r.strip_suffix(PEM_END))
        else {
            return Err(Error::Key {
                why: "expected a PEM block '-----BEGIN PRIVATE KEY-----' or DER".into(),
            });
        };
        let b64: Zeroizing<String> =
            Zeroizing::new(body.chars().filter(|c| !c.is_whitespace()).collect());
        let der = Zeroizing::new(B64.decode(b64.as_bytes()).map_err(|e| Error::Key {
            why: format!("PEM body is not base64: {e}"),
        })?);
        Self::from_pkcs8_der(&der)
    }

    /// The PKCS#8 DER document. Secret.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The PKCS#8 document as PEM. Secret.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        let b64 = Zeroizing::new(B64.encode(&*self.pkcs8));
        let mut out = Zeroizing::new(String::with_capacity(b64.len() + 80));
        out.push_str(PEM_BEGIN);
        out.push('\n');
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap_or_default());
            out.push('\n');
        }
        out.push_str(PEM_END);
        out.push('\n');
        out
    }

    /// Reads a PEM or DER PKCS#8 file (at most 16 KiB).
    pub fn load(path: &Path) -> Result<Self> {
        use std::io::Read as _;
        let ctx = || format!("reading the image-signing key {}", path.display());
        let f = std::fs::File::open(path).map_err(|e| Error::io(ctx(), e))?;
        let mut buf = Zeroizing::new(Vec::new());
        f.take(MAX_KEY_FILE + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(ctx(), e))?;
        if buf.len() as u64 > MAX_KEY_FILE {
            return Err(Error::Key {
                why: format!("{} is larger than 16 KiB", path.display()),
            });
        }
        Self::from_pkcs8(&buf)
    }

    /// Writes the key as PEM to a new file with mode 0600; never overwrites an existing file.
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let ctx = || format!("writing the image-signing key {}", path.display());
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io(ctx(), e))?;
        f.write_all(self.to_pkcs8_pem().as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io(ctx(), e))
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        let mut b = [0u8; 32];
        b.copy_from_slice(self.pair.public_key().as_ref());
        VerifyingKey(b)
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut s = [0u8; 64];
        s.copy_from_slice(self.pair.sign(msg).as_ref());
        s
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey {{ public: {}, secret: <redacted> }}",
            self.verifying_key()
        )
    }
}

/// The tenant's Ed25519 public image-signing key: 32 bytes, shown as 64 hex digits; parsed from
/// hex or standard base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerifyingKey(pub [u8; 32]);

impl VerifyingKey {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(msg, sig)
            .is_ok()
    }
}

impl fmt::Display for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({self})")
    }
}

impl FromStr for VerifyingKey {
    type Err = Error;

    /// 64 hex digits or 44 characters of standard base64.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let mut b = [0u8; 32];
        let ok = match s.len() {
            64 => hex::decode_to_slice(s, &mut b).is_ok(),
            44 => B64
                .decode(s)
                .ok()
                .filter(|v| v.len() == 32)
                .map(|v| b.copy_from_slice(&v))
                .is_some(),
            _ => false,
        };
        if ok {
            Ok(Self(b))
        } else {
            Err(Error::Key {
                why: "an Ed25519 public key is 64 hex digits or 44 base64 characters".into(),
            })
        }
    }
}

impl serde::Serialize for VerifyingKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for VerifyingKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    /// `openssl genpkey -algorithm ed25519 -outform DER | xxd -p` (PKCS#8 v1, no public key).
    const OPENSSL_V1_DER: &str = "302e020100300506032b6570042204209d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    /// RFC 8032 test 1: the public key of that secret seed.
    const RFC8032_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn openssl_pkcs8_v1_loads_and_matches_rfc8032() {
        let k = SigningKey::from_pkcs8(&hex::decode(OPENSSL_V1_DER).unwrap()).unwrap();
        assert_eq!(k.verifying_key().to_hex(), RFC8032_PUBLIC);
    }

    #[test]
    fn pem_round_trip_and_file_save_load() {
        let rng = SystemRandom::new();
        let k = SigningKey::generate(&rng).unwrap();
        let pem = k.to_pkcs8_pem();
        let k2 = SigningKey::from_pkcs8(pem.as_bytes()).unwrap();
        assert_eq!(k.verifying_key(), k2.verifying_key());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sign.pem");
        k.save(&p).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            matches!(k.save(&p), Err(Error::Io { .. })),
            "never overwrites"
        );
        assert_eq!(
            SigningKey::load(&p).unwrap().verifying_key(),
            k.verifying_key()
        );
        let dbg = format!("{k:?}");
        assert!(dbg.contains("redacted") && !dbg.contains(&hex::encode(k.pkcs8_der())));
    }

    #[test]
    fn bad_key_material_is_refused() {
        assert!(matches!(
            SigningKey::from_pkcs8(b"-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----"),
            Err(Error::Key { .. })
        ));
        assert!(matches!(
            SigningKey::from_pkcs8(&[0x30, 0x03, 0x02, 0x01, 0x00]),
            Err(Error::Key { .. })
        ));
        assert!(matches!(
            SigningKey::from_pkcs8(b"hello"),
            Err(Error::Key { .. })
        ));
        assert!(matches!(
            ImageKey::from_slice(&[0; 31]),
            Err(Error::Key { .. })
        ));
        assert!("00".parse::<VerifyingKey>().is_err());
        assert!("zz".repeat(32).parse::<VerifyingKey>().is_err());
    }

    #[test]
    fn verifying_key_text_forms_and_redacted_image_key() {
        let vk: VerifyingKey = RFC8032_PUBLIC.parse().unwrap();
        assert_eq!(vk.to_base64().parse::<VerifyingKey>().unwrap(), vk);
        assert_eq!(vk.to_string(), RFC8032_PUBLIC);
        let k = ImageKey::from_bytes([7; 32]);
        assert_eq!(format!("{k:?}"), "ImageKey(<redacted>)");
        assert_eq!(k.expose_secret(), &[7; 32]);
    }
}
