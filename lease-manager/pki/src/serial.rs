//! Certificate serial numbers: positive integers of at most 20 bytes (RFC 5280 4.1.2.2),
//! drawn at random by the caller, written as lowercase hex without leading zeros.

use std::fmt;
use std::str::FromStr;

/// RFC 5280: conforming CAs use serial numbers of at most 20 octets.
const MAX_LEN: usize = 20;

/// A certificate serial number (big-endian, no leading zero bytes, never empty).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

/// Bytes or a string that are not a serial number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerialError {
    #[error("serial number of {len} bytes is too long (at most 20 without leading zeros)")]
    TooLong { len: usize },
    #[error("{input:?} is not a serial number: expected 1-40 hex digits")]
    Hex { input: String },
}

impl Serial {
    /// A serial from big-endian bytes (leading zeros are dropped; an empty or all-zero input
    /// is the serial 0).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SerialError> {
        let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        let trimmed = &bytes[first..];
        if trimmed.len() > MAX_LEN {
            return Err(SerialError::TooLong { len: trimmed.len() });
        }
        if trimmed.is_empty() {
            return Ok(Self(vec![0]));
        }
        Ok(Self(trimmed.to_vec()))
    }

    /// The big-endian bytes, without leading zeros.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lowercase hex without leading zero bytes (what `PeerCert::serial_hex` and the store hold).
    pub fn to_hex(&self) -> String {
        use fmt::Write;
        self.0.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    pub(crate) fn to_rcgen(&self) -> rcgen::SerialNumber {
        rcgen::SerialNumber::from_slice(&self.0)
    }
}

impl From<u64> for Serial {
    fn from(v: u64) -> Self {
        Self::from_bytes(&v.to_be_bytes()).expect("8 bytes fit")
    }
}

impl From<[u8; 16]> for Serial {
    fn from(v: [u8; 16]) -> Self {
        Self::from_bytes(&v).expect("16 bytes fit")
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({})", self.to_hex())
    }
}

impl FromStr for Serial {
    type Err = SerialError;

    /// Parses hex (either case, optional leading zeros, even or odd length).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || SerialError::Hex {
            input: s.chars().take(64).collect(),
        };
        if s.is_empty() || s.len() > 2 * MAX_LEN + 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err());
        }
        let padded = if s.len() % 2 == 1 {
            format!("0{s}")
        } else {
            s.to_string()
        };
        let bytes = padded
            .as_bytes()
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap_or("zz"), 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| err())?;
        Self::from_bytes(&bytes).map_err(|_| err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_agree() {
        let s = Serial::from(0x00ab_cdefu64);
        assert_eq!(s.to_hex(), "abcdef");
        assert_eq!("abcdef".parse::<Serial>().unwrap(), s);
        assert_eq!("00ABCDEF".parse::<Serial>().unwrap(), s);
        assert_eq!("bcdef".parse::<Serial>().unwrap().to_hex(), "0bcdef");
        assert_eq!(Serial::from(0u64).to_hex(), "00");
        let r = Serial::from([0xffu8; 16]);
        assert_eq!(r.as_bytes().len(), 16);
        assert_eq!(r.to_hex().parse::<Serial>().unwrap(), r);
        assert!(Serial::from_bytes(&[1; 21]).is_err());
        assert!(Serial::from_bytes(&[0, 0, 1]).unwrap().as_bytes() == [1]);
        for bad in ["", "xyz", "0x12", &"1".repeat(43), "12 "] {
            assert!(bad.parse::<Serial>().is_err(), "{bad:?}");
        }
    }
}
