//! The sealed boot image format: a tenant's boot image (kernel, initramfs, kernel command line,
//! optional extra payload) cut into fixed-size chunks, each sealed with an AEAD (AES-256-GCM or
//! ChaCha20-Poly1305), plus a manifest signed with the tenant's Ed25519 image-signing key.
//!
//! On disk and on the wire an image is two files (layout, nonce and AAD construction, and the
//! verification order: `docs/formats.md`, "Sealed image"):
//! - `<image-id>.manifest`: [`SignedManifest::encode`], the signed [`Manifest`];
//! - `<image-id>.chunks`: the ciphertext chunks back to back; chunk `i` starts at byte
//!   `i * (chunk_size + TAG_LEN)` ([`Manifest::chunk_range`]), so a download can resume at any
//!   chunk with an HTTP Range request.
//!
//! Sealing streams: [`Sealer`] takes plaintext through [`std::io::Write`] or
//! [`Sealer::add_section`] and writes ciphertext as it goes; [`seal_files`] is the file shell.
//! Opening streams: [`OpenReader`] reads ciphertext, authenticates each chunk before handing out
//! any of its bytes, and [`OpenReader::finish`] is the explicit final verification (no truncation,
//! no trailing data, every chunk matched the signed tag list). Memory is one chunk buffer plus the
//! manifest's tag list (16 bytes per chunk), independent of the image size otherwise.
//!
//! IO stance: the format, the crypto and both state machines are pure over `Read`/`Write`; only
//! [`seal_files`], [`read_manifest_file`] and the key file helpers touch the file system.
//! Randomness comes in as a `ring::rand::SecureRandom`, time as `created_ms`.

mod crypto;
mod encoding;
mod error;
mod files;
mod ids;
mod keys;
mod manifest;
mod open;
mod seal;

pub use encoding::{MANIFEST_MAGIC, MAX_MANIFEST_LEN, SignedManifest, VERSION};
pub use error::{Error, Result};
pub use files::{chunks_file_name, manifest_file_name, read_manifest_file, seal_files};
pub use ids::{Aead, ImageId, KeyEpoch};
pub use keys::{ImageKey, SigningKey, VerifyingKey};
pub use manifest::{
    DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MAX_CHUNKS, MAX_CMDLINE_LEN, MAX_SECTIONS, MIN_CHUNK_SIZE,
    Manifest, Section, expected_chunk_count,
};
pub use open::{OpenReader, Opener, Verified};
pub use seal::{SealParams, Sealer};

/// Length of an AEAD tag (both modes), appended to every chunk's ciphertext.
pub const TAG_LEN: usize = 16;
