//! The server's local disk as the agent lays it out (`agent_core::disk_layout`): the start-up
//! key table and the one image slot, by positioned IO on the raw block device (a plain file in
//! tests). IO.
//!
//! Write order keeps a crash harmless: a slot is written (data, then header) and synced before
//! its key table entry exists; a shred removes the table entry (synced) before it zeroes the
//! slot header. A table whose checksum does not match is refused, never repaired silently.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use agent_core::disk_layout::{
    self, BLOCK, DiskHeader, LayoutError, ROOT_MAX, ROOT_OFFSET, SLOT_DATA, SLOT_OFFSET,
    SlotHeader, TABLE_MAX, TABLE_OFFSET,
};
use agent_core::startup_table::KeyTable;
use anyhow::{Context, anyhow, bail};

/// Block devices the agent takes as the local disk, in order, when the command line names none.
pub const CANDIDATES: [&str; 4] = ["/dev/vda", "/dev/nvme0n1", "/dev/sda", "/dev/xvda"];

pub fn sha256(b: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, b);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The first candidate disk that exists.
pub fn find() -> Option<PathBuf> {
    CANDIDATES.iter().map(PathBuf::from).find(|p| p.exists())
}

/// An opened local disk.
#[derive(Debug)]
pub struct LocalDisk {
    file: File,
    path: PathBuf,
    len: u64,
}

