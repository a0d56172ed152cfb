//! Deterministic gzip compression and bounded decompression. Pure (in-memory streams only).
//!
//! The gzip header is fixed: no file name, no comment, mtime 0, OS byte 255 ("unknown"), and
//! the compression level is fixed at [`GZIP_LEVEL`]. With the pinned `flate2`/`miniz_oxide`
//! versions in `Cargo.lock`, the same input gives the same bytes on every machine. (A newer
//! `miniz_oxide` may compress differently; the cpio inside stays identical.)

use std::io::{self, Read, Write};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use thiserror::Error;

/// The gzip level used for every image: gzip's default. Level 9 gave images under 1% smaller
/// (428.9 kB vs 431.5 kB for the lab image) at twice the time in debug builds (17 s vs 9 s
/// with a 6.8 MB agent); the kernel decompresses both alike.
pub const GZIP_LEVEL: u32 = 6;
/// gzip OS byte "unknown": keeps the header independent of the build host.
const GZIP_OS_UNKNOWN: u8 = 255;

/// Why a compressed input could not be read.
#[derive(Debug, Error)]
pub enum DecompressError {
    #[error("not a valid gzip stream: {0}")]
    Corrupt(#[source] io::Error),
    #[error("decompressed data exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
}

/// A gzip encoder with the fixed header and level, writing into `out`.
pub fn gzip_encoder<W: Write>(out: W) -> GzEncoder<W> {
    GzBuilder::new()
        .mtime(0)
        .operating_system(GZIP_OS_UNKNOWN)
        .write(out, Compression::new(GZIP_LEVEL))
}

/// Compress `data` with [`gzip_encoder`].
pub fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut enc = gzip_encoder(Vec::with_capacity(data.len() / 2));
    enc.write_all(data)?;
    enc.finish()
}

/// Whether `data` starts with the gzip magic.
pub fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b])
}

/// Decompress a (possibly multi-member) gzip stream, refusing output larger than `limit`.
pub fn gunzip_limited(data: &[u8], limit: u64) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    MultiGzDecoder::new(data)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(DecompressError::Corrupt)?;
    if out.len() as u64 > limit {
        return Err(DecompressError::TooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_is_fixed() {
        let out = gzip(b"hello").unwrap();
        // magic, CM=8, FLG=0 (no name/comment/extra), MTIME=0, XFL=0 (level 6), OS=255
        assert_eq!(&out[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        assert!(is_gzip(&out));
    }

    #[test]
    fn deterministic_and_reversible() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let a = gzip(&data).unwrap();
        let b = gzip(&data).unwrap();
        assert_eq!(a, b);
        assert_eq!(gunzip_limited(&a, 1 << 20).unwrap(), data);
    }

    #[test]
    fn concatenated_members_are_read() {
        let mut both = gzip(b"abc").unwrap();
        both.extend(gzip(b"def").unwrap());
        assert_eq!(gunzip_limited(&both, 100).unwrap(), b"abcdef");
    }

    #[test]
    fn limit_and_corruption() {
        let zeros = gzip(&vec![0u8; 10_000]).unwrap();
        assert!(matches!(
            gunzip_limited(&zeros, 9_999),
            Err(DecompressError::TooLarge { limit: 9_999 })
        ));
        assert_eq!(gunzip_limited(&zeros, 10_000).unwrap().len(), 10_000);
        let mut broken = zeros.clone();
        let n = broken.len();
        broken[n - 5] ^= 0xff; // CRC/size trailer
        assert!(matches!(
            gunzip_limited(&broken, 1 << 20),
            Err(DecompressError::Corrupt(_))
        ));
        assert!(gunzip_limited(&zeros[..zeros.len() / 2], 1 << 20).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut input = vec![0x1f, 0x8b];
            input.extend(bytes);
            let _ = gunzip_limited(&input, 1 << 16);
        }
    }
}
