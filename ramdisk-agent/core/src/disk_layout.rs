//! The agent's layout of the server's local disk (a raw block device: the initramfs carries no
//! file system tools, and the disk belongs to the lease appliance while the server is lent).
//!
//! Pure: offsets and the two headers, encoded and parsed. The shell
//! (`ramdisk-agent/src/local_disk.rs`) reads and writes them with positioned IO.
//!
//! ```text
//!  0        "LSDISK01" | u32 key table length | [32] SHA-256 of the table      (4 KiB block)
//!  4 KiB    the start-up key table (startup_table), at most TABLE_MAX bytes
//!  68 KiB   host root blob: "LSROOT01" | u32 length | [32] SHA-256 | the TPM-sealed host
//!           root (agent-tpm's SealedBlob; absent in the weak mode)
//!  1 MiB    slot header: "LSSLOT01" | u8 lease length | lease id | [16] image id | u32 epoch
//!           | u32 manifest length | u64 chunks length | [12] nonce | [48] image key wrapped
//!           under the start-up key | [32] SHA-256 of the header so far        (4 KiB block)
//!  1 MiB + 4 KiB   the signed manifest (as received)
//!  SLOT_DATA + round_up(manifest length, 4 KiB)   the sealed chunks (as received: ciphertext)
//! ```
//!
//! The image stays ciphertext under its image key on the disk; the image key only as wrapped
//! under the lease's start-up key; the start-up key only as wrapped under the host root in the
//! table. Removing the table entry (crypto-shred) leaves nothing that opens the image.

use thiserror::Error;

use crate::startup_table::{NONCE_LEN, WRAPPED_LEN, check_lease_id};

pub const DISK_MAGIC: &[u8; 8] = b"LSDISK01";
pub const SLOT_MAGIC: &[u8; 8] = b"LSSLOT01";
pub const BLOCK: u64 = 4096;
/// Where the key table starts.
pub const TABLE_OFFSET: u64 = BLOCK;
/// Largest key table.
pub const TABLE_MAX: u64 = 64 * 1024;
/// Where the TPM-sealed host root is kept.
pub const ROOT_OFFSET: u64 = TABLE_OFFSET + TABLE_MAX;
/// Largest host root record.
pub const ROOT_MAX: u64 = 64 * 1024;
pub const ROOT_MAGIC: &[u8; 8] = b"LSROOT01";
/// Where the slot header starts.
pub const SLOT_OFFSET: u64 = 1024 * 1024;
/// Where the manifest starts.
pub const SLOT_DATA: u64 = SLOT_OFFSET + BLOCK;
/// Largest manifest accepted.
pub const MANIFEST_MAX: u32 = 16 * 1024 * 1024;

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LayoutError {
    #[error("the disk has no appliance header (never written by the agent, or wiped)")]
    NoDiskHeader,
    #[error("the slot has no header (no image stored, or shredded)")]
    NoSlot,
    #[error("the {what} is damaged: {why}")]
    Damaged { what: &'static str, why: String },
    #[error("the disk is {have} bytes; the image needs {need}")]
    TooSmall { have: u64, need: u64 },
}

/// The disk header: where the key table is and its checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskHeader {
    pub table_len: u32,
    pub table_sha256: [u8; 32],
}

impl DiskHeader {
    pub fn encode(&self) -> [u8; 44] {
        let mut b = [0u8; 44];
        b[..8].copy_from_slice(DISK_MAGIC);
        b[8..12].copy_from_slice(&self.table_len.to_be_bytes());
        b[12..44].copy_from_slice(&self.table_sha256);
        b
    }

    /// Parses the first bytes of the disk (at least 44).
    pub fn decode(b: &[u8]) -> Result<Self, LayoutError> {
        if b.len() < 44 || &b[..8] != DISK_MAGIC {
            return Err(LayoutError::NoDiskHeader);
        }
        let table_len = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
        if u64::from(table_len) > TABLE_MAX {
            return Err(LayoutError::Damaged {
                what: "disk header",
                why: format!("key table length {table_len} over {TABLE_MAX}"),
            });
        }
        let mut table_sha256 = [0u8; 32];
        table_sha256.copy_from_slice(&b[12..44]);
        Ok(Self {
            table_len,
            table_sha256,
        })
    }
}

/// The host root record for `blob`.
pub fn encode_root(blob: &[u8], sha256: &dyn Fn(&[u8]) -> [u8; 32]) -> Vec<u8> {
    let mut v = Vec::with_capacity(44 + blob.len());
    v.extend_from_slice(ROOT_MAGIC);
    v.extend_from_slice(&(blob.len() as u32).to_be_bytes());
    v.extend_from_slice(&sha256(blob));
    v.extend_from_slice(blob);
    v
}

