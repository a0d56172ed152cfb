//! The whole-lease benchmark (issue 5): the time from the tenant's request to the tenant OS's
//! marker on the server's console, phase by phase, against the floor of the same lab. Each
//! round runs, one after the other on the same machine:
//! - a lease as `lab demo` runs it (tenant world with a VM; seal, gateway, request), timed from
//!   the request command's start to `TENANT-OS-UP lease=<id>`; every console time is taken from
//!   the line's time since QEMU started, so polling adds nothing;
//! - floor 1: the same world, the server woken by the LM without a lease
//!   (`lease-manager server wake`), QEMU start -> the agent's `AGENT-PHASE init start`;
//! - floor 2: the same machine (memory, disk, TPM) booted straight into the tenant OS from
//!   kernel and initrd, QEMU start -> `TENANT-OS-UP`;
//! - floor 3: the sealed image's `.chunks` bytes at the tunnel rate (`--tunnel-gbit`).
//!
//! A benchmark, never a test. IO; the figures and the report are in [`report`].

pub mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::lm::Artifacts;
use crate::qemu::{BootFrom, VmSpec};
use crate::tenant::world::{Bins, VmServer, World};
use crate::{MacAddr, VmHandle};

use report::{Floor, LeaseRun, PHASES, Round};

/// The wg-tunnel median recorded in docs/benchmarks.md (`lab bench tunnel`, 2833 and 2841
/// Mbit/s in two runs), the default of `--tunnel-gbit`.
pub const TUNNEL_GBIT_RECORDED: f64 = 2.83;
pub const TUNNEL_GBIT_SOURCE: &str =
    "the wg-tunnel median of `lab bench tunnel` recorded in docs/benchmarks.md (2833-2841 Mbit/s)";

/// Options of the benchmark.
#[derive(Debug, Clone)]
pub struct Options {
    pub rounds: u32,
    /// Tunnel rate for the floor's transfer part, Gbit/s.
    pub tunnel_gbit: f64,
    /// Give up waiting for a marker after this long.
    pub timeout: Duration,
}

const VM: &str = "vm1";
const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x77, 0x00, 0x01]);
const DIRECT_VM: &str = "vmk";
const DIRECT_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x77, 0x05, 0x01]);
const DIRECT_APPEND: &str = "console=ttyS0 panic=-1 tenant.poweroff";

/// A sparse disk image for the VM and the folder of its software TPM's state, removed when
/// dropped.
struct Disk(PathBuf);

impl Disk {
    fn new(what: &str) -> Result<Disk> {
        let d = Disk(
            std::env::temp_dir().join(format!("lab-bench-{what}-disk-{}.img", std::process::id())),
        );
        std::fs::File::create(&d.0)
            .and_then(|f| f.set_len(256 << 20))
            .with_context(|| format!("creating {}", d.0.display()))?;
        Ok(d)
    }

    fn tpm(&self) -> PathBuf {
        self.0.with_extension("tpm")
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_dir_all(self.tpm());
    }
}

/// The lease server's VM, as `lab demo` makes it: a 256 MiB virtio disk and a software TPM 2.0
/// (the agent seals its host root to it).
fn server_spec(disk: &Disk) -> VmSpec {
    let mut spec = VmSpec::new(VM, MAC);
    spec.disks = vec![disk.0.clone()];
    spec.tpm = Some(disk.tpm());
    spec
}

fn tenant_os(art: &Artifacts) -> Result<PathBuf> {
    let p = art.dir.join("boot/tenant-initrd.cpio.gz");
    if !p.exists() {
        bail!("{} is missing: run scripts/lab-prepare.sh", p.display());
    }
    Ok(p)
}

/// Runs `opts.rounds` rounds; progress goes to stderr.
pub fn bench(art: &Artifacts, bins: &Bins, opts: &Options) -> Result<Vec<Round>> {
    if report::transfer_secs(1, opts.tunnel_gbit).is_none() {
        bail!(
            "--tunnel-gbit {}: give the tunnel rate as a positive number of Gbit/s",
            opts.tunnel_gbit
        );
    }
    tenant_os(art)?;
    let mut rounds = Vec::new();
    for n in 1..=opts.rounds {
        eprintln!("round {n}/{}: the whole lease", opts.rounds);
        let (lease, image_bytes) =
            lease_run(art, bins, opts.timeout).with_context(|| format!("round {n}: the lease"))?;
        eprintln!(
            "round {n}/{}: request -> TENANT-OS-UP {:.2} s; the floor (PXE boot, direct boot)",
            opts.rounds, lease.total_s
        );
        let (pxe, direct) =
            floor_run(art, bins, opts.timeout).with_context(|| format!("round {n}: the floor"))?;
        let floor = Floor::new(pxe, direct, image_bytes, opts.tunnel_gbit)
            .context("the tunnel rate is not a positive number")?;
        let r = Round::new(n, lease, floor);
        eprintln!(
            "round {n}/{}: floor {:.2} s (PXE {pxe:.2} + direct {direct:.2} + transfer {:.2}), ratio {:.2}x",
            opts.rounds, r.floor.sum_s, r.floor.transfer_s, r.ratio
        );
        rounds.push(r);
    }
    Ok(rounds)
}

/// The moment a console line of `vm` was read, from its time since QEMU started.
fn line_instant(vm: &crate::qemu::Vm, at: Duration) -> Instant {
    vm.console().started() + at
}

