//! Test oracle for "the Lease Manager never stores or logs the image key or the start-up key":
//! recovers a weak-mode start-up key from a server's disk independently of the agent (the
//! format of `docs/formats.md`, re-implemented here with ring), and searches files and texts
//! for a key in every encoding it could take (raw, hex either case, base64 padded or not,
//! standard or URL-safe). IO (reads files).

use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;

/// The key table's place on the disk and its magic.
const TABLE_OFFSET: usize = 4096;
const TABLE_MAGIC: &[u8; 8] = b"LSKTAB1\n";

/// What the weak host root is derived from (as the agent reports it in its facts).
#[derive(Debug, Clone)]
pub struct Identity {
    pub smbios_uuid: String,
    pub smbios_serial: String,
    pub macs: Vec<String>,
    pub disk_serials: Vec<String>,
}

impl Identity {
    /// From the facts the agent sent the LM.
    pub fn from_facts(f: &lm_api::HardwareFacts) -> Self {
        Self {
            smbios_uuid: f.smbios.uuid.clone().unwrap_or_default(),
            smbios_serial: f.smbios.serial.clone().unwrap_or_default(),
            macs: f.nics.iter().map(|n| n.mac.to_string()).collect(),
            disk_serials: f.disks.iter().filter_map(|d| d.serial.clone()).collect(),
        }
    }
}

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

fn hkdf32(salt: &[u8], ikm: &[u8], info: &[u8]) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(ikm)
        .expand(&[info], Len32)
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| anyhow::anyhow!("HKDF"))?;
    Ok(out)
}

fn weak_root(id: &Identity) -> Result<[u8; 32]> {
    let mut macs: Vec<String> = id.macs.iter().map(|m| m.to_ascii_lowercase()).collect();
    macs.sort();
    let mut disks = id.disk_serials.clone();
    disks.sort();
    let mut ikm = Vec::new();
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
    hkdf32(b"lease-host-root weak v1", &ikm, b"host root")
}

/// The start-up key of the first key table entry on `disk` (a weak-mode host with identity
/// `id`), unwrapped as the agent would.
pub fn weak_startup_key(disk: &[u8], id: &Identity) -> Result<[u8; 32]> {
    let t = disk
        .get(TABLE_OFFSET..TABLE_OFFSET + 4096)
        .context("disk too small")?;
    if &t[..8] != TABLE_MAGIC {
        bail!("no key table on the disk");
    }
    if u32::from_be_bytes([t[8], t[9], t[10], t[11]]) == 0 {
        bail!("the key table is empty");
    }
    let lease_len = t[12] as usize;
    let fields = 13 + lease_len + 16 + 4 + 8 + 1 + 32;
    let e = &t[12..12 + 1 + lease_len + 16 + 4 + 8 + 1 + 32 + 12 + 48];
    if e[1 + lease_len + 16 + 4 + 8] != 2 {
        bail!("the entry is not weak-mode");
    }
    let mut aad = b"lease-startup-key v1".to_vec();
    aad.extend_from_slice(&t[12..fields]);
    let nonce: [u8; 12] = t[fields..fields + 12].try_into()?;
    let mut wrapped = t[fields + 12..fields + 60].to_vec();
    let root = weak_root(id)?;
    let wrap = hkdf32(b"lease-host-root v1", &root, b"start-up key wrap")?;
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &wrap).map_err(|_| anyhow::anyhow!("AES key"))?,
    );
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut wrapped,
        )
        .map_err(|_| anyhow::anyhow!("the start-up key does not unwrap with this identity"))?;
    Ok(plain.try_into()?)
}

/// Every way `key` could be written down.
pub fn encodings(key: &[u8]) -> Vec<Vec<u8>> {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut v = vec![
        key.to_vec(),
        hex.clone().into_bytes(),
        hex.to_uppercase().into_bytes(),
    ];
    for e in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        v.push(e.encode(key).into_bytes());
    }
    v.sort();
    v.dedup();
    v
}

/// Where in `haystack` one of `key`'s encodings occurs, if anywhere.
pub fn find(haystack: &[u8], key: &[u8]) -> Option<usize> {
    encodings(key)
        .iter()
        .find_map(|n| haystack.windows(n.len()).position(|w| w == n.as_slice()))
}

/// Files under `dir` (recursively) that hold `key` in any encoding.
pub fn files_with(dir: &Path, key: &[u8]) -> Result<Vec<String>> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file()
                && let Ok(bytes) = std::fs::read(&p)
                && find(&bytes, key).is_some()
            {
                hits.push(p.display().to_string());
            }
        }
    }
    Ok(hits)
}
