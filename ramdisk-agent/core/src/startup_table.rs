//! The encrypted start-up key table on the server's local disk: lease id -> wrapped start-up
//! key and the image slot it opens.
//!
//! Pure: bytes in, [`KeyTable`] out, and back. The cryptography (wrapping under the host root,
//! see `ramdisk-agent/src/startup_key.rs`) is not here; this module only frames the entries and
//! says which bytes an entry's wrap authenticates ([`TableEntry::aad`]): every field of the
//! entry, so an edited lease end, image id, epoch, root mode or signing key makes the start-up
//! key fail to unwrap.
//!
//! ```text
//!  "LSKTAB1\n"  u32 entry count (<= MAX_ENTRIES)          all integers big-endian
//!  entry:  u8 lease length (1..=64) | lease id (ASCII)
//!          [16] image id | u32 key epoch | u64 lease end (ms since the epoch)
//!          u8 host root (1 tpm, 2 weak) | [32] tenant image-signing key (Ed25519)
//!          [12] nonce | [48] start-up key wrapped under the host root (32 + 16-byte tag)
//!  nothing after the last entry
//! ```

use thiserror::Error;

/// The file's first bytes.
pub const MAGIC: &[u8; 8] = b"LSKTAB1\n";
/// Most entries a table holds (one per lease this host ever held at once; in practice one).
pub const MAX_ENTRIES: usize = 16;
/// Longest lease id.
pub const MAX_LEASE_LEN: usize = 64;
/// Bytes of a wrapped 32-byte key: ciphertext and AEAD tag.
pub const WRAPPED_LEN: usize = 48;
/// Bytes of an AEAD nonce.
pub const NONCE_LEN: usize = 12;

/// Where the host's root key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootMode {
    /// A random key sealed to the host's TPM 2.0.
    Tpm,
    /// Derived from the host's identity (SMBIOS, MACs, disk serials): the weak mode, reported
    /// as such; a tenant may refuse it.
    Weak,
}

impl RootMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tpm => "tpm",
            Self::Weak => "weak",
        }
    }

    fn byte(self) -> u8 {
        match self {
            Self::Tpm => 1,
            Self::Weak => 2,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Tpm),
            2 => Some(Self::Weak),
            _ => None,
        }
    }
}

/// One lease's start-up key, wrapped, and what it opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    /// The lease id (`l-...`); also names the image slot folder.
    pub lease: String,
    pub image: [u8; 16],
    pub epoch: u32,
    /// The lease's end (the agent certificate's not-after), ms since the Unix epoch.
    pub not_after_ms: u64,
    pub root: RootMode,
    /// The tenant's image-signing key: the stored manifest must verify under it.
    pub signing_key: [u8; 32],
    pub nonce: [u8; NONCE_LEN],
    pub wrapped: [u8; WRAPPED_LEN],
}

impl TableEntry {
    /// The associated data of the start-up key's wrap: every field but the nonce and the
    /// wrapped bytes, framed as in the file.
    pub fn aad(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16 + self.lease.len() + 16 + 4 + 8 + 1 + 32);
        v.extend_from_slice(b"lease-startup-key v1");
        v.push(self.lease.len() as u8);
        v.extend_from_slice(self.lease.as_bytes());
        v.extend_from_slice(&self.image);
        v.extend_from_slice(&self.epoch.to_be_bytes());
        v.extend_from_slice(&self.not_after_ms.to_be_bytes());
        v.push(self.root.byte());
        v.extend_from_slice(&self.signing_key);
        v
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.lease.len() as u8);
        out.extend_from_slice(self.lease.as_bytes());
        out.extend_from_slice(&self.image);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.not_after_ms.to_be_bytes());
        out.push(self.root.byte());
        out.extend_from_slice(&self.signing_key);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.wrapped);
    }
}

/// Why a table file or an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TableError {
    #[error("the key table does not start with {MAGIC:?} (not a key table, or another version)")]
    Magic,
    #[error("the key table ends inside {what} (truncated file)")]
    Truncated { what: &'static str },
    #[error("the key table has {0} entries, more than the {MAX_ENTRIES} allowed")]
    TooMany(u32),
    #[error("key table entry {index}: {why}")]
    Entry { index: usize, why: String },
    #[error("the key table has {0} bytes after its last entry")]
    Trailing(usize),
    #[error("lease id {0:?}: 1 to {MAX_LEASE_LEN} characters of a-z, 0-9 and '-' expected")]
    LeaseId(String),
}

