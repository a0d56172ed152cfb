//! The manifest: what a sealed image holds (sections, command line), how it is cut (chunk size
//! and count), how it is sealed (AEAD, key epoch, key check value) and the AEAD tag of every
//! chunk. Its JSON body ("wire" form) is parsed and then validated as a whole. Pure.

use std::ops::Range;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::TAG_LEN;
use crate::crypto::KEY_CHECK_LEN;
use crate::error::{Error, Result};
use crate::ids::{Aead, ImageId, KeyEpoch};

/// Default chunk size: 1 MiB (one AEAD call and two writes per MiB).
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
/// Smallest chunk size accepted.
pub const MIN_CHUNK_SIZE: u32 = 64;
/// Largest chunk size accepted: bounds the reader's buffer.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;
/// Most chunks in one image: bounds the tag list (4 MiB) and the manifest. 256 GiB at 1 MiB
/// chunks.
pub const MAX_CHUNKS: u64 = 1 << 18;
/// Most sections in one image.
pub const MAX_SECTIONS: usize = 16;
/// Longest kernel command line (bytes; printable ASCII only).
pub const MAX_CMDLINE_LEN: usize = 4096;
const MAX_SECTION_NAME: usize = 32;

/// One named part of the plaintext: `kernel`, `initramfs`, `extra`, or another name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub name: String,
    /// Byte offset in the plaintext.
    pub offset: u64,
    pub len: u64,
}

impl Section {
    pub fn range(&self) -> Range<u64> {
        self.offset..self.offset.saturating_add(self.len)
    }
}

/// A sealed image's manifest. [`crate::SignedManifest::verify`] gives one only after its
/// signature verified and [`Manifest::validate`] passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub image_id: ImageId,
    pub key_epoch: KeyEpoch,
    pub aead: Aead,
    /// Plaintext bytes per chunk (every chunk but the last holds exactly this many).
    pub chunk_size: u32,
    pub chunk_count: u64,
    pub plaintext_len: u64,
    /// Back to back from offset 0, covering the whole plaintext.
    pub sections: Vec<Section>,
    /// The kernel command line: signed, but NOT encrypted (no secrets here).
    pub cmdline: String,
    /// Sealing time, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// HKDF output from the image key for this image id, epoch and AEAD: commits the manifest
    /// to one key (a wrong key is refused before any chunk).
    pub key_check: [u8; KEY_CHECK_LEN],
    /// The AEAD tag of every chunk, in order: the signature covers them, so each chunk is
    /// checked on its own (resume at any chunk) and the list is the image's fingerprint.
    pub chunk_tags: Vec<[u8; TAG_LEN]>,
}

/// `max(1, ceil(plaintext_len / chunk_size))`: an empty image still has one (empty, final)
/// chunk. `None` if `chunk_size` is 0.
pub fn expected_chunk_count(plaintext_len: u64, chunk_size: u32) -> Option<u64> {
    let cs = u64::from(chunk_size);
    if cs == 0 {
        return None;
    }
    Some(plaintext_len.div_ceil(cs).max(1))
}

impl Manifest {
    /// Bytes of chunk `i` in the `.chunks` file: `chunk_size + TAG_LEN`.
    pub fn stride(&self) -> u64 {
        u64::from(self.chunk_size) + TAG_LEN as u64
    }

    /// Plaintext bytes in chunk `index`.
    pub fn chunk_plaintext_len(&self, index: u64) -> Result<u64> {
        if index >= self.chunk_count {
            return Err(Error::ChunkOutOfRange {
                index,
                count: self.chunk_count,
            });
        }
        let before = index.saturating_mul(u64::from(self.chunk_size));
        Ok(self
            .plaintext_len
            .saturating_sub(before)
            .min(u64::from(self.chunk_size)))
    }

    /// Byte range of chunk `index` (ciphertext and tag) in the `.chunks` file: what an HTTP
    /// Range request asks for.
    pub fn chunk_range(&self, index: u64) -> Result<Range<u64>> {
        let len = self.chunk_plaintext_len(index)? + TAG_LEN as u64;
        let start = index.saturating_mul(self.stride());
        Ok(start..start.saturating_add(len))
    }

    /// Plaintext offset where chunk `index` starts.
    pub fn chunk_plaintext_offset(&self, index: u64) -> u64 {
        index
            .saturating_mul(u64::from(self.chunk_size))
            .min(self.plaintext_len)
    }

