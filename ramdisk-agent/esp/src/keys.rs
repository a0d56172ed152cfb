//! An SA's key material for AES-GCM-16 with a 256-bit key (RFC 4106 8.1: the KEYMAT is the
//! 32-byte AES key followed by the 4-byte salt). Zeroized on drop, redacted in `Debug`.

use ring::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// AES-256 key bytes.
pub const KEY_LEN: usize = 32;
/// Salt bytes (the implicit first part of the nonce).
pub const SALT_LEN: usize = 4;
/// KEYMAT bytes one direction of a child SA takes from IKE's key stream.
pub const KEYMAT_LEN: usize = KEY_LEN + SALT_LEN;

/// Why key material or an SPI cannot make an SA.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaError {
    #[error("AES-GCM-16-256 KEYMAT is {KEYMAT_LEN} bytes (key | salt), got {len}")]
    KeymatLength { len: usize },
    #[error("ring refused the 32-byte AES-256-GCM key")]
    KeyRejected,
    #[error("SPI {spi} is 0 or in the range 1-255 reserved by IANA (RFC 4303 2.1): pick another")]
    ReservedSpi { spi: u32 },
}

/// The 32-byte key and 4-byte salt of one direction of a child SA.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SaKey {
    key: [u8; KEY_LEN],
    salt: [u8; SALT_LEN],
}

impl std::fmt::Debug for SaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SaKey(AES-GCM-16-256, redacted)")
    }
}

impl SaKey {
    pub fn new(key: [u8; KEY_LEN], salt: [u8; SALT_LEN]) -> Self {
        Self { key, salt }
    }

    /// Splits 36 bytes of KEYMAT into key and salt (RFC 4106 8.1).
    pub fn from_keymat(keymat: &[u8]) -> Result<Self, SaError> {
        if keymat.len() != KEYMAT_LEN {
            return Err(SaError::KeymatLength { len: keymat.len() });
        }
        let mut key = [0u8; KEY_LEN];
        let mut salt = [0u8; SALT_LEN];
        key.copy_from_slice(&keymat[..KEY_LEN]);
        salt.copy_from_slice(&keymat[KEY_LEN..]);
        Ok(Self { key, salt })
    }

    pub(crate) fn salt(&self) -> [u8; SALT_LEN] {
        self.salt
    }

    pub(crate) fn aead(&self) -> Result<LessSafeKey, SaError> {
        UnboundKey::new(&AES_256_GCM, &self.key)
            .map(LessSafeKey::new)
            .map_err(|_| SaError::KeyRejected)
    }
}

/// Refuses SPI 0 (the non-ESP marker) and the reserved 1-255.
pub(crate) fn check_spi(spi: u32) -> Result<u32, SaError> {
    if spi < 256 {
        return Err(SaError::ReservedSpi { spi });
    }
    Ok(spi)
}
