//! Opening: [`Opener`] checks one chunk at a time against the signed tag list and the AEAD;
//! [`OpenReader`] streams a `.chunks` file (from its start or from any chunk) through it with
//! one chunk buffer and ends with an explicit [`OpenReader::finish`]. Pure over `Read`.

use std::io::{self, BufRead, Read};

use zeroize::{Zeroize as _, Zeroizing};

use crate::TAG_LEN;
use crate::crypto::{ChunkCipher, Context, ct_eq};
use crate::encoding::SignedManifest;
use crate::error::{Error, Result};
use crate::ids::{ImageId, KeyEpoch};
use crate::keys::{ImageKey, VerifyingKey};
use crate::manifest::Manifest;

/// The key and the per-chunk facts of one image (tags, sizes): everything needed to open any
/// chunk on its own.
#[derive(Debug)]
pub struct Opener {
    cipher: ChunkCipher,
    manifest: Manifest,
}

impl Opener {
    /// Trusts `manifest` as given: take it from [`SignedManifest::verify`] (or use
    /// [`Opener::from_signed`]). Validates it again and refuses a key that does not match its
    /// key check value ([`Error::WrongKey`]) before any chunk is read.
    pub fn new(manifest: &Manifest, key: &ImageKey) -> Result<Self> {
        manifest.validate()?;
        let cipher = ChunkCipher::new(
            key,
            Context {
                image_id: manifest.image_id,
                key_epoch: manifest.key_epoch,
                aead: manifest.aead,
            },
        )?;
        if !ct_eq(cipher.key_check(), &manifest.key_check) {
            return Err(Error::WrongKey);
        }
        Ok(Self {
            cipher,
            manifest: manifest.clone(),
        })
    }

    /// The whole check of a manifest file, in order: framing, signature with the tenant's key,
    /// body, expected image id and key epoch, key check. Returns the manifest and its opener.
    pub fn from_signed(
        manifest_file: &[u8],
        signer: &VerifyingKey,
        image_id: ImageId,
        key_epoch: KeyEpoch,
        key: &ImageKey,
    ) -> Result<(Manifest, Self)> {
        let manifest = SignedManifest::decode(manifest_file)?.verify(signer)?;
        manifest.expect(image_id, key_epoch)?;
        let opener = Self::new(&manifest, key)?;
        Ok((manifest, opener))
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Authenticates chunk `index` (ciphertext followed by its tag, as in the `.chunks` file)
    /// and returns its plaintext. Nothing is returned for a chunk that fails a check.
    pub fn open_chunk(&self, index: u64, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let mut buf = ciphertext.to_vec();
        let len = self.open_chunk_in_place(index, &mut buf)?.len();
        buf.truncate(len);
        Ok(buf)
    }

    /// Like [`Opener::open_chunk`], decrypting in `buf`; on failure `buf` holds no plaintext.
    /// Checks in order: index in range, length, tag equal to the signed manifest's tag for
    /// `index` (else: is it another chunk's tag?), AEAD with index and final flag.
    pub fn open_chunk_in_place<'a>(&self, index: u64, buf: &'a mut [u8]) -> Result<&'a [u8]> {
        let m = &self.manifest;
        let pt_len = m.chunk_plaintext_len(index)?;
        let expected = pt_len + TAG_LEN as u64;
        if buf.len() as u64 != expected {
            return Err(Error::ChunkLength {
                index,
                expected,
                got: buf.len() as u64,
            });
        }
        let (ct, tag) = buf.split_at_mut(pt_len as usize);
        let tag: &[u8; TAG_LEN] = (&*tag).try_into().map_err(|_| Error::ChunkLength {
            index,
            expected,
            got: expected,
        })?;
        let signed_tag = m
            .chunk_tags
            .get(index as usize)
            .ok_or(Error::ChunkOutOfRange {
                index,
                count: m.chunk_count,
            })?;
        if tag != signed_tag {
            return Err(match m.chunk_tags.iter().position(|t| t == tag) {
                Some(found) => Error::ReorderedOrWrongChunk {
                    index,
                    found: found as u64,
                },
                None => Error::TamperedChunk {
                    index,
                    why: "its tag is not the one the signed manifest lists (changed, or from another image)",
                },
            });
        }
        let is_final = index + 1 == m.chunk_count;
        let tag = *tag;
        if !self.cipher.open(index, is_final, &tag, ct) {
            return Err(Error::TamperedChunk {
                index,
                why: "it does not authenticate under the image key (ciphertext changed)",
            });
        }
        Ok(&buf[..pt_len as usize])
    }
}

/// What [`OpenReader::finish`] verified: chunks `first_chunk..chunk_count`, all of them
/// authenticated and matching the signed tag list, nothing after the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub first_chunk: u64,
    pub chunk_count: u64,
    /// Plaintext bytes handed out (the image's length minus the chunks before `first_chunk`).
    pub plaintext_bytes: u64,
    /// Bytes of the `.chunks` file read.
    pub ciphertext_bytes: u64,
}

/// Streams plaintext out of a `.chunks` stream. A chunk is read whole into the one buffer
/// (`chunk_size + 16` bytes), authenticated, and only then are its bytes handed out; the last
/// chunk is handed out only after the stream is seen to end right behind it. After any
/// failure every read repeats the error. Plaintext handed out is authentic; the image as a
/// whole is verified only when [`OpenReader::finish`] returns `Ok` (use nothing before).
pub struct OpenReader<R> {
    opener: Opener,
    inner: R,
    buf: Zeroizing<Vec<u8>>,
    pos: usize,
    end: usize,
    start_chunk: u64,
    next_chunk: u64,
    read_bytes: u64,
    delivered: u64,
    at_end: bool,
    failed: Option<Error>,
}