/// Checks a lease id as it names an entry and a slot folder.
pub fn check_lease_id(lease: &str) -> Result<(), TableError> {
    let ok = !lease.is_empty()
        && lease.len() <= MAX_LEASE_LEN
        && lease
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !lease.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(TableError::LeaseId(lease.chars().take(80).collect()))
    }
}

/// The table: at most one entry per lease.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyTable {
    entries: Vec<TableEntry>,
}

impl KeyTable {
    pub fn entries(&self) -> &[TableEntry] {
        &self.entries
    }

    pub fn find(&self, lease: &str) -> Option<&TableEntry> {
        self.entries.iter().find(|e| e.lease == lease)
    }

    /// Adds `entry`, replacing the lease's old one. Refuses a bad lease id or a full table.
    pub fn upsert(&mut self, entry: TableEntry) -> Result<(), TableError> {
        check_lease_id(&entry.lease)?;
        if let Some(old) = self.entries.iter_mut().find(|e| e.lease == entry.lease) {
            *old = entry;
            return Ok(());
        }
        if self.entries.len() >= MAX_ENTRIES {
            return Err(TableError::TooMany(self.entries.len() as u32 + 1));
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Removes the lease's entry; true if there was one.
    pub fn remove(&mut self, lease: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.lease != lease);
        before != self.entries.len()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.entries.len() * 200);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for e in &self.entries {
            e.encode_into(&mut out);
        }
        out
    }

    /// Parses a table file: magic, count, entries, nothing after. Duplicate leases, bad lease
    /// ids and unknown root modes are refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, TableError> {
        let mut r = Reader { b: bytes };
        if r.take(MAGIC.len(), "the magic")
            .map_err(|_| TableError::Magic)?
            != MAGIC
        {
            return Err(TableError::Magic);
        }
        let count = u32::from_be_bytes(r.array("the entry count")?);
        if count as usize > MAX_ENTRIES {
            return Err(TableError::TooMany(count));
        }
        let mut table = KeyTable::default();
        for index in 0..count as usize {
            let entry = Self::decode_entry(&mut r, index)?;
            if table.find(&entry.lease).is_some() {
                return Err(TableError::Entry {
                    index,
                    why: format!("lease {} appears twice", entry.lease),
                });
            }
            table.entries.push(entry);
        }
        if !r.b.is_empty() {
            return Err(TableError::Trailing(r.b.len()));
        }
        Ok(table)
    }

    fn decode_entry(r: &mut Reader<'_>, index: usize) -> Result<TableEntry, TableError> {
        let len = r.array::<1>("an entry's lease length")?[0] as usize;
        let lease = r.take(len, "an entry's lease id")?;
        let lease = std::str::from_utf8(lease)
            .map_err(|_| TableError::Entry {
                index,
                why: "the lease id is not ASCII".into(),
            })?
            .to_owned();
        check_lease_id(&lease).map_err(|e| TableError::Entry {
            index,
            why: e.to_string(),
        })?;
        let image = r.array("an entry's image id")?;
        let epoch = u32::from_be_bytes(r.array("an entry's key epoch")?);
        let not_after_ms = u64::from_be_bytes(r.array("an entry's lease end")?);
        let root_byte = r.array::<1>("an entry's host root mode")?[0];
        let root = RootMode::from_byte(root_byte).ok_or_else(|| TableError::Entry {
            index,
            why: format!("unknown host root mode {root_byte}"),
        })?;
        Ok(TableEntry {
            lease,
            image,
            epoch,
            not_after_ms,
            root,
            signing_key: r.array("an entry's signing key")?,
            nonce: r.array("an entry's nonce")?,
            wrapped: r.array("an entry's wrapped key")?,
        })
    }
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TableError> {
        if self.b.len() < n {
            return Err(TableError::Truncated { what });
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], TableError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
}

#[cfg(test)]
#[path = "startup_table_tests.rs"]
mod tests;