/// One whole lease; its figures and the sealed image's size.
fn lease_run(art: &Artifacts, bins: &Bins, timeout: Duration) -> Result<(LeaseRun, u64)> {
    let tenant_os = tenant_os(art)?;
    let disk = Disk::new("lease")?;
    let (w, vm) = World::build_with(
        bins.clone(),
        Some(VmServer {
            art: art.clone(),
            spec: server_spec(&disk),
        }),
    )?;
    let vm = vm.context("no VM")?;
    w.po.run(&[
        "images",
        "seal",
        "--kernel",
        &art.kernel().display().to_string(),
        "--initramfs",
        &tenant_os.display().to_string(),
        "--cmdline",
        "console=ttyS0 panic=-1",
    ])?;
    let image = w.po.json(&["images", "list"])?[0]["id"]
        .as_str()
        .context("no sealed image in `images list`")?
        .to_string();
    let chunks =
        w.po.state_dir
            .join("images")
            .join(format!("{image}.chunks"));
    let image_bytes = std::fs::metadata(&chunks)
        .with_context(|| format!("the sealed image's chunks {}", chunks.display()))?
        .len();
    let gw = w.start_gateway("gateway")?;

    let t_req = Instant::now();
    let req = w.po.json(&[
        "request",
        "--count",
        "1",
        "--role",
        "bench",
        "--image",
        &image,
        "--duration",
        "20m",
    ])?;
    let lease = req["answer"]["lease"]["id"]
        .as_str()
        .with_context(|| format!("no lease id in the organizer's answer: {req}"))?
        .to_string();
    let run = follow(&vm, t_req, &lease, timeout);
    if run.is_err() {
        eprintln!("{}", w.lab.dump(60));
    }
    drop(gw);
    drop(w);
    Ok((run?, image_bytes))
}

/// Follows boot 1 of the lease's VM until `TENANT-OS-UP lease=<lease>`.
fn follow(vm: &VmHandle, t_req: Instant, lease: &str, timeout: Duration) -> Result<LeaseRun> {
    let b = vm.wait_boot(1, timeout)?;
    let power_on = b.console().started().saturating_duration_since(t_req);
    let until = format!("TENANT-OS-UP lease={lease}");
    let end = Instant::now() + timeout;
    let mut marks: Vec<Option<f64>> = vec![None; PHASES.len()];
    let mut init = None;
    let mut next = 0;
    loop {
        for l in b.console().lines_from(next) {
            next = l.seq + 1;
            let t = l.text.trim();
            let since_req = line_instant(&b, l.at)
                .saturating_duration_since(t_req)
                .as_secs_f64();
            if init.is_none() && t.contains("AGENT-PHASE init start") {
                init = Some(l.at.as_secs_f64());
            }
            for (slot, (_, marker)) in marks.iter_mut().zip(PHASES) {
                if slot.is_none() && t.contains(marker) {
                    *slot = Some(since_req);
                }
            }
            if t.contains(&until) {
                return Ok(LeaseRun {
                    lease: lease.to_string(),
                    power_on_s: power_on.as_secs_f64(),
                    init_after_power_on_s: init,
                    marks_s: marks,
                    total_s: since_req,
                });
            }
            if t.contains("AGENT-POWEROFF") || t.contains("AGENT-GATE") && t.contains("refused") {
                bail!("the server stopped: {t}");
            }
        }
        if !b.is_running() && b.console().lines_from(next).is_empty() {
            bail!("{VM} powered off before {until:?}");
        }
        if Instant::now() > end {
            bail!("no {until:?} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The floor's boots in one world: the server woken without a lease to the agent's /init,
/// then, once it is off, a VM of the same size straight into the tenant OS. Seconds since QEMU
/// started, each.
fn floor_run(art: &Artifacts, bins: &Bins, timeout: Duration) -> Result<(f64, f64)> {
    let disk = Disk::new("floor")?;
    let spec = server_spec(&disk);
    // The same machine as the server (memory, disk, TPM), booted from kernel and initrd.
    let direct_disk = Disk::new("direct")?;
    let mut direct = VmSpec::new(DIRECT_VM, DIRECT_MAC);
    direct.memory_mb = spec.memory_mb;
    direct.disks = vec![direct_disk.0.clone()];
    direct.tpm = Some(direct_disk.tpm());
    direct.boot = BootFrom::Kernel {
        kernel: art.kernel(),
        initrd: Some(tenant_os(art)?),
        append: DIRECT_APPEND.into(),
    };
    let (w, vm) = World::build_with(
        bins.clone(),
        Some(VmServer {
            art: art.clone(),
            spec,
        }),
    )?;
    let vm = vm.context("no VM")?;
    let got = boot_floors(&w, &vm, direct, timeout);
    if got.is_err() {
        eprintln!("{}", w.lab.dump(60));
    }
    drop(w);
    got
}

fn boot_floors(w: &World, vm: &VmHandle, direct: VmSpec, timeout: Duration) -> Result<(f64, f64)> {
    w.lm.console(&["server", "wake", VM])?;
    let pxe = vm
        .wait_marker(1, "AGENT-PHASE init start", timeout)
        .context("the server woken without a lease")?
        .at;
    vm.power_off();
    let k = w.lab.register_vm(direct)?;
    k.power_on()?;
    let up = k
        .wait_marker(1, "TENANT-OS-UP lease=none", timeout)
        .context("the tenant OS booted from kernel and initrd")?
        .at;
    k.power_off();
    Ok((pxe.as_secs_f64(), up.as_secs_f64()))
}
