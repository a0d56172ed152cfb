//! The one error type of the format: each variant names the check that failed and where.

use std::sync::Arc;

use crate::ids::{ImageId, KeyEpoch};

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a sealed image (or a key, or sealing input) was refused. Every refusal of image data
/// comes before any byte of the refused chunk is handed out. `Clone` so that a failed
/// [`crate::OpenReader`] can repeat its error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The chunk at `index` does not authenticate: its bytes were changed, or it belongs to
    /// another image or key.
    #[error("chunk {index} refused: {why}; the image was tampered with, fetch it again")]
    TamperedChunk { index: u64, why: &'static str },
    /// The chunk at position `index` is this image's chunk `found`: chunks were reordered,
    /// swapped or duplicated (or a download resumed at the wrong offset).
    #[error(
        "chunk at position {index} is chunk {found} of this image: chunks reordered or swapped (or a resume started at the wrong offset)"
    )]
    ReorderedOrWrongChunk { index: u64, found: u64 },
    /// A single chunk given to [`crate::Opener::open_chunk`] has the wrong length.
    #[error(
        "chunk {index} is {got} bytes, expected {expected} (its plaintext length plus the 16-byte tag)"
    )]
    ChunkLength { index: u64, expected: u64, got: u64 },
    /// A chunk index past the end of the image.
    #[error("chunk index {index} is out of range: the image has {count} chunks")]
    ChunkOutOfRange { index: u64, count: u64 },
    /// The chunks file ended early: `expected`/`got` are bytes of the `.chunks` file counted
    /// from where this reader started.
    #[error(
        "the chunks file is truncated: expected {expected} bytes from the start point, got {got}; resume the download"
    )]
    Truncated { expected: u64, got: u64 },
    /// Bytes follow the last chunk.
    #[error(
        "trailing data after the last of {chunk_count} chunks: the chunks file is longer than its manifest says"
    )]
    TrailingData { chunk_count: u64 },
    /// [`crate::OpenReader::finish`] before the reader reached the end of the image.
    #[error("the image was not read to its end: next chunk {next} of {count}")]
    Unfinished { next: u64, count: u64 },
    /// The manifest is for another image than the one asked for.
    #[error("manifest is for image {found}, expected image {expected}")]
    WrongImageId { expected: ImageId, found: ImageId },
    /// The manifest is sealed under another key epoch than the key at hand.
    #[error(
        "manifest is sealed under key epoch {found}, the key is for epoch {expected}: fetch the key for epoch {found}"
    )]
    WrongKeyEpoch { expected: KeyEpoch, found: KeyEpoch },
    /// The image key does not match the manifest's key check value.
    #[error(
        "the image key does not match this manifest (another key, or another image id, epoch or AEAD)"
    )]
    WrongKey,
    /// The manifest's signature does not verify under the given image-signing key.
    #[error(
        "manifest signature does not verify under the tenant's image-signing key: the manifest was changed or signed by another key"
    )]
    BadSignature,
    /// The manifest carries no signature.
    #[error("manifest is unsigned: refusing it (only signed manifests are accepted)")]
    Unsigned,
    /// The manifest's format version is not one this build reads.
    #[error(
        "manifest format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion { found: u16, supported: u16 },
    /// A manifest field (or the manifest framing) is malformed.
    #[error("malformed manifest: {field}: {why}")]
    Malformed { field: &'static str, why: String },
    /// Sealing input refused (section name, command line, chunk size, image too large).
    #[error("cannot seal: {field}: {why}")]
    InvalidInput { field: &'static str, why: String },
    /// Key material refused (PKCS#8, hex, base64, length).
    #[error("key refused: {why}")]
    Key { why: String },
    /// The random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Reading or writing failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: Arc<std::io::Error>,
    },
}

impl Error {
    pub(crate) fn malformed(field: &'static str, why: impl Into<String>) -> Self {
        Self::Malformed {
            field,
            why: why.into(),
        }
    }

    pub(crate) fn invalid(field: &'static str, why: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            why: why.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    /// This error as an `io::Error` (for `Read`/`Write` impls); [`Error::from_io`] gets it back.
    pub fn into_io(self) -> std::io::Error {
        let kind = match &self {
            Self::Io { source, .. } => source.kind(),
            Self::Truncated { .. } => std::io::ErrorKind::UnexpectedEof,
            _ => std::io::ErrorKind::InvalidData,
        };
        std::io::Error::new(kind, self)
    }

    /// The [`Error`] inside an `io::Error` made by [`Error::into_io`], if it is one.
    pub fn from_io(e: &std::io::Error) -> Option<&Error> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<Error>())
    }
}
