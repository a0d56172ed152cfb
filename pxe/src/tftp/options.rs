//! [`TftpOptions`] (the server's limits) and [`negotiate`]: what a read request asked for
//! (RFC 2347) against those limits -> the transfer parameters and the OACK to send. Pure.
//!
//! - `blksize` (RFC 2348): granted up to [`TftpOptions::block_size_limit`]; 512 when not asked.
//! - `windowsize` (RFC 7440): granted up to [`TftpOptions::window_size_limit`]; 1 (lock-step)
//!   when not asked.
//! - `timeout` (RFC 2349): the client's value in seconds is used and echoed; otherwise
//!   [`TftpOptions::timeout`].
//! - `tsize` (RFC 2349): a read request's `tsize 0` is answered with the file length.
//!
//! The defaults allow 1468-byte blocks (a 1500-byte MTU minus IP, UDP and TFTP headers) and
//! windows of 16 blocks; iPXE asks for 1432. Options appear in the OACK in that order (blksize,
//! timeout, tsize, windowsize); no OACK is sent when none was granted.

use std::time::Duration;

use super::packet::RequestedOptions;
use super::server::TftpError;

/// Smallest and largest `blksize` RFC 2348 allows.
pub const BLOCK_SIZE_RANGE: std::ops::RangeInclusive<u16> = 8..=65464;
/// Block size without the option (RFC 1350).
pub const DEFAULT_BLOCK_SIZE: u16 = 512;

/// Limits applied to what clients ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TftpOptions {
    /// Largest `blksize` granted. Default 1468.
    pub block_size_limit: u16,
    /// Largest `windowsize` granted (1 = lock-step). Default 16.
    pub window_size_limit: u16,
    /// Retransmission timeout when the client does not ask for one. Default 3 s.
    pub timeout: Duration,
    /// Retransmissions of an unacknowledged window before the transfer is abandoned. Default 5
    /// (with the 3 s timeout, a client silent for 18 s is dropped).
    pub max_retries: u32,
    /// Transfers served at once; further requests get an ERROR. Default 64.
    pub max_transfers: usize,
}

impl Default for TftpOptions {
    fn default() -> Self {
        Self {
            block_size_limit: 1468,
            window_size_limit: 16,
            timeout: Duration::from_secs(3),
            max_retries: 5,
            max_transfers: 64,
        }
    }
}

impl TftpOptions {
    /// Checks the limits; the error names the bad field.
    pub fn validate(&self) -> Result<(), TftpError> {
        let bad = |reason: String| Err(TftpError::Options { reason });
        if !BLOCK_SIZE_RANGE.contains(&self.block_size_limit) {
            return bad(format!(
                "block_size_limit {} is outside 8..=65464 (RFC 2348)",
                self.block_size_limit
            ));
        }
        if self.window_size_limit == 0 {
            return bad("window_size_limit must be at least 1 (RFC 7440)".into());
        }
        if self.timeout.is_zero() {
            return bad("timeout must be more than zero".into());
        }
        if self.max_transfers == 0 {
            return bad("max_transfers must be at least 1".into());
        }
        Ok(())
    }
}

/// The parameters of one read transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Data bytes per block.
    pub block_size: u16,
    /// Blocks sent before waiting for an ACK.
    pub window_size: u16,
    /// Retransmission timeout.
    pub timeout: Duration,
    /// The OACK's options, in order; empty means no OACK (the transfer starts with block 1).
    pub oack: Vec<(&'static str, u64)>,
}

/// Grants what `asked` requests within `limits`, for a file of `file_len` bytes.
pub fn negotiate(asked: &RequestedOptions, limits: &TftpOptions, file_len: u64) -> Negotiated {
    let mut oack = Vec::new();
    let block_size = match asked.blksize {
        Some(b) => {
            let b = b.clamp(*BLOCK_SIZE_RANGE.start(), limits.block_size_limit);
            oack.push(("blksize", u64::from(b)));
            b
        }
        None => DEFAULT_BLOCK_SIZE,
    };
    let timeout = match asked.timeout {
        Some(t) if t > 0 => {
            oack.push(("timeout", u64::from(t)));
            Duration::from_secs(u64::from(t))
        }
        _ => limits.timeout,
    };
    if asked.tsize == Some(0) {
        oack.push(("tsize", file_len));
    }
    let window_size = match asked.windowsize {
        Some(w) if w > 0 => {
            let w = w.min(limits.window_size_limit.max(1));
            oack.push(("windowsize", u64::from(w)));
            w
        }
        _ => 1,
    };
    Negotiated {
        block_size,
        window_size,
        timeout,
        oack,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(
        blksize: Option<u16>,
        tsize: Option<u64>,
        timeout: Option<u8>,
        windowsize: Option<u16>,
    ) -> RequestedOptions {
        RequestedOptions {
            blksize,
            tsize,
            timeout,
            windowsize,
        }
    }

    #[test]
    fn no_options_is_rfc1350() {
        let n = negotiate(&RequestedOptions::default(), &TftpOptions::default(), 10);
        assert_eq!(n.block_size, 512);
        assert_eq!(n.window_size, 1);
        assert_eq!(n.timeout, Duration::from_secs(3));
        assert!(n.oack.is_empty());
    }

    #[test]
    fn grants_in_order_and_caps() {
        let a = asked(Some(65464), Some(0), Some(7), Some(64));
        let n = negotiate(&a, &TftpOptions::default(), 200_000);
        assert_eq!((n.block_size, n.window_size), (1468, 16));
        assert_eq!(n.timeout, Duration::from_secs(7));
        let want = vec![
            ("blksize", 1468),
            ("timeout", 7),
            ("tsize", 200_000),
            ("windowsize", 16),
        ];
        assert_eq!(n.oack, want);
        let a = asked(Some(1432), None, None, Some(8));
        let n = negotiate(&a, &TftpOptions::default(), 1);
        assert_eq!(n.oack, vec![("blksize", 1432), ("windowsize", 8)]);
    }

    #[test]
    fn hostile_values_are_clamped_or_ignored() {
        // Values the parser never produces, should a caller build them.
        let a = asked(Some(0), Some(5), Some(0), Some(0));
        let n = negotiate(&a, &TftpOptions::default(), 1);
        assert_eq!(n.block_size, 8);
        assert_eq!(n.window_size, 1);
        assert_eq!(n.timeout, Duration::from_secs(3));
        // A non-zero tsize in a read request is not answered.
        assert_eq!(n.oack, vec![("blksize", 8)]);
    }

    #[test]
    fn validate_names_the_field() {
        assert!(TftpOptions::default().validate().is_ok());
        let cases = [
            (
                TftpOptions {
                    block_size_limit: 7,
                    ..TftpOptions::default()
                },
                "block_size_limit",
            ),
            (
                TftpOptions {
                    window_size_limit: 0,
                    ..TftpOptions::default()
                },
                "window_size_limit",
            ),
            (
                TftpOptions {
                    timeout: Duration::ZERO,
                    ..TftpOptions::default()
                },
                "timeout",
            ),
            (
                TftpOptions {
                    max_transfers: 0,
                    ..TftpOptions::default()
                },
                "max_transfers",
            ),
        ];
        for (bad, field) in cases {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
    }
}