    /// Size of the whole `.chunks` file.
    pub fn chunks_file_len(&self) -> u64 {
        self.plaintext_len
            .saturating_add(self.chunk_count.saturating_mul(TAG_LEN as u64))
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Refuses a manifest for another image or key epoch than the caller expects (the agent
    /// knows both from its lease's image locator and the key service's answer).
    pub fn expect(&self, image_id: ImageId, key_epoch: KeyEpoch) -> Result<()> {
        if self.image_id != image_id {
            return Err(Error::WrongImageId {
                expected: image_id,
                found: self.image_id,
            });
        }
        if self.key_epoch != key_epoch {
            return Err(Error::WrongKeyEpoch {
                expected: key_epoch,
                found: self.key_epoch,
            });
        }
        Ok(())
    }

    /// Every rule of the format: chunk size bounds, chunk count from the plaintext length,
    /// one tag per chunk, sections back to back covering the plaintext, command line limits.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            return Err(Error::malformed(
                "chunk_size",
                format!(
                    "{} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}",
                    self.chunk_size
                ),
            ));
        }
        if self.chunk_count == 0 || self.chunk_count > MAX_CHUNKS {
            return Err(Error::malformed(
                "chunk_count",
                format!("{} is outside 1..={MAX_CHUNKS}", self.chunk_count),
            ));
        }
        let want = expected_chunk_count(self.plaintext_len, self.chunk_size);
        if want != Some(self.chunk_count) {
            return Err(Error::malformed(
                "chunk_count",
                format!(
                    "{} chunks do not fit plaintext_len {} at chunk_size {}",
                    self.chunk_count, self.plaintext_len, self.chunk_size
                ),
            ));
        }
        if self.chunk_tags.len() as u64 != self.chunk_count {
            return Err(Error::malformed(
                "chunk_tags",
                format!(
                    "{} tags for {} chunks",
                    self.chunk_tags.len(),
                    self.chunk_count
                ),
            ));
        }
        validate_sections(&self.sections, self.plaintext_len)?;
        validate_cmdline(&self.cmdline).map_err(|why| Error::malformed("cmdline", why))
    }

    pub(crate) fn to_json(&self) -> Vec<u8> {
        let tags: Vec<u8> = self.chunk_tags.iter().flatten().copied().collect();
        let wire = Wire {
            image_id: self.image_id,
            key_epoch: self.key_epoch,
            aead: self.aead,
            chunk_size: self.chunk_size,
            chunk_count: self.chunk_count,
            plaintext_len: self.plaintext_len,
            sections: self.sections.clone(),
            cmdline: self.cmdline.clone(),
            created_ms: self.created_ms,
            key_check: hex::encode(self.key_check),
            chunk_tags: B64.encode(tags),
        };
        // A struct of strings and numbers always serializes.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Parses and validates a JSON body. Sizes are checked before the tag list is decoded.
    pub(crate) fn from_json(body: &[u8]) -> Result<Self> {
        let w: Wire = serde_json::from_slice(body)
            .map_err(|e| Error::malformed("body", format!("not a manifest JSON object: {e}")))?;
        if w.chunk_count == 0 || w.chunk_count > MAX_CHUNKS {
            return Err(Error::malformed(
                "chunk_count",
                format!("{} is outside 1..={MAX_CHUNKS}", w.chunk_count),
            ));
        }
        let tag_bytes = w.chunk_count * TAG_LEN as u64;
        if w.chunk_tags.len() as u64 != tag_bytes.div_ceil(3) * 4 {
            return Err(Error::malformed(
                "chunk_tags",
                format!(
                    "{} base64 characters, expected {} for {} chunks",
                    w.chunk_tags.len(),
                    tag_bytes.div_ceil(3) * 4,
                    w.chunk_count
                ),
            ));
        }
        let raw = B64
            .decode(w.chunk_tags.as_bytes())
            .map_err(|e| Error::malformed("chunk_tags", format!("not base64: {e}")))?;
        let chunk_tags = raw
            .chunks_exact(TAG_LEN)
            .map(|c| {
                let mut t = [0u8; TAG_LEN];
                t.copy_from_slice(c);
                t
            })
            .collect();
        let mut key_check = [0u8; KEY_CHECK_LEN];
        hex::decode_to_slice(&w.key_check, &mut key_check).map_err(|_| {
            Error::malformed("key_check", format!("not {} hex digits", KEY_CHECK_LEN * 2))
        })?;
        let m = Manifest {
            image_id: w.image_id,
            key_epoch: w.key_epoch,
            aead: w.aead,
            chunk_size: w.chunk_size,
            chunk_count: w.chunk_count,
            plaintext_len: w.plaintext_len,
            sections: w.sections,
            cmdline: w.cmdline,
            created_ms: w.created_ms,
            key_check,
            chunk_tags,
        };
        m.validate()?;
        Ok(m)
    }
}

