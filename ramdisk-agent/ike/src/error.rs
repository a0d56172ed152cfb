//! Typed errors of the codec and the key schedule.

use thiserror::Error;

/// Why a received IKEv2 message was refused by the decoder. Each names what was wrong, so a
/// log line says which peer sent what.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("message of {got} bytes is shorter than the 28-byte IKE header")]
    TooShort { got: usize },
    #[error("header says {declared} bytes but the datagram has {got}: truncated or trailing data")]
    LengthMismatch { declared: u32, got: usize },
    #[error("message of {0} bytes is larger than the {max} bytes accepted", max = crate::consts::MAX_MESSAGE_LEN)]
    TooLong(usize),
    #[error("IKE version {major}.{minor} is not 2.x")]
    BadVersion { major: u8, minor: u8 },
    #[error("payload #{index} (type {kind}) is truncated: declares {declared} bytes, {left} left")]
    TruncatedPayload {
        index: usize,
        kind: u8,
        declared: u16,
        left: usize,
    },
    #[error("payload #{index} (type {kind}) has length {declared}, below its minimum {min}")]
    PayloadTooSmall {
        index: usize,
        kind: u8,
        declared: u16,
        min: usize,
    },
    #[error("payload #{index} (type {kind}) is malformed: {what}")]
    Malformed {
        index: usize,
        kind: u8,
        what: &'static str,
    },
    #[error("the next-payload chain ends while {left} bytes remain")]
    TrailingBytes { left: usize },
    #[error("the next-payload chain names type {kind} after the message ended")]
    ChainTooShort { kind: u8 },
    #[error("critical payload of unknown type {kind}")]
    UnsupportedCritical { kind: u8 },
    #[error("the SK payload (type 46) must be the last payload, found after it: {left} bytes")]
    SkNotLast { left: usize },
    #[error("more than {max} payloads", max = MAX_PAYLOADS)]
    TooManyPayloads,
    #[error("the encrypted SK payload failed its integrity check (wrong key or altered message)")]
    IntegrityFailed,
    #[error("the SK payload of {0} bytes cannot hold an 8-byte IV and a 16-byte ICV")]
    SkTooShort(usize),
    #[error("SK padding length {pad} exceeds the {len} decrypted bytes")]
    BadPadding { pad: usize, len: usize },
    #[error("the message has no SK payload to decrypt")]
    NoSkPayload,
}

/// Payloads per message this crate accepts (a response carries about ten).
pub const MAX_PAYLOADS: usize = 64;

/// Failures of the local crypto (not caused by the peer's bytes alone).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CryptoError {
    #[error("cannot generate a {group} key pair (system randomness or ring failed)")]
    KeyGeneration { group: u16 },
    #[error("the peer's public value for DH group {group} is invalid ({len} bytes)")]
    BadPeerPublic { group: u16, len: usize },
    #[error("prf+ cannot produce {0} bytes (at most 255 blocks of 32)")]
    PrfPlusTooLong(usize),
    #[error("AES-256-GCM refused the key or the message")]
    Aead,
    #[error("the message would exceed {max} bytes", max = crate::consts::MAX_MESSAGE_LEN)]
    MessageTooLong,
}

/// Why a message could not be built (our own inputs were too large for the wire format).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("payload type {kind} would be {len} bytes, over the 65535 a payload length holds")]
    PayloadTooLong { kind: u8, len: usize },
    #[error("{what} has {len} entries or bytes, over the {max} its count field holds")]
    FieldTooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("the message would be {0} bytes, over the {max} accepted", max = crate::consts::MAX_MESSAGE_LEN)]
    MessageTooLong(usize),
    #[error("AES-256-GCM refused to seal the SK payload")]
    Seal,
}