impl LocalDisk {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open the local disk {}", path.display()))?;
        let len = file
            .seek(SeekFrom::End(0))
            .with_context(|| format!("cannot size the local disk {}", path.display()))?;
        if len < SLOT_DATA + BLOCK {
            bail!(
                "the local disk {} has {len} bytes: too small for the key table and a slot",
                path.display()
            );
        }
        Ok(Self {
            file,
            path: path.to_owned(),
            len,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read_at(&self, offset: u64, len: usize, what: &str) -> anyhow::Result<Vec<u8>> {
        let mut b = vec![0u8; len];
        self.file
            .read_exact_at(&mut b, offset)
            .with_context(|| format!("cannot read the {what} on {}", self.path.display()))?;
        Ok(b)
    }

    fn write_at(&self, offset: u64, b: &[u8], what: &str) -> anyhow::Result<()> {
        self.file
            .write_all_at(b, offset)
            .with_context(|| format!("cannot write the {what} on {}", self.path.display()))
    }

    fn sync(&self) -> anyhow::Result<()> {
        self.file
            .sync_all()
            .with_context(|| format!("cannot flush the local disk {}", self.path.display()))
    }

    /// The key table; a disk the agent never wrote has an empty one.
    pub fn read_table(&self) -> anyhow::Result<KeyTable> {
        let head = self.read_at(0, 44, "disk header")?;
        let h = match DiskHeader::decode(&head) {
            Ok(h) => h,
            Err(LayoutError::NoDiskHeader) => return Ok(KeyTable::default()),
            Err(e) => return Err(anyhow!(e)),
        };
        let table = self.read_at(TABLE_OFFSET, h.table_len as usize, "key table")?;
        if sha256(&table) != h.table_sha256 {
            bail!(
                "the key table on {} does not match its checksum (damaged)",
                self.path.display()
            );
        }
        KeyTable::decode(&table)
            .map_err(|e| anyhow!("the key table on {}: {e}", self.path.display()))
    }

    /// Writes the table, then the header naming it, and syncs. The old table's bytes past the
    /// new end are zeroed, so a removed entry leaves no copy behind.
    pub fn write_table(&self, table: &KeyTable) -> anyhow::Result<()> {
        let bytes = table.encode();
        if bytes.len() as u64 > TABLE_MAX {
            bail!("the key table grew past {TABLE_MAX} bytes");
        }
        let mut region = vec![0u8; TABLE_MAX as usize];
        region[..bytes.len()].copy_from_slice(&bytes);
        self.write_at(TABLE_OFFSET, &region, "key table")?;
        let header = DiskHeader {
            table_len: bytes.len() as u32,
            table_sha256: sha256(&bytes),
        };
        let mut block = vec![0u8; BLOCK as usize];
        block[..44].copy_from_slice(&header.encode());
        self.write_at(0, &block, "disk header")?;
        self.sync()
    }

    /// Stores an image in the slot: the manifest, the chunks from `chunks` (exactly
    /// `header.chunks_len` bytes), then the header; synced. `progress(done, total)` per MiB.
    pub fn write_slot(
        &self,
        header: &SlotHeader,
        manifest: &[u8],
        chunks: &mut dyn Read,
        progress: &mut dyn FnMut(u64, u64),
    ) -> anyhow::Result<()> {
        if header.end() > self.len {
            bail!(LayoutError::TooSmall {
                have: self.len,
                need: header.end()
            });
        }
        if manifest.len() != header.manifest_len as usize {
            bail!(
                "the manifest is {} bytes, the slot header says {}",
                manifest.len(),
                header.manifest_len
            );
        }
        // A half-written slot must not look like a slot: its header goes first to zero.
        self.write_at(SLOT_OFFSET, &vec![0u8; BLOCK as usize], "slot header")?;
        self.write_at(SLOT_DATA, manifest, "manifest")?;
        let mut at = header.chunks_offset();
        let end = at + header.chunks_len;
        let mut buf = vec![0u8; 1 << 20];
        while at < end {
            let want = (end - at).min(buf.len() as u64) as usize;
            let n = chunks
                .read(&mut buf[..want])
                .context("cannot read the image to store")?;
            if n == 0 {
                bail!("the image ended {} bytes early while storing it", end - at);
            }
            self.write_at(at, &buf[..n], "image chunks")?;
            at += n as u64;
            progress(at - header.chunks_offset(), header.chunks_len);
        }
        self.sync()?;
        self.write_at(SLOT_OFFSET, &header.encode(&sha256), "slot header")?;
        self.sync()
    }

    pub fn read_slot_header(&self) -> Result<SlotHeader, LayoutError> {
        let b = self
            .read_at(SLOT_OFFSET, BLOCK as usize, "slot header")
            .map_err(|e| LayoutError::Damaged {
                what: "slot header",
                why: format!("{e:#}"),
            })?;
        SlotHeader::decode(&b, &sha256)
    }

    pub fn read_manifest(&self, h: &SlotHeader) -> anyhow::Result<Vec<u8>> {
        self.read_at(SLOT_DATA, h.manifest_len as usize, "manifest")
    }

    /// The stored chunks as a stream.
    pub fn chunks(&self, h: &SlotHeader) -> anyhow::Result<impl Read + '_> {
        if h.end() > self.len {
            bail!(LayoutError::TooSmall {
                have: self.len,
                need: h.end()
            });
        }
        Ok(At {
            disk: self,
            at: h.chunks_offset(),
            end: h.end(),
        })
    }

    /// The TPM-sealed host root blob, if the disk has one.
    pub fn read_root(&self) -> anyhow::Result<Option<Vec<u8>>> {
        let region = self.read_at(ROOT_OFFSET, ROOT_MAX as usize, "host root record")?;
        disk_layout::decode_root(&region, &sha256)
            .map(|b| b.map(<[u8]>::to_vec))
            .map_err(|e| anyhow!("{e} on {}", self.path.display()))
    }

    /// Writes the host root blob (replacing the old one); synced.
    pub fn write_root(&self, blob: &[u8]) -> anyhow::Result<()> {
        let rec = disk_layout::encode_root(blob, &sha256);
        if rec.len() as u64 > ROOT_MAX {
            bail!(
                "the sealed host root is {} bytes, over {ROOT_MAX}",
                blob.len()
            );
        }
        let mut region = vec![0u8; ROOT_MAX as usize];
        region[..rec.len()].copy_from_slice(&rec);
        self.write_at(ROOT_OFFSET, &region, "host root record")?;
        self.sync()
    }

    /// Zeroes the slot header (the wrapped image key with it); synced.
    pub fn clear_slot(&self) -> anyhow::Result<()> {
        self.write_at(SLOT_OFFSET, &vec![0u8; BLOCK as usize], "slot header")?;
        self.sync()
    }

    /// Flips one byte at `offset`.
    #[cfg(test)]
    pub fn flip_byte(&self, offset: u64) -> anyhow::Result<()> {
        let mut b = self.read_at(offset, 1, "byte")?;
        b[0] ^= 0x01;
        self.write_at(offset, &b, "byte")?;
        self.sync()
    }
}

struct At<'a> {
    disk: &'a LocalDisk,
    at: u64,
    end: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end - self.at).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.disk.file.read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}
