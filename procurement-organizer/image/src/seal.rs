//! The streaming sealer: plaintext in (through `Write` or [`Sealer::add_section`]), ciphertext
//! chunks out to any `Write`, one chunk buffer of memory, a signed manifest at the end. Pure
//! over its `Read`/`Write` arguments.

use std::io::{self, Read, Write};

use zeroize::Zeroizing;

use crate::crypto::{ChunkCipher, Context};
use crate::encoding::SignedManifest;
use crate::error::{Error, Result};
use crate::ids::{Aead, ImageId, KeyEpoch};
use crate::keys::{ImageKey, SigningKey};
use crate::manifest::{
    DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MAX_CHUNKS, MAX_SECTIONS, MIN_CHUNK_SIZE, Manifest,
    Section, validate_cmdline, validate_section_name,
};

/// What an image is sealed as. `image_id` + `key_epoch` must never be sealed twice with one
/// key: use a fresh [`ImageId`] per image, and a new key and epoch per re-seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealParams {
    pub image_id: ImageId,
    pub key_epoch: KeyEpoch,
    pub aead: Aead,
    pub chunk_size: u32,
    /// Sealing time, milliseconds since the Unix epoch (passed in: no clock in here).
    pub created_ms: u64,
}

impl SealParams {
    /// AES-256-GCM, 1 MiB chunks.
    pub fn new(image_id: ImageId, key_epoch: KeyEpoch, created_ms: u64) -> Self {
        Self {
            image_id,
            key_epoch,
            aead: Aead::default(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            created_ms,
        }
    }
}

/// Seals plaintext into ciphertext chunks as it arrives. Bytes written through `Write` go to
/// the section opened last by [`Sealer::start_section`]. A full chunk is sealed when the next
/// byte arrives (only [`Sealer::finish`] knows which chunk is final). After a write error the
/// sealer refuses everything: the output is incomplete and must be discarded.
pub struct Sealer<W: Write> {
    cipher: ChunkCipher,
    params: SealParams,
    cmdline: String,
    sections: Vec<Section>,
    section_open: bool,
    total: u64,
    next_index: u64,
    tags: Vec<[u8; crate::TAG_LEN]>,
    buf: Zeroizing<Vec<u8>>,
    filled: usize,
    out: W,
    failed: Option<Error>,
}

impl<W: Write> std::fmt::Debug for Sealer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("params", &self.params)
            .field("sections", &self.sections)
            .field("total", &self.total)
            .field("next_index", &self.next_index)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Sealer<W> {
    /// A sealer writing chunks to `out`. Refuses a chunk size outside
    /// [`MIN_CHUNK_SIZE`]..=[`MAX_CHUNK_SIZE`] and a command line that is not at most 4096
    /// bytes of printable ASCII.
    pub fn new(params: &SealParams, cmdline: &str, key: &ImageKey, out: W) -> Result<Self> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&params.chunk_size) {
            return Err(Error::invalid(
                "chunk_size",
                format!(
                    "{} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}",
                    params.chunk_size
                ),
            ));
        }
        validate_cmdline(cmdline).map_err(|why| Error::invalid("cmdline", why))?;
        let cipher = ChunkCipher::new(
            key,
            Context {
                image_id: params.image_id,
                key_epoch: params.key_epoch,
                aead: params.aead,
            },
        )?;
        Ok(Self {
            cipher,
            params: params.clone(),
            cmdline: cmdline.to_owned(),
            sections: Vec::new(),
            section_open: false,
            total: 0,
            next_index: 0,
            tags: Vec::new(),
            buf: Zeroizing::new(vec![0u8; params.chunk_size as usize]),
            filled: 0,
            out,
            failed: None,
        })
    }

    /// Opens a new section (closing the one before); `Write` bytes go to it.
    pub fn start_section(&mut self, name: &str) -> Result<()> {
        self.check()?;
        validate_section_name(name).map_err(|why| Error::invalid("section", why))?;
        if self.sections.iter().any(|s| s.name == name) {
            return Err(Error::invalid(
                "section",
                format!("{name:?} was already added"),
            ));
        }
        if self.sections.len() >= MAX_SECTIONS {
            return Err(Error::invalid(
                "section",
                format!("at most {MAX_SECTIONS} sections"),
            ));
        }
        self.sections.push(Section {
            name: name.to_owned(),
            offset: self.total,
            len: 0,
        });
        self.section_open = true;
        Ok(())
    }

    /// Adds a whole section read from `reader` (read straight into the chunk buffer, no extra
    /// copy). Returns its length.
    pub fn add_section(&mut self, name: &str, reader: &mut dyn Read) -> Result<u64> {
        self.start_section(name)?;
        let start = self.total;
        match self.copy_from(reader, name) {
            Ok(()) => Ok(self.total - start),
            // A section cut short by a read error must not end up in a signed image.
            Err(e) => Err(self.fail(e)),
        }
    }

    fn copy_from(&mut self, reader: &mut dyn Read, name: &str) -> Result<()> {
        let cs = self.buf.len();
        loop {
            if self.filled == cs {
                // Full: seal it (not final) only once another byte is known to follow.
                let mut one = [0u8; 1];
                if read_some(reader, &mut one, name)? == 0 {
                    break;
                }
                self.seal_buffered(false)?;
                self.buf[0] = one[0];
                self.filled = 1;
                self.took(1);
                continue;
            }
            let n = read_some(reader, &mut self.buf[self.filled..], name)?;
            if n == 0 {
                break;
            }
            self.filled += n;
            self.took(n as u64);
        }
        Ok(())
    }

    /// Plaintext bytes taken so far.
    pub fn plaintext_len(&self) -> u64 {
        self.total
    }

    /// The chunk buffer's capacity: the sealer's memory, fixed at the chunk size.
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Seals the last chunk (flagged final), flushes the output and signs the manifest.
    pub fn finish(mut self, signing_key: &SigningKey) -> Result<SignedManifest> {
        self.check()?;
        self.seal_buffered(true)?;
        if let Err(e) = self.out.flush() {
            return Err(self.fail(Error::io("flushing the sealed chunks", e)));
        }
        let manifest = Manifest {
            image_id: self.params.image_id,
            key_epoch: self.params.key_epoch,
            aead: self.params.aead,
            chunk_size: self.params.chunk_size,
            chunk_count: self.next_index,
            plaintext_len: self.total,
            sections: std::mem::take(&mut self.sections),
            cmdline: std::mem::take(&mut self.cmdline),
            created_ms: self.params.created_ms,
            key_check: *self.cipher.key_check(),
            chunk_tags: std::mem::take(&mut self.tags),
        };
        tracing::debug!(
            image = %manifest.image_id,
            epoch = %manifest.key_epoch,
            chunks = manifest.chunk_count,
            bytes = manifest.plaintext_len,
            "image sealed"
        );
        SignedManifest::sign(&manifest, signing_key)
    }

    fn check(&self) -> Result<()> {
        match &self.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: Error) -> Error {
        self.failed = Some(e.clone());
        e
    }

    fn took(&mut self, n: u64) {
        self.total += n;
        if let Some(s) = self.sections.last_mut() {
            s.len += n;
        }
    }

    /// Seals the buffered plaintext as chunk `next_index` and writes ciphertext + tag.
    fn seal_buffered(&mut self, is_final: bool) -> Result<()> {
        let index = self.next_index;
        if index >= MAX_CHUNKS {
            return Err(self.fail(Error::invalid(
                "image",
                format!(
                    "more than {MAX_CHUNKS} chunks: use a larger chunk size (at most {MAX_CHUNK_SIZE})"
                ),
            )));
        }
        let tag = match self
            .cipher
            .seal(index, is_final, &mut self.buf[..self.filled])
        {
            Ok(t) => t,
            Err(e) => return Err(self.fail(e)),
        };
        let written = self
            .out
            .write_all(&self.buf[..self.filled])
            .and_then(|()| self.out.write_all(&tag));
        if let Err(e) = written {
            return Err(self.fail(Error::io(format!("writing sealed chunk {index}"), e)));
        }
        self.tags.push(tag);
        self.next_index += 1;
        self.filled = 0;
        Ok(())
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        self.check().map_err(Error::into_io)?;
        if !self.section_open {
            return Err(Error::invalid("section", "start_section before writing").into_io());
        }
        let cs = self.buf.len();
        let mut rest = data;
        while !rest.is_empty() {
            if self.filled == cs {
                self.seal_buffered(false).map_err(Error::into_io)?;
            }
            let n = rest.len().min(cs - self.filled);
            self.buf[self.filled..self.filled + n].copy_from_slice(&rest[..n]);
            self.filled += n;
            self.took(n as u64);
            rest = &rest[n..];
        }
        Ok(data.len())
    }

    /// Plaintext stays buffered until its chunk is complete; this flushes the output only.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// One `read`, retried on `Interrupted`.
fn read_some(r: &mut dyn Read, buf: &mut [u8], section: &str) -> Result<usize> {
    loop {
        match r.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(format!("reading section {section:?}"), e)),
        }
    }
}
