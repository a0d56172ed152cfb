//! Why a packet was not sealed or not accepted. One variant per drop reason, each naming the SA
//! (by SPI) and the value that was wrong, so a log line says who misbehaved and what to do.

use crate::inner::InnerError;

/// Why the outbound SA did not seal a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncapError {
    #[error(
        "SA {spi:#010x}: sequence number space exhausted (2^32-1 sent, no ESN): rekey the child SA"
    )]
    SequenceExhausted { spi: u32 },
    #[error("SA {spi:#010x}: hard lifetime reached: the SA must be replaced before sending")]
    Expired { spi: u32 },
    #[error("SA {spi:#010x}: inner packet of {len} bytes exceeds the largest ESP payload ({max})")]
    TooLong { spi: u32, len: usize, max: usize },
}

/// Why the inbound SA dropped a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecapError {
    #[error("ESP packet of {len} bytes is shorter than the smallest valid one ({min})")]
    TooShort { len: usize, min: usize },
    #[error(
        "ESP packet of {len} bytes: the encrypted part is not a multiple of 4 bytes (RFC 4303 2.4)"
    )]
    Misaligned { len: usize },
    #[error("ESP packet for SPI {got:#010x} reached the SA {expected:#010x}")]
    WrongSpi { expected: u32, got: u32 },
    #[error("SA {spi:#010x}: sequence number 0 is never sent (RFC 4303 3.3.3)")]
    ZeroSequence { spi: u32 },
    #[error("SA {spi:#010x}: sequence number {seq} was already received (replay)")]
    Replayed { spi: u32, seq: u32 },
    #[error(
        "SA {spi:#010x}: sequence number {seq} is left of the replay window (highest {highest})"
    )]
    TooOld { spi: u32, seq: u32, highest: u32 },
    #[error(
        "SA {spi:#010x}: integrity check failed for sequence number {seq} (wrong key or altered packet)"
    )]
    Integrity { spi: u32, seq: u32 },
    #[error("SA {spi:#010x}: pad length {pad_len} does not fit the {len}-byte plaintext")]
    PadLength {
        spi: u32,
        pad_len: usize,
        len: usize,
    },
    #[error("SA {spi:#010x}: padding byte {index} is {got}, expected {expected} (RFC 4303 2.4)")]
    Padding {
        spi: u32,
        index: usize,
        got: u8,
        expected: u8,
    },
    #[error("SA {spi:#010x}: next header {got} is not IPv4 (4) or a dummy packet (59)")]
    NextHeader { spi: u32, got: u8 },
    #[error("SA {spi:#010x}: inner packet refused")]
    Inner {
        spi: u32,
        #[source]
        source: InnerError,
    },
    #[error("SA {spi:#010x}: hard lifetime reached: the SA must be replaced")]
    Expired { spi: u32 },
}

/// Why a UDP/4500 datagram is neither IKE, a NAT-keepalive nor ESP (RFC 3948 2.1-2.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    #[error("empty UDP/4500 datagram")]
    Empty,
    #[error("{len}-byte UDP/4500 datagram without the non-ESP marker is too short for ESP (8)")]
    TooShortForEsp { len: usize },
    #[error("UDP/4500 datagram with the non-ESP marker carries no IKE message")]
    EmptyIke,
    #[error("ESP SPI {spi} is in the range 1-255 reserved by IANA (RFC 4303 2.1)")]
    ReservedSpi { spi: u32 },
}
