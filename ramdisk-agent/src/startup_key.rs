//! The host-bound start-up key (the start-up-key patent's second embodiment): per lease a
//! random start-up key, wrapped under this host's root key in the key table on the local disk;
//! the image key wrapped under the start-up key in the slot; the image as received (ciphertext)
//! in the slot. The start gate ([`agent_core::start_gate`]) is the only way to the plaintext.
//! IO shell around the pure table, layout and gate.
//!
//! Keys: the host root (32 bytes, from the TPM or, in the weak mode, from the host's identity)
//! gives the wrapping key by HKDF-SHA256 (`salt "lease-host-root v1"`, info `"start-up key
//! wrap"`); wraps are AES-256-GCM with a random nonce and the entry's or slot's facts as
//! associated data. Every key is zeroized when dropped and none is ever printed or sent.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use agent_core::disk_layout::SlotHeader;
use agent_core::start_gate::{self, GateChecks, LeaseWord};
use agent_core::startup_table::{NONCE_LEN, RootMode, TableEntry, WRAPPED_LEN};
use anyhow::{Context, anyhow, bail};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use sealed_image::{ImageId, ImageKey, KeyEpoch, OpenReader, Opener, VerifyingKey};
use zeroize::{Zeroize, Zeroizing};

use crate::local_disk::LocalDisk;

/// This host's root key and where it came from.
pub struct HostRoot {
    mode: RootMode,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for HostRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostRoot({}, <redacted>)", self.mode.as_str())
    }
}

/// What the weak mode derives the host root from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostIdentity {
    pub smbios_uuid: String,
    pub smbios_serial: String,
    pub macs: Vec<String>,
    pub disk_serials: Vec<String>,
}

impl HostRoot {
    /// A root unsealed from (or just sealed to) the TPM.
    pub fn tpm(key: Zeroizing<[u8; 32]>) -> Self {
        Self {
            mode: RootMode::Tpm,
            key,
        }
    }

    /// The weak mode: HKDF over the host's identity (sorted MACs and disk serials). Anyone who
    /// knows these facts can derive it: it binds the image to the host, not to a secret.
    pub fn weak(id: &HostIdentity) -> anyhow::Result<Self> {
        if id.smbios_uuid.is_empty() && id.smbios_serial.is_empty() && id.macs.is_empty() {
            bail!("the host has no SMBIOS UUID, serial or MAC to derive a weak root from");
        }
        let mut macs: Vec<String> = id.macs.iter().map(|m| m.to_ascii_lowercase()).collect();
        macs.sort();
        let mut disks = id.disk_serials.clone();
        disks.sort();
        let mut ikm = Zeroizing::new(Vec::new());
        ikm.extend_from_slice(&(macs.len() as u32).to_be_bytes());
        ikm.extend_from_slice(&(disks.len() as u32).to_be_bytes());
        for part in [&id.smbios_uuid, &id.smbios_serial]
            .into_iter()
            .chain(macs.iter())
            .chain(disks.iter())
        {
            ikm.extend_from_slice(&(part.len() as u32).to_be_bytes());
            ikm.extend_from_slice(part.to_ascii_lowercase().as_bytes());
        }
        let mut key = Zeroizing::new([0u8; 32]);
        hkdf::Salt::new(hkdf::HKDF_SHA256, b"lease-host-root weak v1")
            .extract(&ikm)
            .expand(&[b"host root"], Len32)
            .and_then(|okm| okm.fill(&mut key[..]))
            .map_err(|_| anyhow!("HKDF failed"))?;
        Ok(Self {
            mode: RootMode::Weak,
            key,
        })
    }

    pub fn mode(&self) -> RootMode {
        self.mode
    }

    fn wrapping_key(&self) -> anyhow::Result<LessSafeKey> {
        let mut k = Zeroizing::new([0u8; 32]);
        hkdf::Salt::new(hkdf::HKDF_SHA256, b"lease-host-root v1")
            .extract(&self.key[..])
            .expand(&[b"start-up key wrap"], Len32)
            .and_then(|okm| okm.fill(&mut k[..]))
            .map_err(|_| anyhow!("HKDF failed"))?;
        aead_key(&k)
    }
}

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

