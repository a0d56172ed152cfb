//! The sealed host key blob: the sealed object's public and private parts as TPM2_Create
//! returned them, in a small versioned file format (docs/formats.md, "TPM sealed host key
//! blob"). Pure.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "ATPM-SB\n"
//! 8       2     format version, u16 big-endian: 1
//! 10      2     P: public length, u16 big-endian, 1..=1024
//! 12      P     TPMT_PUBLIC of the sealed object (our KEYEDHASH template)
//! 12+P    2     Q: private length, u16 big-endian, 1..=1024
//! 14+P    Q     contents of TPM2B_PRIVATE (integrity HMAC + encrypted sensitive area)
//! 14+P+Q        end: nothing may follow
//! ```

use crate::command::MAX_BLOB_PART;
use crate::error::TpmError;
use crate::marshal::Reader;
use crate::template::check_sealed_public;

/// The blob's magic bytes.
pub const MAGIC: &[u8; 8] = b"ATPM-SB\n";
/// The one format version this crate writes and reads.
pub const VERSION: u16 = 1;

/// A secret sealed by one TPM: only that TPM (same owner seed) can unseal it. Not secret
/// itself (the private part is encrypted by the TPM), but useless anywhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBlob {
    /// TPMT_PUBLIC of the sealed object (without the TPM2B size).
    pub public: Vec<u8>,
    /// The contents of TPM2B_PRIVATE (without its size).
    pub private: Vec<u8>,
}

impl SealedBlob {
    /// The file form (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + self.public.len() + self.private.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        for part in [&self.public, &self.private] {
            // Parts longer than u16::MAX cannot come from a TPM; they are written truncated
            // in length and refused by `from_bytes` and by TPM2_Load's builder.
            let n = u16::try_from(part.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&n.to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    /// Reads the file form: magic, version, both parts 1 to 1024 bytes, the public part our
    /// sealed-object template, nothing after. Any other input is `TpmError::BadBlob`.
    pub fn from_bytes(b: &[u8]) -> Result<Self, TpmError> {
        let magic = b.get(..MAGIC.len()).ok_or_else(|| {
            TpmError::bad_blob(format!("{} bytes, shorter than the magic", b.len()))
        })?;
        if magic != MAGIC {
            return Err(TpmError::bad_blob(
                "wrong magic (expected \"ATPM-SB\\n\"): not a sealed host key blob",
            ));
        }
        let mut r = Reader::new(&b[MAGIC.len()..], "sealed blob");
        let bad = |e: TpmError| match e {
            TpmError::Malformed { what } => TpmError::BadBlob { what },
            other => other,
        };
        let version = r.u16("version").map_err(bad)?;
        if version != VERSION {
            return Err(TpmError::bad_blob(format!(
                "format version {version}, this agent reads version {VERSION}"
            )));
        }
        let public = part(&mut r, "public").map_err(bad)?;
        let private = part(&mut r, "private").map_err(bad)?;
        r.finish().map_err(bad)?;
        check_sealed_public(public).map_err(TpmError::bad_blob)?;
        Ok(SealedBlob {
            public: public.to_vec(),
            private: private.to_vec(),
        })
    }
}

fn part<'a>(r: &mut Reader<'a>, name: &'static str) -> Result<&'a [u8], TpmError> {
    let b = r.tpm2b(name)?;
    if b.is_empty() || b.len() > MAX_BLOB_PART {
        return Err(TpmError::bad_blob(format!(
            "the {name} part has {} bytes, expected 1 to {MAX_BLOB_PART}",
            b.len()
        )));
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> SealedBlob {
        let mut public = vec![0x00, 0x08, 0x00, 0x0b, 0x00, 0x00, 0x04, 0x52, 0x00, 0x00];
        public.extend_from_slice(&[0x00, 0x10, 0x00, 0x20]);
        public.extend_from_slice(&[0xCD; 32]);
        SealedBlob {
            public,
            private: vec![0x5A; 108],
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let b = sample();
        let bytes = b.to_bytes();
        assert_eq!(&bytes[..10], b"ATPM-SB\n\x00\x01");
        assert_eq!(&bytes[10..12], &[0, 46]);
        assert_eq!(bytes.len(), 14 + 46 + 108);
        assert_eq!(SealedBlob::from_bytes(&bytes).unwrap(), b);
    }

    #[test]
    fn refuses_every_truncation_and_trailing_bytes() {
        let bytes = sample().to_bytes();
        for n in 0..bytes.len() {
            let e = SealedBlob::from_bytes(&bytes[..n]).unwrap_err();
            assert!(matches!(e, TpmError::BadBlob { .. }), "{n}: {e}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            SealedBlob::from_bytes(&long),
            Err(TpmError::BadBlob { .. })
        ));
    }

    #[test]
    fn refuses_wrong_magic_version_sizes_and_objects() {
        let bytes = sample().to_bytes();
        let mut b = bytes.clone();
        b[0] = b'X';
        assert!(
            SealedBlob::from_bytes(&b)
                .unwrap_err()
                .to_string()
                .contains("magic")
        );
        let mut b = bytes.clone();
        b[9] = 2;
        assert!(
            SealedBlob::from_bytes(&b)
                .unwrap_err()
                .to_string()
                .contains("version 2")
        );
        let mut b = bytes.clone();
        b[10..12].copy_from_slice(&[0xFF, 0xFF]);
        assert!(matches!(
            SealedBlob::from_bytes(&b),
            Err(TpmError::BadBlob { .. })
        ));
        let mut b = bytes.clone();
        b[13] = 0x01; // public type RSA
        let e = SealedBlob::from_bytes(&b).unwrap_err().to_string();
        assert!(e.contains("object type"), "{e}");
        let empty = SealedBlob {
            public: sample().public,
            private: vec![],
        };
        assert!(SealedBlob::from_bytes(&empty.to_bytes()).is_err());
        let huge = SealedBlob {
            public: sample().public,
            private: vec![0; 70_000],
        };
        assert!(SealedBlob::from_bytes(&huge.to_bytes()).is_err());
        assert!(SealedBlob::from_bytes(b"garbage").is_err());
    }

    proptest! {
        #[test]
        fn from_bytes_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..300), magic in any::<bool>()) {
            let mut b = if magic { b"ATPM-SB\n\x00\x01".to_vec() } else { Vec::new() };
            b.extend_from_slice(&tail);
            if let Ok(blob) = SealedBlob::from_bytes(&b) {
                prop_assert_eq!(blob.to_bytes(), b);
            }
        }
    }
}
