//! The sending side of a child SA: sequence numbers (ESN off), AES-GCM-16-256 sealing in
//! tunnel mode, lifetime counting. Pure: the caller passes `now` and owns the output buffer.

use std::time::Instant;

use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};

use crate::error::EncapError;
use crate::keys::{SALT_LEN, SaError, SaKey, check_spi};
use crate::lifetime::{Lifetime, LifetimeLimits};
use crate::packet::{HEADER_LEN, IV_LEN, MAX_INNER, NEXT_IPV4, NEXT_NONE, pad_len};

/// From this sequence number on, [`OutboundSa::needs_rekey`] says yes (16.7 M packets before
/// the 32-bit space runs out, RFC 4303 3.3.3).
pub const SEQUENCE_SOFT_LIMIT: u32 = 0xFF00_0000;

/// One outbound child SA.
pub struct OutboundSa {
    spi: u32,
    key: LessSafeKey,
    salt: [u8; SALT_LEN],
    /// The last sequence number sent (0: none yet).
    last_seq: u32,
    lifetime: Lifetime,
}

impl std::fmt::Debug for OutboundSa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundSa")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("last_seq", &self.last_seq)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl OutboundSa {
    /// An SA sending with `spi` (the peer's inbound SPI) under `key`, created at `now`.
    pub fn new(
        spi: u32,
        key: &SaKey,
        limits: LifetimeLimits,
        now: Instant,
    ) -> Result<Self, SaError> {
        Ok(Self {
            spi: check_spi(spi)?,
            key: key.aead()?,
            salt: key.salt(),
            last_seq: 0,
            lifetime: Lifetime::new(limits, now),
        })
    }

    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// The last sequence number used (0 before the first packet).
    pub fn last_sequence(&self) -> u32 {
        self.last_seq
    }

    /// Skips ahead: the next packet gets `last_sent + 1` (tests of the end of the sequence
    /// space). Never moves back, since a sequence number is also the GCM IV and a repeated IV
    /// under one key breaks GCM.
    pub fn skip_to(&mut self, last_sent: u32) {
        self.last_seq = self.last_seq.max(last_sent);
    }

    pub fn lifetime(&self) -> &Lifetime {
        &self.lifetime
    }

    /// Time to negotiate the successor: a soft lifetime limit or [`SEQUENCE_SOFT_LIMIT`].
    pub fn needs_rekey(&self, now: Instant) -> bool {
        self.lifetime.needs_rekey(now) || self.last_seq >= SEQUENCE_SOFT_LIMIT
    }

    /// A hard lifetime limit is reached or the sequence space is used up.
    pub fn expired(&self, now: Instant) -> bool {
        self.lifetime.expired(now) || self.last_seq == u32::MAX
    }

    /// Seals the IPv4 packet `inner` into `out` (cleared first); returns its sequence number.
    pub fn encapsulate(
        &mut self,
        inner: &[u8],
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<u32, EncapError> {
        self.seal(NEXT_IPV4, inner, out, now)
    }

    /// Seals a dummy packet (next header 59) of `len` zero bytes, which the peer drops
    /// (RFC 4303 2.6; traffic flow confidentiality).
    pub fn encapsulate_dummy(
        &mut self,
        len: usize,
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<u32, EncapError> {
        let zeros = vec![0u8; len.min(MAX_INNER + 1)];
        self.seal(NEXT_NONE, &zeros, out, now)
    }

    fn seal(
        &mut self,
        next_header: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<u32, EncapError> {
        let spi = self.spi;
        if payload.len() > MAX_INNER {
            return Err(EncapError::TooLong {
                spi,
                len: payload.len(),
                max: MAX_INNER,
            });
        }
        if self.lifetime.expired(now) {
            return Err(EncapError::Expired { spi });
        }
        let Some(seq) = self.last_seq.checked_add(1) else {
            return Err(EncapError::SequenceExhausted { spi });
        };
        let iv = u64::from(seq).to_be_bytes();
        let pad = pad_len(payload.len());
        out.clear();
        out.reserve(HEADER_LEN + IV_LEN + payload.len() + pad + 2 + 16);
        out.extend_from_slice(&spi.to_be_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&iv);
        out.extend_from_slice(payload);
        out.extend((1..=pad).map(|i| i as u8));
        out.push(pad as u8);
        out.push(next_header);

        let mut nonce = [0u8; NONCE_LEN];
        nonce[..SALT_LEN].copy_from_slice(&self.salt);
        nonce[SALT_LEN..].copy_from_slice(&iv);
        let (head, body) = out.split_at_mut(HEADER_LEN + IV_LEN);
        let mut aad = [0u8; HEADER_LEN];
        aad.copy_from_slice(&head[..HEADER_LEN]);
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
            // ring refuses only inputs beyond GCM's 64 GiB limit, far above MAX_INNER.
            .map_err(|_| EncapError::TooLong {
                spi,
                len: payload.len(),
                max: MAX_INNER,
            })?;
        out.extend_from_slice(tag.as_ref());
        self.last_seq = seq;
        self.lifetime.count(payload.len());
        Ok(seq)
    }
}
