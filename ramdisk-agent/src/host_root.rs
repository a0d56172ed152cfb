//! Which root of trust this host has, and its key: a random 32-byte key sealed to the TPM 2.0
//! (`agent-tpm`; the sealed blob lives on the local disk, only this TPM can unseal it), or,
//! on a host without a TPM, the weak key derived from the host's identity. IO shell.
//!
//! Storing (a new lease) seals a fresh root to this TPM, replacing the disk's old one; the gate
//! only ever unseals: a blob from another TPM, or none, fails the gate at
//! "key unwraps on this host".

use agent_tpm::{DEFAULT_DEVICES, DeviceTransport, SealedBlob, Tpm, TpmError};
use anyhow::{Context, anyhow};
use ring::rand::SecureRandom;
use zeroize::Zeroizing;

use crate::local_disk::LocalDisk;
use crate::startup_key::{HostIdentity, HostRoot};

/// The TPM device, if the host has one.
pub fn tpm_device() -> Option<&'static str> {
    DEFAULT_DEVICES
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

fn open_tpm() -> anyhow::Result<Tpm<DeviceTransport>> {
    DeviceTransport::open_default()
        .map(Tpm::new)
        .map_err(|e| anyhow!("the TPM: {e}"))
}

/// Unseals the disk's root with this TPM. `Ok(None)`: the disk holds no sealed root.
fn unseal_from(
    disk: &LocalDisk,
    tpm: &mut Tpm<DeviceTransport>,
) -> anyhow::Result<Option<HostRoot>> {
    let Some(bytes) = disk.read_root()? else {
        return Ok(None);
    };
    let blob = SealedBlob::from_bytes(&bytes).map_err(|e| anyhow!("the sealed host root: {e}"))?;
    match tpm.unseal(&blob) {
        Ok(key) => Ok(Some(HostRoot::tpm(key))),
        Err(e @ TpmError::ForeignBlob { .. }) => Err(anyhow!(
            "the host root on {} was sealed by another TPM ({e})",
            disk.path().display()
        )),
        Err(e) => Err(anyhow!("unsealing the host root: {e}")),
    }
}

/// The root to store a new lease's start-up key under.
pub fn for_install(
    disk: &LocalDisk,
    id: &HostIdentity,
    rng: &dyn SecureRandom,
) -> anyhow::Result<HostRoot> {
    if tpm_device().is_none() {
        return HostRoot::weak(id);
    }
    // Every lease gets a fresh root: install removes every older entry anyway, and a root a
    // past tenant might have unsealed (the tenant OS runs on this TPM) opens nothing later.
    let mut tpm = open_tpm()?;
    let mut key = Zeroizing::new([0u8; 32]);
    rng.fill(&mut key[..])
        .map_err(|_| anyhow!("no randomness for the host root"))?;
    let blob = tpm
        .seal(&key)
        .map_err(|e| anyhow!("sealing the host root to the TPM: {e}"))?;
    disk.write_root(&blob.to_bytes())
        .context("storing the sealed host root")?;
    Ok(HostRoot::tpm(key))
}

/// The root the gate unwraps with; an error is the reason the key cannot unwrap here.
pub fn for_gate(disk: &LocalDisk, id: &HostIdentity) -> Result<HostRoot, String> {
    if tpm_device().is_none() {
        return HostRoot::weak(id).map_err(|e| format!("{e:#}"));
    }
    let mut tpm = open_tpm().map_err(|e| format!("{e:#}"))?;
    match unseal_from(disk, &mut tpm) {
        Ok(Some(root)) => Ok(root),
        Ok(None) => Err(format!(
            "this host has a TPM but {} holds no sealed host root",
            disk.path().display()
        )),
        Err(e) => Err(format!("{e:#}")),
    }
}