fn aead_key(k: &[u8; 32]) -> anyhow::Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, k)
        .map(LessSafeKey::new)
        .map_err(|_| anyhow!("AES-256-GCM key"))
}

fn wrap(
    key: &LessSafeKey,
    secret: &[u8; 32],
    aad: &[u8],
    rng: &dyn SecureRandom,
) -> anyhow::Result<([u8; NONCE_LEN], [u8; WRAPPED_LEN])> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).map_err(|_| anyhow!("no randomness"))?;
    let mut out = [0u8; WRAPPED_LEN];
    out[..32].copy_from_slice(secret);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[..32],
        )
        .map_err(|_| anyhow!("wrapping failed"))?;
    out[32..].copy_from_slice(tag.as_ref());
    Ok((nonce, out))
}

fn unwrap(
    key: &LessSafeKey,
    nonce: &[u8; NONCE_LEN],
    wrapped: &[u8; WRAPPED_LEN],
    aad: &[u8],
) -> Option<Zeroizing<[u8; 32]>> {
    let mut buf = Zeroizing::new(*wrapped);
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            &mut buf[..],
        )
        .ok()?;
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(plain);
    Some(k)
}

/// What the agent stores after a transfer.
pub struct Install<'a> {
    pub lease: &'a str,
    pub not_after_ms: u64,
    pub image: ImageId,
    pub epoch: KeyEpoch,
    pub signing_key: VerifyingKey,
    pub image_key: &'a ImageKey,
    /// The signed manifest file, as received.
    pub manifest: &'a [u8],
    /// The `.chunks` file, as received (ciphertext).
    pub chunks: &'a mut File,
}

/// Makes the lease's start-up key, stores the image in the slot and the wrapped key in the
/// table (replacing what an earlier lease left). `progress(done, total)` while storing.
pub fn install(
    disk: &LocalDisk,
    root: &HostRoot,
    rng: &dyn SecureRandom,
    i: Install<'_>,
    progress: &mut dyn FnMut(u64, u64),
) -> anyhow::Result<()> {
    let mut startup = Zeroizing::new([0u8; 32]);
    rng.fill(&mut startup[..])
        .map_err(|_| anyhow!("no randomness for the start-up key"))?;
    let chunks_len = i
        .chunks
        .seek(SeekFrom::End(0))
        .and_then(|n| i.chunks.seek(SeekFrom::Start(0)).map(|_| n))
        .context("cannot size the image's chunks file")?;
    let mut slot = SlotHeader {
        lease: i.lease.to_owned(),
        image: *i.image.as_bytes(),
        epoch: i.epoch.0,
        manifest_len: u32::try_from(i.manifest.len()).context("manifest size")?,
        chunks_len,
        nonce: [0; NONCE_LEN],
        wrapped_image_key: [0; WRAPPED_LEN],
    };
    let (nonce, wrapped) = wrap(
        &aead_key(&startup)?,
        i.image_key.expose_secret(),
        &slot.aad(),
        rng,
    )?;
    slot.nonce = nonce;
    slot.wrapped_image_key = wrapped;
    let mut table = disk.read_table().unwrap_or_default();
    // The slot is rewritten: whatever lease it held before loses its entry first.
    let old: Vec<String> = table.entries().iter().map(|e| e.lease.clone()).collect();
    for lease in old {
        table.remove(&lease);
    }
    disk.write_table(&table)?;
    disk.write_slot(&slot, i.manifest, i.chunks, progress)?;
    let mut entry = TableEntry {
        lease: i.lease.to_owned(),
        image: *i.image.as_bytes(),
        epoch: i.epoch.0,
        not_after_ms: i.not_after_ms,
        root: root.mode(),
        signing_key: i.signing_key.0,
        nonce: [0; NONCE_LEN],
        wrapped: [0; WRAPPED_LEN],
    };
    let (nonce, wrapped) = wrap(&root.wrapping_key()?, &startup, &entry.aad(), rng)?;
    entry.nonce = nonce;
    entry.wrapped = wrapped;
    table
        .upsert(entry)
        .map_err(|e| anyhow!("the key table: {e}"))?;
    disk.write_table(&table)?;
    startup.zeroize();
    Ok(())
}

