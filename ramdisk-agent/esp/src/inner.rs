//! Sanity checks of the inner IPv4 packet of a tunnel-mode SA (pure). The checks are the ones
//! a router makes before it forwards: version, header length, total length. Bytes after the
//! total length are TFC padding (RFC 4303 2.7) and are cut off, not refused.

/// Why an inner packet is not an IPv4 packet we forward.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InnerError {
    #[error("inner packet of {len} bytes is shorter than an IPv4 header (20)")]
    TooShort { len: usize },
    #[error("inner packet has IP version {version}, only IPv4 is carried")]
    Version { version: u8 },
    #[error("inner IPv4 header length {ihl_bytes} is below 20 or beyond the {len}-byte packet")]
    HeaderLength { ihl_bytes: usize, len: usize },
    #[error(
        "inner IPv4 total length {total} does not fit the {len}-byte payload (header {ihl_bytes})"
    )]
    TotalLength {
        total: usize,
        len: usize,
        ihl_bytes: usize,
    },
}

/// The smallest IPv4 header.
pub const IPV4_MIN_HEADER: usize = 20;

/// Checks that `payload` starts with a plausible IPv4 packet and returns it without any TFC
/// padding that follows it.
pub fn check_ipv4(payload: &[u8]) -> Result<&[u8], InnerError> {
    let len = payload.len();
    let Some(&first) = payload.first() else {
        return Err(InnerError::TooShort { len });
    };
    if len < IPV4_MIN_HEADER {
        return Err(InnerError::TooShort { len });
    }
    let version = first >> 4;
    if version != 4 {
        return Err(InnerError::Version { version });
    }
    let ihl_bytes = usize::from(first & 0x0f) * 4;
    if ihl_bytes < IPV4_MIN_HEADER || ihl_bytes > len {
        return Err(InnerError::HeaderLength { ihl_bytes, len });
    }
    let total = usize::from(u16::from_be_bytes([payload[2], payload[3]]));
    if total < ihl_bytes || total > len {
        return Err(InnerError::TotalLength {
            total,
            len,
            ihl_bytes,
        });
    }
    Ok(&payload[..total])
}
