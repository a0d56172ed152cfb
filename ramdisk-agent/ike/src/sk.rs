//! The SK (Encrypted and Authenticated) payload with AES-GCM-16 and a 256-bit key
//! (RFC 7296 3.14, RFC 5282). Pure.
//!
//! ```text
//!  SK payload:  generic header (next = first inner type) | IV (8) | ciphertext | ICV (16)
//!  plaintext:   inner payload chain | padding (none here) | pad length (1)
//!  GCM nonce:   salt (4, from SK_e) | IV (8)
//!  AAD:         the message from the IKE header's first octet to the SK generic header's last
//! ```

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::consts::{GENERIC_HEADER_LEN, HEADER_LEN, payload as pt};
use crate::decode::{Message, decode_chain};
use crate::encode::{Header, finish_length, write_chain, write_header};
use crate::error::{DecodeError, EncodeError};
use crate::payload::Payload;

pub const IV_LEN: usize = 8;
pub const ICV_LEN: usize = 16;
pub const KEY_LEN: usize = 32;
pub const SALT_LEN: usize = 4;

/// One direction's SK_e: 32 key bytes and the 4-byte salt that follow them in the key stream.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SkKey {
    pub key: [u8; KEY_LEN],
    pub salt: [u8; SALT_LEN],
}

impl std::fmt::Debug for SkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SkKey(redacted)")
    }
}

impl SkKey {
    /// Splits the 36 bytes of SK_ei or SK_er (RFC 5282 7.1).
    pub fn from_bytes(b: &[u8; KEY_LEN + SALT_LEN]) -> SkKey {
        let mut key = [0u8; KEY_LEN];
        let mut salt = [0u8; SALT_LEN];
        key.copy_from_slice(&b[..KEY_LEN]);
        salt.copy_from_slice(&b[KEY_LEN..]);
        SkKey { key, salt }
    }

    fn aead(&self) -> Option<LessSafeKey> {
        UnboundKey::new(&AES_256_GCM, &self.key)
            .ok()
            .map(LessSafeKey::new)
    }

    fn nonce(&self, iv: &[u8; IV_LEN]) -> Nonce {
        let mut n = [0u8; 12];
        n[..SALT_LEN].copy_from_slice(&self.salt);
        n[SALT_LEN..].copy_from_slice(iv);
        Nonce::assume_unique_for_key(n)
    }
}

/// Builds a protected message: header, SK payload around `inner`. `iv` must never repeat
/// under one key (the caller passes a counter, e.g. the message id).
pub fn seal(
    header: &Header,
    inner: &[Payload],
    key: &SkKey,
    iv: u64,
) -> Result<Vec<u8>, EncodeError> {
    let mut plain = Vec::new();
    write_chain(&mut plain, inner)?;
    plain.push(0); // pad length: GCM needs no padding
    let sk_len = GENERIC_HEADER_LEN + IV_LEN + plain.len() + ICV_LEN;
    let sk_len16 = u16::try_from(sk_len).map_err(|_| EncodeError::PayloadTooLong {
        kind: pt::SK,
        len: sk_len,
    })?;
    let first = inner.first().map_or(pt::NONE, Payload::kind);
    let mut out = Vec::with_capacity(HEADER_LEN + sk_len);
    write_header(&mut out, header, pt::SK);
    out.extend_from_slice(&[first, 0]);
    out.extend_from_slice(&sk_len16.to_be_bytes());
    let total = out.len() + IV_LEN + plain.len() + ICV_LEN;
    let len32 = u32::try_from(total).map_err(|_| EncodeError::MessageTooLong(total))?;
    out[24..HEADER_LEN].copy_from_slice(&len32.to_be_bytes());
    let iv = iv.to_be_bytes();
    let aad = out.clone();
    let tag = key
        .aead()
        .ok_or(EncodeError::Seal)?
        .seal_in_place_separate_tag(key.nonce(&iv), Aad::from(&aad), &mut plain)
        .map_err(|_| EncodeError::Seal)?;
    out.extend_from_slice(&iv);
    out.extend_from_slice(&plain);
    out.extend_from_slice(tag.as_ref());
    finish_length(&mut out)?;
    Ok(out)
}

/// Checks and decrypts the SK payload of `msg` (decoded from `bytes`), returning the inner
/// payloads. A wrong key or any altered byte of the message gives `IntegrityFailed`.
pub fn open(bytes: &[u8], msg: &Message, key: &SkKey) -> Result<Vec<Payload>, DecodeError> {
    let sk = msg.sk.ok_or(DecodeError::NoSkPayload)?;
    let body_start = sk.offset + GENERIC_HEADER_LEN;
    let body = bytes.get(body_start..).ok_or(DecodeError::SkTooShort(0))?;
    if body.len() < IV_LEN + ICV_LEN {
        return Err(DecodeError::SkTooShort(body.len()));
    }
    let (iv, sealed) = body.split_at(IV_LEN);
    let mut iv8 = [0u8; IV_LEN];
    iv8.copy_from_slice(iv);
    let mut buf = sealed.to_vec();
    let aad = &bytes[..body_start];
    let plain = key
        .aead()
        .ok_or(DecodeError::IntegrityFailed)?
        .open_in_place(key.nonce(&iv8), Aad::from(aad), &mut buf)
        .map_err(|_| DecodeError::IntegrityFailed)?;
    let (&mut pad, rest) = plain
        .split_last_mut()
        .ok_or(DecodeError::BadPadding { pad: 0, len: 0 })?;
    let pad = usize::from(pad);
    if pad > rest.len() {
        return Err(DecodeError::BadPadding {
            pad,
            len: rest.len(),
        });
    }
    let chain = &rest[..rest.len() - pad];
    let (payloads, _) = decode_chain(chain, 0, sk.first_inner, false)?;
    Ok(payloads)
}