/// Destroys the lease's start-up key (crypto-shred): its table entry goes (synced), then the
/// slot header with the wrapped image key. True if there was an entry.
pub fn shred(disk: &LocalDisk, lease: &str) -> anyhow::Result<bool> {
    // A table that cannot be read is replaced by an empty one: a shred never keeps keys.
    let mut table = match disk.read_table() {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("{e:#}: writing an empty key table");
            agent_core::startup_table::KeyTable::default()
        }
    };
    let had = table.remove(lease);
    disk.write_table(&table)?;
    if let Ok(h) = disk.read_slot_header()
        && (h.lease == lease || !had)
    {
        disk.clear_slot()?;
    }
    Ok(had)
}

/// Destroys every start-up key on the disk and the slot header; the number of keys. A disk
/// the agent never wrote is not written to.
pub fn shred_all(disk: &LocalDisk) -> anyhow::Result<usize> {
    let table = disk.read_table();
    let slot = disk.read_slot_header().is_ok();
    let n = match &table {
        Ok(t) if t.entries().is_empty() && !slot => return Ok(0),
        Ok(t) => t.entries().len(),
        Err(e) => {
            tracing::warn!("{e:#}: writing an empty key table");
            0
        }
    };
    disk.write_table(&agent_core::startup_table::KeyTable::default())?;
    disk.clear_slot()?;
    Ok(n)
}

/// A verified image, in RAM only (memfd files), ready for kexec.
#[derive(Debug)]
pub struct Startable {
    pub kernel: File,
    pub initrd: Option<File>,
    pub cmdline: String,
    pub image: ImageId,
    pub chunks: u64,
}

/// The gate's checks against the local disk.
pub struct DiskGate<'a> {
    pub disk: &'a LocalDisk,
    pub lease: &'a str,
    pub root: Result<&'a HostRoot, String>,
    /// Asks the LM about the lease (step 5).
    pub ask_lm: &'a mut dyn FnMut() -> LeaseWord,
    /// The wall clock (ms since the Unix epoch), read when step 5 runs.
    pub now_ms: &'a dyn Fn() -> u64,
    /// Where plaintext goes: `sink(section name)` gives a RAM-only file.
    pub sink: &'a dyn Fn(&str) -> anyhow::Result<File>,
}

impl GateChecks for DiskGate<'_> {
    type Key = Zeroizing<[u8; 32]>;
    type Slot = SlotHeader;
    type Image = Startable;

    fn key_entry(&mut self) -> Result<TableEntry, String> {
        let table = self.disk.read_table().map_err(|e| format!("{e:#}"))?;
        table.find(self.lease).cloned().ok_or_else(|| {
            format!(
                "no start-up key for lease {} in the key table on {} ({} entries)",
                self.lease,
                self.disk.path().display(),
                table.entries().len()
            )
        })
    }

    fn unwrap_key(&mut self, entry: &TableEntry) -> Result<Self::Key, String> {
        let root = self.root.clone()?;
        if root.mode() != entry.root {
            return Err(format!(
                "the key was wrapped under a {} root, this host has a {} root",
                entry.root.as_str(),
                root.mode().as_str()
            ));
        }
        let key = root.wrapping_key().map_err(|e| e.to_string())?;
        unwrap(&key, &entry.nonce, &entry.wrapped, &entry.aad()).ok_or_else(|| {
            "the start-up key does not unwrap with this host's root (another host, or the entry was altered)"
                .to_owned()
        })
    }

    fn image_slot(&mut self, entry: &TableEntry) -> Result<SlotHeader, String> {
        let h = self.disk.read_slot_header().map_err(|e| e.to_string())?;
        if h.lease != entry.lease || h.image != entry.image || h.epoch != entry.epoch {
            return Err(format!(
                "the slot holds lease {} image {} epoch {}, the key entry names lease {} image {} epoch {}",
                h.lease,
                hex(&h.image),
                h.epoch,
                entry.lease,
                hex(&entry.image),
                entry.epoch
            ));
        }
        Ok(h)
    }

    fn verify(
        &mut self,
        entry: &TableEntry,
        startup: &Self::Key,
        slot: SlotHeader,
    ) -> Result<Startable, String> {
        self.verify_slot(entry, startup, &slot)
            .map_err(|e| format!("{e:#}"))
    }

    fn lease_valid(&mut self, entry: &TableEntry) -> Result<(), String> {
        let word = (self.ask_lm)();
        start_gate::lease_valid(entry, &word, (self.now_ms)())
    }
}

