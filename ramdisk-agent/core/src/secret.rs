//! Secrets the agent holds in RAM only: the enrollment token from the kernel command line and
//! the DER of its private key. They never reach a log line (`Debug` prints `<redacted>`) and
//! are overwritten with zeros when wiped or dropped.
//!
//! Pure, no IO. The overwrite goes through [`std::hint::black_box`] so the compiler keeps the
//! stores of a buffer about to be freed; it is best effort (copies made by other crates, such
//! as the key inside rustls' signing key, are theirs to clear).

use std::fmt;

/// Bytes that are zeroed on [`SecretBytes::wipe`] and on drop.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of `bytes` (no copy is left behind by this call).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The secret, for the one place that must use it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// True once wiped (or when empty from the start).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Overwrites the bytes with zeros and empties the buffer.
    pub fn wipe(&mut self) {
        zero(&mut self.0);
        self.0.clear();
    }
}

/// Overwrites `buf` with zeros in a way the optimiser does not drop as a dead store.
pub fn zero(buf: &mut [u8]) {
    buf.fill(0);
    std::hint::black_box(&mut *buf);
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted, {} bytes>", self.0.len())
    }
}

/// Hex characters in an enrollment token (256 random bits, lowercase hex, as the LM mints it).
pub const TOKEN_HEX_LEN: usize = 64;

/// The single-use enrollment token from `lm.token=`: exactly [`TOKEN_HEX_LEN`] lowercase hex
/// characters. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollToken(SecretBytes);

impl EnrollToken {
    /// Checks the shape of a token. The error never contains the value.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() != TOKEN_HEX_LEN {
            return Err(format!(
                "expected {TOKEN_HEX_LEN} lowercase hex characters, got {} bytes",
                s.len()
            ));
        }
        if !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!(
                "expected {TOKEN_HEX_LEN} lowercase hex characters (0-9, a-f)"
            ));
        }
        Ok(Self(SecretBytes::new(s.as_bytes().to_vec())))
    }

    /// The token text, for the enrollment request only.
    pub fn expose(&self) -> &str {
        // Only lowercase hex gets in (see `parse`), and `wipe` leaves an empty buffer.
        std::str::from_utf8(self.0.expose()).unwrap_or_default()
    }

    /// True once wiped.
    pub fn is_wiped(&self) -> bool {
        self.0.is_empty()
    }

    /// Overwrites the token with zeros.
    pub fn wipe(&mut self) {
        self.0.wipe();
    }
}

impl fmt::Debug for EnrollToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnrollToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn tokens_are_checked_and_never_shown() {
        let t = EnrollToken::parse(T).unwrap();
        assert_eq!(t.expose(), T);
        assert_eq!(format!("{t:?}"), "EnrollToken(<redacted>)");
        for bad in [
            &T[1..],
            &format!("{T}0"),
            &T.to_uppercase(),
            &T.replace('0', "g"),
            "",
            &"é".repeat(32),
        ] {
            let e = EnrollToken::parse(bad).unwrap_err();
            assert!(!bad.is_empty() && !e.contains(bad) || bad.is_empty(), "{e}");
        }
    }

    #[test]
    fn wiping_zeroes_and_empties() {
        let mut t = EnrollToken::parse(T).unwrap();
        t.wipe();
        assert!(t.is_wiped());
        assert_eq!(t.expose(), "");
        let mut s = SecretBytes::new(vec![7; 32]);
        assert_eq!(format!("{s:?}"), "<redacted, 32 bytes>");
        s.wipe();
        assert!(s.is_empty());
        let mut buf = [9u8; 8];
        zero(&mut buf);
        assert_eq!(buf, [0; 8]);
    }
}
