//! The `Range` request header (RFC 9110 section 14.2) for one byte range. Pure.
//!
//! Accepted: `bytes=a-b`, `bytes=a-` and `bytes=-n` (unit name case-insensitive, optional
//! whitespace around the range, empty list elements ignored). What comes out:
//!
//! - [`ByteRange::Partial`] when the one range selects at least one byte (the end is clamped
//!   to the length, a suffix longer than the file selects the whole file from byte 0);
//! - [`ByteRange::Unsatisfiable`] when it cannot (`a` at or past the end, `bytes=-0`): 416;
//! - [`ByteRange::Whole`] otherwise: the header is ignored and the whole file is served. That
//!   covers garbage (an unknown unit, `a > b`, signs, non-digits), which RFC 9110 says to ignore,
//!   and **several ranges**, which would need a `multipart/byteranges` body that no boot
//!   firmware asks for; RFC 9110 lets a server ignore `Range` and send 200.
//!
//! A zero-length file has no byte to select: `bytes=-n` gives `Whole` (the empty body), any
//! `bytes=a-...` is unsatisfiable. Numbers of any length are compared exactly (values past
//! `u64::MAX` are simply past the end).

use std::cmp::Ordering;

/// What to serve for a `Range` header against a file of known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// Serve everything (200).
    Whole,
    /// Serve `start..=end_inclusive` (206); always `start <= end_inclusive < len`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end_inclusive: u64,
    },
    /// Nothing can be served (416 with `Content-Range: bytes */len`).
    Unsatisfiable,
}

impl ByteRange {
    /// Bytes in the body for a file of `len` bytes (`0` for `Unsatisfiable`).
    pub fn body_len(&self, len: u64) -> u64 {
        match *self {
            Self::Whole => len,
            Self::Partial {
                start,
                end_inclusive,
            } => end_inclusive - start + 1,
            Self::Unsatisfiable => 0,
        }
    }
}

/// Parses `header` against a representation of `len` bytes.
pub fn parse_range(header: &str, len: u64) -> ByteRange {
    let Some((unit, set)) = trim_ows(header).split_once('=') else {
        return ByteRange::Whole;
    };
    if !unit.eq_ignore_ascii_case("bytes") {
        return ByteRange::Whole;
    }
    let mut specs = set.split(',').map(trim_ows).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return ByteRange::Whole;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return ByteRange::Whole;
    };
    match (digits(first), digits(last)) {
        (None, Some(suffix)) if first.is_empty() => suffix_range(suffix, len),
        (Some(first), None) if last.is_empty() => from_range(first, None, len),
        (Some(first), Some(last)) => from_range(first, Some(last), len),
        _ => ByteRange::Whole,
    }
}

fn suffix_range(suffix: &str, len: u64) -> ByteRange {
    let n = saturating_value(suffix);
    if n == 0 {
        return ByteRange::Unsatisfiable;
    }
    if len == 0 {
        return ByteRange::Whole;
    }
    ByteRange::Partial {
        start: len - n.min(len),
        end_inclusive: len - 1,
    }
}

fn from_range(first: &str, last: Option<&str>, len: u64) -> ByteRange {
    if let Some(last) = last
        && compare(first, last) == Ordering::Greater
    {
        return ByteRange::Whole; // invalid: ignore the header
    }
    let start = saturating_value(first);
    if start >= len {
        return ByteRange::Unsatisfiable;
    }
    let end = last.map_or(u64::MAX, saturating_value);
    ByteRange::Partial {
        start,
        end_inclusive: end.min(len - 1),
    }
}

/// Optional whitespace of RFC 9110: spaces and horizontal tabs.
fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// `Some(s)` when `s` is one or more ASCII digits.
fn digits(s: &str) -> Option<&str> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

fn strip_zeros(s: &str) -> &str {
    s.trim_start_matches('0')
}

