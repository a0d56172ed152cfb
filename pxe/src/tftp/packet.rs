//! TFTP packets (RFC 1350, options per RFC 2347): parsing what clients send and encoding what
//! the server sends. Pure; no IO, no allocation while parsing.
//!
//! ```text
//!  RRQ/WRQ  | 01/02 | file name | 0 | mode | 0 | opt1 | 0 | value1 | 0 | ... |
//!  DATA     | 03 | block | data (0..=blksize bytes) |
//!  ACK      | 04 | block |
//!  ERROR    | 05 | code | message | 0 |
//!  OACK     | 06 | opt1 | 0 | value1 | 0 | ... |
//! ```
//!
//! Opcodes, block numbers and error codes are 16-bit big-endian. Parsing is strict about
//! structure (every string NUL-terminated, option names paired with values, no trailing bytes
//! after an ACK) and lenient about option values: a value that is not a plain decimal number in
//! the RFC's range is ignored, as RFC 2347 lets a server ignore options it does not accept.

/// Read request.
pub const OP_RRQ: u16 = 1;
/// Write request.
pub const OP_WRQ: u16 = 2;
/// Data block.
pub const OP_DATA: u16 = 3;
/// Acknowledgement.
pub const OP_ACK: u16 = 4;
/// Error.
pub const OP_ERROR: u16 = 5;
/// Option acknowledgement (RFC 2347).
pub const OP_OACK: u16 = 6;

/// Bytes before the data in a DATA packet (opcode and block number).
pub const DATA_HEADER_LEN: usize = 4;

/// Which transfer direction a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// RRQ: the client reads a file.
    Read,
    /// WRQ: the client writes a file.
    Write,
}

/// Transfer mode (RFC 1350). Files are served byte for byte in both `octet` and `netascii`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `netascii`.
    Netascii,
    /// `octet`.
    Octet,
    /// `mail` (obsolete, write only).
    Mail,
}

/// The options a request carried that the server understands, each only when well-formed and
/// in range (the first occurrence wins; unknown options are skipped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestedOptions {
    /// `blksize` (RFC 2348), 8..=65464.
    pub blksize: Option<u16>,
    /// `tsize` (RFC 2349); 0 in a read request asks for the file length.
    pub tsize: Option<u64>,
    /// `timeout` in seconds (RFC 2349), 1..=255.
    pub timeout: Option<u8>,
    /// `windowsize` (RFC 7440), 1..=65535.
    pub windowsize: Option<u16>,
}

/// A parsed RRQ or WRQ. The file name is raw bytes (see [`super::path`] for the mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// Read or write.
    pub direction: Direction,
    /// The requested file name, without its NUL.
    pub file: &'a [u8],
    /// The transfer mode.
    pub mode: Mode,
    /// Understood, well-formed options.
    pub options: RequestedOptions,
}

/// Why a datagram on the request port is not a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedRequest {
    /// Shorter than an opcode.
    #[error("shorter than an opcode")]
    Short,
    /// The opcode is not RRQ or WRQ.
    #[error("opcode {0} is not a request")]
    NotARequest(u16),
    /// A string is not NUL-terminated, or an option has no value.
    #[error("a string is not NUL-terminated or an option has no value")]
    Unterminated,
    /// The mode is not netascii, octet or mail.
    #[error("unknown transfer mode")]
    UnknownMode,
}

/// What a client sent to a transfer's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientPacket<'a> {
    /// ACK of a block number (0 acknowledges the OACK).
    Ack(u16),
    /// The client gives up; the message is raw bytes (possibly unterminated).
    Error {
        /// The error code.
        code: u16,
        /// The message, without the NUL.
        message: &'a [u8],
    },
    /// Anything else: malformed, or not meaningful to a sender. Ignored.
    Other,
}

/// ERROR codes (RFC 1350, RFC 2347).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// Not defined, see the message.
    NotDefined = 0,
    /// File not found.
    FileNotFound = 1,
    /// Access violation.
    AccessViolation = 2,
    /// Illegal TFTP operation.
    IllegalOperation = 4,
}

fn split_nul(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = input.iter().position(|b| *b == 0)?;
    Some((&input[..at], &input[at + 1..]))
}

fn opcode(input: &[u8]) -> Option<(u16, &[u8])> {
    match input {
        [a, b, rest @ ..] => Some((u16::from_be_bytes([*a, *b]), rest)),
        _ => None,
    }
}

