//! The start phase: store the verified image on the local disk under a fresh host-bound
//! start-up key, pass the start gate against what is on the disk (exactly what a reboot within
//! the lease would do), and kexec into the tenant OS. IO shell.
//!
//! Markers: `AGENT-PROGRESS store ...` while storing, `AGENT-GATE <step> ok` per passed step,
//! `AGENT-GATE <step> refused <reason>` at the first failure (the phase then fails fatally and
//! the failure is reported), `AGENT-KEXEC ...` just before the reboot into the tenant kernel.

use std::fs::File;
use std::path::{Path, PathBuf};

use agent_core::start_gate::{self, GateStep, LeaseWord};
use agent_core::{AgentArgs, Outcome};
use anyhow::{Context, anyhow};
use lm_api::{AgentAction, HardwareFacts};
use sealed_image::{ImageId, KeyEpoch, VerifyingKey};

use crate::hello::{self, Failure};
use crate::https::LmClient;
use crate::local_disk::{self, LocalDisk};
use crate::startup_key::{self, DiskGate, HostIdentity, HostRoot, Install, Startable};
use crate::transfer::Fetched;
use crate::{console, host_root, sys};

fn fail(outcome: Outcome, error: anyhow::Error) -> Failure {
    Failure {
        error,
        outcome,
        lm_answered: false,
    }
}

/// The host facts the weak root is derived from.
pub fn identity(facts: &HardwareFacts) -> HostIdentity {
    HostIdentity {
        smbios_uuid: facts.smbios.uuid.clone().unwrap_or_default(),
        smbios_serial: facts.smbios.serial.clone().unwrap_or_default(),
        macs: facts.nics.iter().map(|n| n.mac.to_string()).collect(),
        disk_serials: facts
            .disks
            .iter()
            .filter_map(|d| d.serial.clone())
            .collect(),
    }
}

/// Where the local disk is: `--disk` (not-init mode), else, as PID 1 only, the first block
/// device found. A process that is not PID 1 never looks for a disk of its own: on a
/// developer's or CI machine `/dev/sda` is the machine's own disk.
pub fn disk_path(explicit: Option<&Path>, pid1: bool) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_path_buf()),
        None if pid1 => local_disk::find(),
        None => None,
    }
}

/// What the phase needs from the bring-up.
pub struct Ctx<'a> {
    pub lm: &'a LmClient,
    pub args: &'a AgentArgs,
    pub lease: &'a str,
    pub not_after_ms: u64,
    /// A fresh transfer to store (and the tenant's signing key from the registration); `None`
    /// on a reboot within the lease: the disk already holds it.
    pub fresh: Option<(&'a Fetched, VerifyingKey)>,
    pub facts: &'a HardwareFacts,
    pub disk: &'a Path,
}

/// Whether `disk` holds a start-up key entry for `lease` (read only; any error is "no").
pub fn has_entry(disk: &Path, lease: &str) -> bool {
    LocalDisk::open(disk)
        .and_then(|d| d.read_table())
        .is_ok_and(|t| t.find(lease).is_some())
}

/// Stores (once) and gates. Returns the startable image and a detail line.
pub fn store_and_gate(c: &Ctx<'_>, stored: &mut bool) -> Result<(Startable, String), Failure> {
    let fatal = |e: anyhow::Error| fail(Outcome::Fatal, e);
    let disk = LocalDisk::open(c.disk).map_err(fatal)?;
    let id = identity(c.facts);
    if let (false, Some((fetched, signing_key))) = (*stored, c.fresh) {
        let rng = startup_key::system_rng();
        let root = host_root::for_install(&disk, &id, &rng).map_err(fatal)?;
        let mut chunks = File::open(&fetched.chunks_file)
            .with_context(|| format!("opening {}", fetched.chunks_file.display()))
            .map_err(fatal)?;
        let manifest = std::fs::read(&fetched.manifest)
            .with_context(|| format!("reading {}", fetched.manifest.display()))
            .map_err(fatal)?;
        let mut last_pct = u64::MAX;
        startup_key::install(
            &disk,
            &root,
            &rng,
            Install {
                lease: c.lease,
                not_after_ms: c.not_after_ms,
                image: ImageId::from_bytes(fetched.image.0),
                epoch: KeyEpoch(fetched.epoch),
                signing_key,
                image_key: &fetched.key,
                manifest: &manifest,
                chunks: &mut chunks,
            },
            &mut |done, total| {
                let pct = done * 100 / total.max(1);
                if pct / 10 != last_pct / 10 {
                    last_pct = pct;
                    console::line(&format!(
                        "AGENT-PROGRESS store image={} bytes={done}/{total}",
                        fetched.image
                    ));
                }
            },
        )
        .map_err(fatal)?;
        *stored = true;
        // The RAM copy goes: from here on the disk copy is the one that starts.
        for p in [&fetched.manifest, &fetched.chunks_file] {
            if let Err(e) = std::fs::remove_file(p) {
                tracing::warn!("removing {}: {e}", p.display());
            }
        }
    }
    let root = host_root::for_gate(&disk, &id);
    let mode = root.as_ref().map_or("none", |r| r.mode().as_str());
    let image = gate(c, &disk, root.as_ref().map_err(Clone::clone))?;
    let detail = format!(
        "image={} chunks={} root={mode} disk={}",
        image.image,
        image.chunks,
        c.disk.display()
    );
    Ok((image, detail))
}

/// Runs the gate against the disk; prints each step.
pub fn gate(
    c: &Ctx<'_>,
    disk: &LocalDisk,
    root: Result<&HostRoot, String>,
) -> Result<Startable, Failure> {
    let released = std::cell::Cell::new(false);
    let mut ask = || {
        let word = ask_lm(c.lm, c.args);
        released.set(word == LeaseWord::Release);
        word
    };
    let mut g = DiskGate {
        disk,
        lease: c.lease,
        root,
        ask_lm: &mut ask,
        now_ms: &sys::unix_ms,
        sink: &startup_key::memfd,
    };
    start_gate::run(&mut g, &mut |step| {
        console::line(&format!("AGENT-GATE {} ok", step.as_str()));
    })
    .map_err(|r| {
        console::line(&format!(
            "AGENT-GATE {} refused {}",
            r.step.as_str(),
            console::one_line(&r.reason)
        ));
        // The LM says the lease is over: its start-up key goes now (crypto-shred).
        if released.get() {
            match startup_key::shred(disk, c.lease) {
                Ok(had) => console::line(&format!(
                    "AGENT-GATE shred lease={} startup_key_destroyed={had}",
                    c.lease
                )),
                Err(e) => tracing::error!("destroying the start-up key: {e:#}"),
            }
        }
        fail(Outcome::Fatal, anyhow!(r))
    })
}

/// Step 5: a heartbeat, as the LM's word on the lease.
fn ask_lm(lm: &LmClient, args: &AgentArgs) -> LeaseWord {
    match hello::heartbeat(lm, args, hello::timeouts(None)) {
        Ok(a) => match a.action {
            AgentAction::Continue => match a.lease_ends_ms {
                Some(ends_ms) => LeaseWord::Continue { ends_ms },
                None => LeaseWord::Unreachable("the LM named no lease end".into()),
            },
            AgentAction::Release => LeaseWord::Release,
        },
        Err(f) => LeaseWord::Unreachable(console::one_line(&format!("{:#}", f.error))),
    }
}

/// The console line before the reboot.
pub fn kexec_marker(image: &Startable, cmdline: &str) -> String {
    format!(
        "AGENT-KEXEC image={} step={} cmdline_bytes={}",
        image.image,
        GateStep::Start.as_str(),
        cmdline.len()
    )
}