/// The blob in a host root record (the region's bytes from [`ROOT_OFFSET`]); `None` if the
/// disk has none.
pub fn decode_root<'a>(
    b: &'a [u8],
    sha256: &dyn Fn(&[u8]) -> [u8; 32],
) -> Result<Option<&'a [u8]>, LayoutError> {
    if b.len() < 8 || &b[..8] != ROOT_MAGIC {
        return Ok(None);
    }
    let damaged = |why: String| LayoutError::Damaged {
        what: "host root record",
        why,
    };
    if b.len() < 44 {
        return Err(damaged("truncated".into()));
    }
    let len = u32::from_be_bytes([b[8], b[9], b[10], b[11]]) as usize;
    if len as u64 > ROOT_MAX - 44 || b.len() < 44 + len {
        return Err(damaged(format!("blob length {len}")));
    }
    let blob = &b[44..44 + len];
    if sha256(blob) != b[12..44] {
        return Err(damaged("checksum mismatch".into()));
    }
    Ok(Some(blob))
}

/// The slot header: what the slot holds and the image key, wrapped under the start-up key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotHeader {
    pub lease: String,
    pub image: [u8; 16],
    pub epoch: u32,
    pub manifest_len: u32,
    pub chunks_len: u64,
    pub nonce: [u8; NONCE_LEN],
    pub wrapped_image_key: [u8; WRAPPED_LEN],
}

impl SlotHeader {
    /// Bytes before the checksum; also the associated data of the image key's wrap (without
    /// the nonce and the wrapped key).
    fn body(&self, with_key: bool) -> Vec<u8> {
        let mut v = Vec::with_capacity(200);
        v.extend_from_slice(SLOT_MAGIC);
        v.push(self.lease.len() as u8);
        v.extend_from_slice(self.lease.as_bytes());
        v.extend_from_slice(&self.image);
        v.extend_from_slice(&self.epoch.to_be_bytes());
        v.extend_from_slice(&self.manifest_len.to_be_bytes());
        v.extend_from_slice(&self.chunks_len.to_be_bytes());
        if with_key {
            v.extend_from_slice(&self.nonce);
            v.extend_from_slice(&self.wrapped_image_key);
        }
        v
    }

    /// The associated data the image key's wrap is bound to.
    pub fn aad(&self) -> Vec<u8> {
        let mut v = b"lease-image-key v1".to_vec();
        v.extend_from_slice(&self.body(false));
        v
    }

    /// Where the chunks start.
    pub fn chunks_offset(&self) -> u64 {
        SLOT_DATA + u64::from(self.manifest_len).div_ceil(BLOCK) * BLOCK
    }

    /// The disk size the slot needs.
    pub fn end(&self) -> u64 {
        self.chunks_offset() + self.chunks_len
    }

    /// The header with its checksum; `sha256` hashes (the caller's hash function: this crate
    /// has no cryptography).
    pub fn encode(&self, sha256: &dyn Fn(&[u8]) -> [u8; 32]) -> Vec<u8> {
        let mut v = self.body(true);
        let sum = sha256(&v);
        v.extend_from_slice(&sum);
        v
    }

    /// Parses the header block; refuses a missing magic, a bad checksum, a bad lease id or
    /// lengths out of range.
    pub fn decode(b: &[u8], sha256: &dyn Fn(&[u8]) -> [u8; 32]) -> Result<Self, LayoutError> {
        if b.len() < 8 || &b[..8] != SLOT_MAGIC {
            return Err(LayoutError::NoSlot);
        }
        let damaged = |why: String| LayoutError::Damaged {
            what: "slot header",
            why,
        };
        let lease_len = *b.get(8).ok_or_else(|| damaged("truncated".into()))? as usize;
        let fixed = 16 + 4 + 4 + 8 + NONCE_LEN + WRAPPED_LEN;
        let body_len = 9 + lease_len + fixed;
        if b.len() < body_len + 32 {
            return Err(damaged("truncated".into()));
        }
        let (body, rest) = b.split_at(body_len);
        if sha256(body) != rest[..32] {
            return Err(damaged("checksum mismatch".into()));
        }
        let lease = std::str::from_utf8(&body[9..9 + lease_len])
            .map_err(|_| damaged("lease id not ASCII".into()))?
            .to_owned();
        check_lease_id(&lease).map_err(|e| damaged(e.to_string()))?;
        let mut at = 9 + lease_len;
        let mut take = |n: usize| {
            let s = &body[at..at + n];
            at += n;
            s
        };
        let mut image = [0u8; 16];
        image.copy_from_slice(take(16));
        let epoch = u32::from_be_bytes(take(4).try_into().unwrap_or_default());
        let manifest_len = u32::from_be_bytes(take(4).try_into().unwrap_or_default());
        let chunks_len = u64::from_be_bytes(take(8).try_into().unwrap_or_default());
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(take(NONCE_LEN));
        let mut wrapped_image_key = [0u8; WRAPPED_LEN];
        wrapped_image_key.copy_from_slice(take(WRAPPED_LEN));
        if manifest_len == 0 || manifest_len > MANIFEST_MAX {
            return Err(damaged(format!("manifest length {manifest_len}")));
        }
        if chunks_len > u64::MAX / 2 {
            return Err(damaged(format!("chunks length {chunks_len}")));
        }
        Ok(Self {
            lease,
            image,
            epoch,
            manifest_len,
            chunks_len,
            nonce,
            wrapped_image_key,
        })
    }
}

#[cfg(test)]
#[path = "disk_layout_tests.rs"]
mod tests;