/// A plain decimal number (digits only: no sign, no spaces, at most 20 digits).
fn decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 20 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

fn in_range<T: TryFrom<u64>>(value: &[u8], min: u64, max: u64) -> Option<T> {
    decimal(value)
        .filter(|v| (min..=max).contains(v))
        .and_then(|v| T::try_from(v).ok())
}

fn parse_options(mut input: &[u8]) -> Result<RequestedOptions, MalformedRequest> {
    let mut o = RequestedOptions::default();
    while !input.is_empty() {
        let (name, rest) = split_nul(input).ok_or(MalformedRequest::Unterminated)?;
        let (value, rest) = split_nul(rest).ok_or(MalformedRequest::Unterminated)?;
        input = rest;
        if name.eq_ignore_ascii_case(b"blksize") && o.blksize.is_none() {
            o.blksize = in_range(value, 8, 65464);
        } else if name.eq_ignore_ascii_case(b"tsize") && o.tsize.is_none() {
            o.tsize = decimal(value);
        } else if name.eq_ignore_ascii_case(b"timeout") && o.timeout.is_none() {
            o.timeout = in_range(value, 1, 255);
        } else if name.eq_ignore_ascii_case(b"windowsize") && o.windowsize.is_none() {
            o.windowsize = in_range(value, 1, 65535);
        }
    }
    Ok(o)
}

/// Parses a datagram received on the request port.
pub fn parse_request(input: &[u8]) -> Result<Request<'_>, MalformedRequest> {
    let (op, rest) = opcode(input).ok_or(MalformedRequest::Short)?;
    let direction = match op {
        OP_RRQ => Direction::Read,
        OP_WRQ => Direction::Write,
        other => return Err(MalformedRequest::NotARequest(other)),
    };
    let (file, rest) = split_nul(rest).ok_or(MalformedRequest::Unterminated)?;
    let (mode, rest) = split_nul(rest).ok_or(MalformedRequest::Unterminated)?;
    let mode = if mode.eq_ignore_ascii_case(b"octet") {
        Mode::Octet
    } else if mode.eq_ignore_ascii_case(b"netascii") {
        Mode::Netascii
    } else if mode.eq_ignore_ascii_case(b"mail") {
        Mode::Mail
    } else {
        return Err(MalformedRequest::UnknownMode);
    };
    Ok(Request {
        direction,
        file,
        mode,
        options: parse_options(rest)?,
    })
}

/// Parses a datagram received on a transfer's port.
pub fn parse_client_packet(input: &[u8]) -> ClientPacket<'_> {
    match opcode(input) {
        Some((OP_ACK, [a, b])) => ClientPacket::Ack(u16::from_be_bytes([*a, *b])),
        Some((OP_ERROR, [a, b, message @ ..])) => ClientPacket::Error {
            code: u16::from_be_bytes([*a, *b]),
            message: split_nul(message).map_or(message, |(m, _)| m),
        },
        _ => ClientPacket::Other,
    }
}

/// Writes a DATA header for wire block number `block` into `out[..4]`.
///
/// # Panics
/// If `out` is shorter than [`DATA_HEADER_LEN`] (the caller sizes its buffer).
pub fn put_data_header(out: &mut [u8], block: u16) {
    out[..2].copy_from_slice(&OP_DATA.to_be_bytes());
    out[2..4].copy_from_slice(&block.to_be_bytes());
}

/// Encodes an ERROR packet into `out` (cleared first).
pub fn encode_error(out: &mut Vec<u8>, code: ErrorCode, message: &str) {
    out.clear();
    out.extend_from_slice(&OP_ERROR.to_be_bytes());
    out.extend_from_slice(&(code as u16).to_be_bytes());
    out.extend(message.bytes().filter(|b| *b != 0));
    out.push(0);
}

/// Encodes an OACK with the given options, in order, into `out` (cleared first).
pub fn encode_oack(out: &mut Vec<u8>, options: &[(&str, u64)]) {
    out.clear();
    out.extend_from_slice(&OP_OACK.to_be_bytes());
    for (name, value) in options {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.to_string().as_bytes());
        out.push(0);
    }
}

#[cfg(test)]
#[path = "packet_tests.rs"]
mod tests;
