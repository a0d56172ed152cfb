//! The receiving side of a child SA: length checks, the anti-replay window (checked before the
//! integrity check, updated after it), AES-GCM-16-256 opening, the trailer and the inner IPv4
//! packet. Pure: the packet is opened in the caller's buffer, `now` is an argument.

use std::time::Instant;

use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};

use crate::error::DecapError;
use crate::inner::check_ipv4;
use crate::keys::{SALT_LEN, SaError, SaKey, check_spi};
use crate::lifetime::{Lifetime, LifetimeLimits};
use crate::packet::{HEADER_LEN, ICV_LEN, IV_LEN, MIN_PACKET, NEXT_IPV4, NEXT_NONE, TRAILER_LEN};
use crate::replay::{ReplayCheck, ReplayWindow};

/// What an accepted packet held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decapsulated<'a> {
    /// The inner IPv4 packet (TFC padding removed), a slice of the caller's buffer.
    Ipv4(&'a [u8]),
    /// A dummy packet (next header 59): authenticated, counted, nothing to deliver.
    Dummy,
}

/// One inbound child SA.
pub struct InboundSa {
    spi: u32,
    key: LessSafeKey,
    salt: [u8; SALT_LEN],
    window: ReplayWindow,
    lifetime: Lifetime,
}

impl std::fmt::Debug for InboundSa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundSa")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("window", &self.window)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

fn be32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

impl InboundSa {
    /// An SA receiving on `spi` (our inbound SPI) under `key`, created at `now`.
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
            window: ReplayWindow::new(),
            lifetime: Lifetime::new(limits, now),
        })
    }

    pub fn spi(&self) -> u32 {
        self.spi
    }

    pub fn window(&self) -> &ReplayWindow {
        &self.window
    }

    pub fn lifetime(&self) -> &Lifetime {
        &self.lifetime
    }

    /// A soft lifetime limit is reached: negotiate the successor.
    pub fn needs_rekey(&self, now: Instant) -> bool {
        self.lifetime.needs_rekey(now)
    }

    /// A hard lifetime limit is reached: the SA takes no more packets.
    pub fn expired(&self, now: Instant) -> bool {
        self.lifetime.expired(now)
    }

    /// Opens the ESP packet in `packet` (the UDP payload after classification) in place.
    /// A packet refused before or by the integrity check leaves the SA unchanged. An authentic
    /// packet moves the window and counts even if its trailer or inner packet is then refused
    /// (the peer sent it; a replay of it is refused too).
    pub fn decapsulate<'a>(
        &mut self,
        packet: &'a mut [u8],
        now: Instant,
    ) -> Result<Decapsulated<'a>, DecapError> {
        let spi = self.spi;
        let len = packet.len();
        if len < MIN_PACKET {
            return Err(DecapError::TooShort {
                len,
                min: MIN_PACKET,
            });
        }
        let encrypted = len - HEADER_LEN - IV_LEN - ICV_LEN;
        if !encrypted.is_multiple_of(4) {
            return Err(DecapError::Misaligned { len });
        }
        let got = be32(&packet[..4]);
        if got != spi {
            return Err(DecapError::WrongSpi { expected: spi, got });
        }
        if self.lifetime.expired(now) {
            return Err(DecapError::Expired { spi });
        }
        let seq = be32(&packet[4..8]);
        self.window.check(seq).map_err(|e| match e {
            ReplayCheck::Zero => DecapError::ZeroSequence { spi },
            ReplayCheck::Duplicate => DecapError::Replayed { spi, seq },
            ReplayCheck::TooOld { highest } => DecapError::TooOld { spi, seq, highest },
        })?;

        let mut nonce = [0u8; NONCE_LEN];
        nonce[..SALT_LEN].copy_from_slice(&self.salt);
        nonce[SALT_LEN..].copy_from_slice(&packet[HEADER_LEN..HEADER_LEN + IV_LEN]);
        let mut aad = [0u8; HEADER_LEN];
        aad.copy_from_slice(&packet[..HEADER_LEN]);
        let body = &mut packet[HEADER_LEN + IV_LEN..];
        let plain = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
            .map_err(|_| DecapError::Integrity { spi, seq })?;
        // Authentic: from here on the packet counts, whatever it holds.
        let plain: &'a [u8] = plain;
        let n = plain.len();
        let next_header = plain[n - 1];
        let pad_len = usize::from(plain[n - 2]);
        self.window.accept(seq);
        self.lifetime.count(n.saturating_sub(TRAILER_LEN + pad_len));

        if pad_len + TRAILER_LEN > n {
            return Err(DecapError::PadLength {
                spi,
                pad_len,
                len: n,
            });
        }
        let payload_len = n - TRAILER_LEN - pad_len;
        for (i, &b) in plain[payload_len..n - TRAILER_LEN].iter().enumerate() {
            let expected = (i + 1) as u8;
            if b != expected {
                return Err(DecapError::Padding {
                    spi,
                    index: i,
                    got: b,
                    expected,
                });
            }
        }
        match next_header {
            NEXT_IPV4 => check_ipv4(&plain[..payload_len])
                .map(Decapsulated::Ipv4)
                .map_err(|source| DecapError::Inner { spi, source }),
            NEXT_NONE => Ok(Decapsulated::Dummy),
            got => Err(DecapError::NextHeader { spi, got }),
        }
    }
}
