//! The chunk cipher: key derivation (HKDF-SHA256 from the image key), nonces from the chunk
//! index, associated data binding image id, key epoch, chunk index and the final-chunk flag,
//! and the key check value that commits a manifest to one image key. Pure.

use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use ring::hkdf;
use zeroize::Zeroizing;

use crate::TAG_LEN;
use crate::error::{Error, Result};
use crate::ids::{Aead, ImageId, KeyEpoch};
use crate::keys::ImageKey;

/// HKDF salt: names the format and its version.
const HKDF_SALT: &[u8] = b"sealed-image v1";
const LABEL_CHUNK_KEY: &[u8] = b"chunk key";
const LABEL_KEY_CHECK: &[u8] = b"key check";
/// First bytes of every chunk's associated data.
pub(crate) const AAD_MAGIC: &[u8; 4] = b"SIMG";
/// Length of the associated data of a chunk.
pub(crate) const AAD_LEN: usize = 35;
/// Length of the key check value in the manifest.
pub const KEY_CHECK_LEN: usize = 32;

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        KEY_CHECK_LEN
    }
}

/// The context a chunk is sealed in: everything but its index and final flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Context {
    pub image_id: ImageId,
    pub key_epoch: KeyEpoch,
    pub aead: Aead,
}

impl Context {
    /// `aead id || image id || key epoch (BE)`: the HKDF info after the label.
    fn info(&self) -> [u8; 21] {
        let mut b = [0u8; 21];
        b[0] = self.aead.id();
        b[1..17].copy_from_slice(self.image_id.as_bytes());
        b[17..21].copy_from_slice(&self.key_epoch.0.to_be_bytes());
        b
    }

    /// `"SIMG" || version || aead id || image id || key epoch (BE) || index (BE) || final`.
    pub fn aad(&self, index: u64, is_final: bool) -> [u8; AAD_LEN] {
        let mut a = [0u8; AAD_LEN];
        a[0..4].copy_from_slice(AAD_MAGIC);
        a[4] = crate::encoding::VERSION as u8;
        a[5] = self.aead.id();
        a[6..22].copy_from_slice(self.image_id.as_bytes());
        a[22..26].copy_from_slice(&self.key_epoch.0.to_be_bytes());
        a[26..34].copy_from_slice(&index.to_be_bytes());
        a[34] = u8::from(is_final);
        a
    }
}

/// The 96-bit nonce of chunk `index`: four zero bytes, then the index as u64 big-endian.
/// Unique per key because the chunk key is derived per image id, epoch and AEAD, and each
/// index is sealed once.
pub(crate) fn nonce(index: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// A chunk key derived for one image context, and that context.
pub(crate) struct ChunkCipher {
    key: LessSafeKey,
    ctx: Context,
    key_check: [u8; KEY_CHECK_LEN],
}

impl std::fmt::Debug for ChunkCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCipher")
            .field("ctx", &self.ctx)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl ChunkCipher {
    /// Derives the chunk key and the key check value from `key` for `ctx`.
    pub fn new(key: &ImageKey, ctx: Context) -> Result<Self> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(key.expose_secret());
        let info = ctx.info();
        let alg = ctx.aead.ring();
        let mut raw = Zeroizing::new([0u8; 32]);
        prk.expand(&[LABEL_CHUNK_KEY, &info], alg)
            .and_then(|okm| okm.fill(&mut raw[..alg.key_len()]))
            .map_err(|_| Error::Key {
                why: "chunk key derivation failed".into(),
            })?;
        let unbound = UnboundKey::new(alg, &raw[..alg.key_len()]).map_err(|_| Error::Key {
            why: "the AEAD refused the derived key".into(),
        })?;
        let mut key_check = [0u8; KEY_CHECK_LEN];
        prk.expand(&[LABEL_KEY_CHECK, &info], Len32)
            .and_then(|okm| okm.fill(&mut key_check))
            .map_err(|_| Error::Key {
                why: "key check derivation failed".into(),
            })?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            ctx,
            key_check,
        })
    }

    pub fn key_check(&self) -> &[u8; KEY_CHECK_LEN] {
        &self.key_check
    }

    /// Seals `buf` in place; returns the tag. (ring refuses only inputs past the AEAD's limit,
    /// 64 GiB for GCM; a chunk is at most 16 MiB.)
    pub fn seal(&self, index: u64, is_final: bool, buf: &mut [u8]) -> Result<[u8; TAG_LEN]> {
        let aad = self.ctx.aad(index, is_final);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(index), Aad::from(aad), buf)
            .map_err(|_| Error::invalid("chunk", format!("the AEAD refused chunk {index}")))?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens `buf` (ciphertext without tag) in place against `tag`. On failure the buffer is
    /// zeroed (ring does this too) and nothing is returned.
    pub fn open(&self, index: u64, is_final: bool, tag: &[u8; TAG_LEN], buf: &mut [u8]) -> bool {
        let aad = self.ctx.aad(index, is_final);
        let Ok(tag) = Tag::try_from(&tag[..]) else {
            return false;
        };
        let ok = self
            .key
            .open_in_place_separate_tag(nonce(index), Aad::from(aad), tag, buf, 0..)
            .is_ok();
        if !ok {
            buf.fill(0);
        }
        ok
    }
}

/// Constant-time equality of two byte arrays of one length.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(aead: Aead) -> Context {
        Context {
            image_id: ImageId::from_bytes([1; 16]),
            key_epoch: KeyEpoch(7),
            aead,
        }
    }

    #[test]
    fn aad_layout() {
        let a = ctx(Aead::ChaCha20Poly1305).aad(0x0102, true);
        assert_eq!(&a[..4], b"SIMG");
        assert_eq!(a[4], 1);
        assert_eq!(a[5], 2);
        assert_eq!(&a[6..22], &[1; 16]);
        assert_eq!(&a[22..26], &[0, 0, 0, 7]);
        assert_eq!(&a[26..34], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(a[34], 1);
    }

    #[test]
    fn every_context_field_changes_key_check_and_binds_chunks() {
        let key = ImageKey::from_bytes([9; 32]);
        for aead in Aead::ALL {
            let base = ChunkCipher::new(&key, ctx(aead)).unwrap();
            let others = [
                Context {
                    image_id: ImageId::from_bytes([2; 16]),
                    ..ctx(aead)
                },
                Context {
                    key_epoch: KeyEpoch(8),
                    ..ctx(aead)
                },
            ];
            for o in others {
                let c = ChunkCipher::new(&key, o).unwrap();
                assert_ne!(c.key_check(), base.key_check());
                let mut buf = b"secret".to_vec();
                let tag = base.seal(0, true, &mut buf).unwrap();
                assert!(!c.open(0, true, &tag, &mut buf), "other context opens");
                assert_eq!(buf, vec![0; 6], "zeroed on failure");
            }
            let mut buf = b"secret".to_vec();
            let tag = base.seal(3, false, &mut buf).unwrap();
            let mut b2 = buf.clone();
            assert!(!base.open(3, true, &tag, &mut b2), "final flag is bound");
            let mut b2 = buf.clone();
            assert!(!base.open(4, false, &tag, &mut b2), "index is bound");
            assert!(base.open(3, false, &tag, &mut buf));
            assert_eq!(buf, b"secret");
        }
        let a = ChunkCipher::new(&key, ctx(Aead::Aes256Gcm)).unwrap();
        let c = ChunkCipher::new(&key, ctx(Aead::ChaCha20Poly1305)).unwrap();
        assert_ne!(a.key_check(), c.key_check());
        assert!(format!("{a:?}").contains("redacted"));
    }

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