impl<R> std::fmt::Debug for OpenReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenReader")
            .field("image", &self.opener.manifest.image_id)
            .field("start_chunk", &self.start_chunk)
            .field("next_chunk", &self.next_chunk)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<R: Read> OpenReader<R> {
    /// Reads the `.chunks` stream from its first byte.
    pub fn new(opener: Opener, inner: R) -> Self {
        let buf = Zeroizing::new(vec![0u8; opener.manifest.stride() as usize]);
        Self {
            opener,
            inner,
            buf,
            pos: 0,
            end: 0,
            start_chunk: 0,
            next_chunk: 0,
            read_bytes: 0,
            delivered: 0,
            at_end: false,
            failed: None,
        }
    }

    /// Resumes at chunk `chunk`: `inner` must start at that chunk's first byte, i.e. at
    /// `Manifest::chunk_range(chunk).start` (an HTTP `Range: bytes=<start>-`). Chunks before it
    /// were verified by an earlier reader; the signed tag list lets this one check the rest
    /// on their own, and `finish` then covers `chunk..chunk_count`.
    pub fn resume_at(opener: Opener, inner: R, chunk: u64) -> Result<Self> {
        let count = opener.manifest.chunk_count;
        if chunk > count {
            return Err(Error::ChunkOutOfRange {
                index: chunk,
                count,
            });
        }
        let mut r = Self::new(opener, inner);
        r.start_chunk = chunk;
        r.next_chunk = chunk;
        Ok(r)
    }

    /// The chunk a download should resume at: the first whose plaintext was not yet handed
    /// out entirely.
    pub fn resume_point(&self) -> u64 {
        if self.pos < self.end {
            self.next_chunk - 1
        } else {
            self.next_chunk
        }
    }

    /// Takes the reader apart (after a failure, to resume with a new stream at
    /// [`OpenReader::resume_point`]). The buffer is zeroized.
    pub fn into_parts(self) -> (Opener, R) {
        (self.opener, self.inner)
    }

    /// The chunk buffer's capacity: the reader's memory besides the manifest, fixed at
    /// `chunk_size + 16`.
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The final verification: every chunk from the start point to the last was read and
    /// authenticated against the signed tag list, the stream ended right after the last one,
    /// and the plaintext handed out is exactly the manifest's length from the start point.
    pub fn finish(self) -> Result<Verified> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let m = &self.opener.manifest;
        let expected = m.plaintext_len - m.chunk_plaintext_offset(self.start_chunk);
        if !self.at_end || self.pos < self.end || self.delivered != expected {
            return Err(Error::Unfinished {
                next: self.resume_point(),
                count: m.chunk_count,
            });
        }
        Ok(Verified {
            first_chunk: self.start_chunk,
            chunk_count: m.chunk_count,
            plaintext_bytes: self.delivered,
            ciphertext_bytes: self.read_bytes,
        })
    }

    /// Makes plaintext available in `buf[pos..end]`, or reaches the verified end.
    fn load(&mut self) -> Result<()> {
        while self.pos >= self.end && !self.at_end {
            let count = self.opener.manifest.chunk_count;
            if self.next_chunk >= count {
                self.check_trailing()?;
                self.at_end = true;
                break;
            }
            let index = self.next_chunk;
            let len = self.opener.manifest.chunk_plaintext_len(index)? as usize + TAG_LEN;
            let got = read_full(&mut self.inner, &mut self.buf[..len], index)?;
            self.read_bytes += got as u64;
            if got < len {
                let m = &self.opener.manifest;
                let from = m.chunk_range(self.start_chunk).map(|r| r.start);
                return Err(Error::Truncated {
                    expected: m.chunks_file_len() - from.unwrap_or(0),
                    got: self.read_bytes,
                });
            }
            if index + 1 == count {
                self.check_trailing()?;
                self.at_end = true;
            }
            let n = self
                .opener
                .open_chunk_in_place(index, &mut self.buf[..len])?
                .len();
            self.pos = 0;
            self.end = n;
            self.next_chunk += 1;
        }
        Ok(())
    }

    fn check_trailing(&mut self) -> Result<()> {
        let mut probe = [0u8; 1];
        if read_full(&mut self.inner, &mut probe, self.next_chunk)? > 0 {
            return Err(Error::TrailingData {
                chunk_count: self.opener.manifest.chunk_count,
            });
        }
        Ok(())
    }

    fn loaded(&mut self) -> io::Result<&[u8]> {
        if let Some(e) = &self.failed {
            return Err(e.clone().into_io());
        }
        if let Err(e) = self.load() {
            self.buf.zeroize();
            self.pos = 0;
            self.end = 0;
            self.failed = Some(e.clone());
            return Err(e.into_io());
        }
        Ok(&self.buf[self.pos..self.end])
    }
}

impl<R: Read> Read for OpenReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let avail = self.loaded()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for OpenReader<R> {
    /// The rest of the current authenticated chunk, without a copy.
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.loaded()
    }

    fn consume(&mut self, amt: usize) {
        let n = amt.min(self.end - self.pos);
        self.pos += n;
        self.delivered += n as u64;
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8], chunk: u64) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(format!("reading chunk {chunk}"), e)),
        }
    }
    Ok(got)
}
