//! The ESP packet layout with AES-GCM-16 (RFC 4303 2, RFC 4106 3-5), ESN off:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  ---
//! |               Security Parameters Index (SPI)                 |   | AAD
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+   |
//! |                      Sequence Number                          |  ---
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |               IV (8 bytes: 0 | sequence number)               |  nonce = salt | IV
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  ---
//! |      inner IPv4 packet (tunnel mode) ...                      |   |
//! +               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+   | encrypted,
//! |               |  padding 1, 2, 3 (0-3 bytes, to 4 bytes)      |   | multiple of 4
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+   |
//! |                               |  Pad Length   | Next Header 4 |   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  ---
//! |                  ICV (16 bytes, the GCM tag)                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

/// SPI and sequence number.
pub const HEADER_LEN: usize = 8;
/// The explicit IV.
pub const IV_LEN: usize = 8;
/// The GCM tag.
pub const ICV_LEN: usize = 16;
/// Pad length and next header.
pub const TRAILER_LEN: usize = 2;
/// The smallest valid packet: an empty payload padded to 4 encrypted bytes.
pub const MIN_PACKET: usize = HEADER_LEN + IV_LEN + 4 + ICV_LEN;
/// The largest UDP payload in IPv4 (65535 - 20 - 8): the largest datagram we build or take.
pub const MAX_DATAGRAM: usize = 65_507;
/// Most bytes ESP adds to an inner packet (header, IV, 3 padding bytes, trailer, ICV).
pub const MAX_OVERHEAD: usize = HEADER_LEN + IV_LEN + 3 + TRAILER_LEN + ICV_LEN;
/// The largest inner packet an outbound SA seals.
pub const MAX_INNER: usize = MAX_DATAGRAM - MAX_OVERHEAD;

/// Next header: an IPv4 packet (tunnel mode).
pub const NEXT_IPV4: u8 = 4;
/// Next header: no next header, a dummy packet to be dropped (RFC 4303 2.6).
pub const NEXT_NONE: u8 = 59;

/// The SPI of an ESP packet, if it is long enough to have one (for the shell's SA lookup).
pub fn peek_spi(packet: &[u8]) -> Option<u32> {
    let b = packet.get(..4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The padding for `payload_len` bytes: encrypted part = payload | pad | pad len | next header
/// is a multiple of 4.
pub fn pad_len(payload_len: usize) -> usize {
    (4 - (payload_len + TRAILER_LEN) % 4) % 4
}