/// Exact comparison of two digit strings of any length.
fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (strip_zeros(a), strip_zeros(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The value of a digit string, `u64::MAX` when it does not fit.
fn saturating_value(s: &str) -> u64 {
    s.bytes()
        .try_fold(0u64, |acc, d| {
            acc.checked_mul(10)?
                .checked_add(u64::from(d.checked_sub(b'0')?))
        })
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(start: u64, end_inclusive: u64) -> ByteRange {
        ByteRange::Partial {
            start,
            end_inclusive,
        }
    }

    #[test]
    fn the_three_forms() {
        assert_eq!(parse_range("bytes=0-99", 1000), p(0, 99));
        assert_eq!(parse_range("bytes=100-", 1000), p(100, 999));
        assert_eq!(parse_range("bytes=-100", 1000), p(900, 999));
        assert_eq!(parse_range("bytes=5-5", 1000), p(5, 5));
        assert_eq!(parse_range("BYTES=0-0", 1), p(0, 0));
        assert_eq!(parse_range(" bytes= 1-2 ,", 10), p(1, 2));
        assert_eq!(parse_range("bytes=,\t,1-2", 10), p(1, 2));
    }

    #[test]
    fn clamping() {
        assert_eq!(parse_range("bytes=900-5000", 1000), p(900, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), p(0, 999));
        assert_eq!(parse_range("bytes=0-99999999999999999999999", 10), p(0, 9));
        assert_eq!(parse_range("bytes=-99999999999999999999999", 10), p(0, 9));
        assert_eq!(parse_range("bytes=0007-0009", 100), p(7, 9));
        assert_eq!(parse_range("bytes=0-", u64::MAX), p(0, u64::MAX - 1));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(parse_range("bytes=1000-", 1000), ByteRange::Unsatisfiable);
        assert_eq!(
            parse_range("bytes=1000-2000", 1000),
            ByteRange::Unsatisfiable
        );
        assert_eq!(parse_range("bytes=-0", 1000), ByteRange::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-0", 0), ByteRange::Unsatisfiable);
        assert_eq!(
            parse_range("bytes=99999999999999999999999-", 10),
            ByteRange::Unsatisfiable
        );
        assert_eq!(
            parse_range("bytes=18446744073709551615-", u64::MAX),
            ByteRange::Unsatisfiable
        );
    }

    #[test]
    fn garbage_and_multiple_ranges_mean_whole() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes=1 -2",
            "bytes=0x10-20",
            "bytes=1-2-3",
            "bytes =1-2",
            "items=0-1",
            "bytes=0-1,2-3",
            "bytes=0-1, -5",
            "bytes=٣-٤",
            "bytes=99999999999999999999999-1",
            "bytes=20000000000000000000001-20000000000000000000000",
            "\u{0}bytes=0-1",
        ] {
            assert_eq!(parse_range(h, 1000), ByteRange::Whole, "{h:?}");
        }
        assert_eq!(parse_range("bytes=-5", 0), ByteRange::Whole);
    }

    #[test]
    fn body_len() {
        assert_eq!(p(0, 0).body_len(10), 1);
        assert_eq!(p(2, 9).body_len(10), 8);
        assert_eq!(ByteRange::Whole.body_len(10), 10);
        assert_eq!(ByteRange::Unsatisfiable.body_len(10), 0);
    }

    proptest! {
        #[test]
        fn result_is_always_within_length(h in ".{0,40}", len in any::<u64>()) {
            check_bounds(parse_range(&h, len), len)?;
        }

        #[test]
        fn shaped_headers_are_within_length(
            a in any::<u64>(), b in any::<u64>(), len in 0u64..5000,
            form in 0u8..3, small in 0u64..6000,
        ) {
            let h = match form {
                0 => format!("bytes={}-{}", a % 6000, b % 6000),
                1 => format!("bytes={}-", a % 6000),
                _ => format!("bytes=-{small}"),
            };
            check_bounds(parse_range(&h, len), len)?;
        }

        #[test]
        fn int_ranges_follow_the_rfc(a in 0u64..10_000, extra in 0u64..10_000, len in 0u64..10_000) {
            let b = a + extra;
            let got = parse_range(&format!("bytes={a}-{b}"), len);
            if a >= len {
                prop_assert_eq!(got, ByteRange::Unsatisfiable);
            } else {
                prop_assert_eq!(got, p(a, b.min(len - 1)));
            }
        }

        #[test]
        fn suffixes_follow_the_rfc(n in 1u64..10_000, len in 1u64..10_000) {
            let got = parse_range(&format!("bytes=-{n}"), len);
            prop_assert_eq!(got, p(len.saturating_sub(n), len - 1));
            prop_assert_eq!(got.body_len(len), n.min(len));
        }
    }

    fn check_bounds(r: ByteRange, len: u64) -> Result<(), TestCaseError> {
        if let ByteRange::Partial {
            start,
            end_inclusive,
        } = r
        {
            prop_assert!(start <= end_inclusive, "{r:?}");
            prop_assert!(end_inclusive < len, "{r:?} len {len}");
        }
        Ok(())
    }
}