/// The JSON body as written (field order is the struct's).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    image_id: ImageId,
    key_epoch: KeyEpoch,
    aead: Aead,
    chunk_size: u32,
    chunk_count: u64,
    plaintext_len: u64,
    sections: Vec<Section>,
    cmdline: String,
    created_ms: u64,
    key_check: String,
    chunk_tags: String,
}

/// A section name: 1-32 of `[a-z0-9_.-]`, starting with a letter or digit.
pub(crate) fn validate_section_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SECTION_NAME
        && name.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-')
        })
        && name
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not 1-{MAX_SECTION_NAME} of [a-z0-9_.-] starting with a letter or digit",
            name.chars().take(40).collect::<String>()
        ))
    }
}

/// At most 4096 bytes of printable ASCII (space to `~`).
pub(crate) fn validate_cmdline(cmdline: &str) -> std::result::Result<(), String> {
    if cmdline.len() > MAX_CMDLINE_LEN {
        return Err(format!(
            "{} bytes, at most {MAX_CMDLINE_LEN}",
            cmdline.len()
        ));
    }
    if let Some(pos) = cmdline.bytes().position(|c| !(b' '..=b'~').contains(&c)) {
        return Err(format!(
            "byte {pos} is not printable ASCII (control characters and non-ASCII are refused)"
        ));
    }
    Ok(())
}

fn validate_sections(sections: &[Section], plaintext_len: u64) -> Result<()> {
    if sections.len() > MAX_SECTIONS {
        return Err(Error::malformed(
            "sections",
            format!("{} sections, at most {MAX_SECTIONS}", sections.len()),
        ));
    }
    let mut at = 0u64;
    for (i, s) in sections.iter().enumerate() {
        validate_section_name(&s.name).map_err(|why| Error::malformed("sections", why))?;
        if sections[..i].iter().any(|o| o.name == s.name) {
            return Err(Error::malformed(
                "sections",
                format!("section {:?} appears twice", s.name),
            ));
        }
        if s.offset != at {
            return Err(Error::malformed(
                "sections",
                format!(
                    "section {:?} starts at {}, expected {at} (sections are back to back)",
                    s.name, s.offset
                ),
            ));
        }
        at = at.checked_add(s.len).ok_or_else(|| {
            Error::malformed("sections", format!("section {:?} length overflows", s.name))
        })?;
    }
    if at != plaintext_len {
        return Err(Error::malformed(
            "sections",
            format!("sections cover {at} bytes, plaintext_len is {plaintext_len}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_geometry() {
        assert_eq!(expected_chunk_count(0, 64), Some(1));
        assert_eq!(expected_chunk_count(1, 64), Some(1));
        assert_eq!(expected_chunk_count(64, 64), Some(1));
        assert_eq!(expected_chunk_count(65, 64), Some(2));
        assert_eq!(expected_chunk_count(u64::MAX, 64), Some(u64::MAX / 64 + 1));
        assert_eq!(expected_chunk_count(5, 0), None);
    }

    #[test]
    fn names_and_cmdlines() {
        for ok in ["kernel", "initramfs", "extra", "a", "x-1.2_3"] {
            validate_section_name(ok).unwrap();
        }
        for bad in [
            "",
            "Kernel",
            "-x",
            ".x",
            "a/b",
            "a b",
            &"a".repeat(33),
            "ké",
        ] {
            assert!(validate_section_name(bad).is_err(), "{bad:?}");
        }
        validate_cmdline("console=ttyS0 quiet lm.x=\"a b\"").unwrap();
        assert!(validate_cmdline("a\nb").is_err());
        assert!(validate_cmdline("a\0b").is_err());
        assert!(validate_cmdline("é").is_err());
        assert!(validate_cmdline(&"a".repeat(4097)).is_err());
    }
}