impl DiskGate<'_> {
    fn verify_slot(
        &self,
        entry: &TableEntry,
        startup: &Zeroizing<[u8; 32]>,
        slot: &SlotHeader,
    ) -> anyhow::Result<Startable> {
        let image_key = unwrap(
            &aead_key(startup)?,
            &slot.nonce,
            &slot.wrapped_image_key,
            &slot.aad(),
        )
        .map(|k| ImageKey::from_bytes(*k))
        .ok_or_else(|| {
            anyhow!("the image key in the slot does not unwrap with the start-up key")
        })?;
        let manifest_file = self.disk.read_manifest(slot)?;
        let (manifest, opener) = Opener::from_signed(
            &manifest_file,
            &VerifyingKey(entry.signing_key),
            ImageId::from_bytes(entry.image),
            KeyEpoch(entry.epoch),
            &image_key,
        )
        .map_err(|e| anyhow!("the stored manifest: {e}"))?;
        drop(image_key);
        let kernel_sec = manifest
            .section("kernel")
            .cloned()
            .ok_or_else(|| anyhow!("the image has no kernel section"))?;
        let initrd_sec = manifest.section("initramfs").cloned();
        let mut kernel = (self.sink)("kernel")?;
        let mut initrd = match initrd_sec {
            Some(_) => Some((self.sink)("initramfs")?),
            None => None,
        };
        let mut reader = OpenReader::new(opener, self.disk.chunks(slot)?);
        let mut buf = Zeroizing::new(vec![0u8; 1 << 20]);
        let mut at = 0u64;
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| anyhow!("chunk at plaintext offset {at}: {e}"))?;
            if n == 0 {
                break;
            }
            let piece = at..at + n as u64;
            for (sec, file) in [
                (Some(&kernel_sec), Some(&mut kernel)),
                (initrd_sec.as_ref(), initrd.as_mut()),
            ] {
                let (Some(sec), Some(file)) = (sec, file) else {
                    continue;
                };
                let r = sec.range();
                let (s, e) = (piece.start.max(r.start), piece.end.min(r.end));
                if s < e {
                    file.write_all(&buf[(s - at) as usize..(e - at) as usize])
                        .context("cannot write the plaintext to RAM")?;
                }
            }
            at = piece.end;
        }
        let verified = reader
            .finish()
            .map_err(|e| anyhow!("the final verification: {e}"))?;
        for f in std::iter::once(&mut kernel).chain(initrd.as_mut()) {
            f.seek(SeekFrom::Start(0)).context("rewind")?;
        }
        Ok(Startable {
            kernel,
            initrd,
            cmdline: manifest.cmdline.clone(),
            image: manifest.image_id,
            chunks: verified.chunk_count,
        })
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A RAM-only file (memfd) for plaintext the agent hands to kexec.
pub fn memfd(name: &str) -> anyhow::Result<File> {
    use std::os::fd::FromRawFd;
    let c = std::ffi::CString::new(format!("tenant-{name}")).map_err(|_| anyhow!("memfd name"))?;
    // SAFETY: a valid NUL-terminated name; the returned descriptor is owned by the File.
    let fd = unsafe { libc::memfd_create(c.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("memfd_create");
    }
    // SAFETY: fd is a fresh descriptor this process owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// A fresh random generator (the shell's; tests pass their own).
pub fn system_rng() -> SystemRandom {
    SystemRandom::new()
}

#[cfg(test)]
#[path = "startup_key_tests.rs"]
mod tests;
