//! The sealed boot image format: chunked AEAD, signed manifest, streaming seal and open.
