//! `lab demo`: the project's main job, the whole lease in the QEMU lab. The lender's Lease
//! Manager and an idle server (a VM with a virtio disk); the tenant's organizer seals its boot
//! image (the lab's tenant test OS), runs its gateway and asks for a server; the LM wakes the
//! VM over Wake-on-LAN, it PXE-boots the agent, which enrolls, builds the WireGuard tunnel,
//! pulls the sealed image, stores it under a host-bound start-up key, passes the start gate
//! and kexecs into the tenant OS. The phases show live with their times; then the tenant
//! releases, the LM power-cycles the server through its BMC (`[power] cycle_command`, here the
//! lab's virtual BMC) into the agent, which destroys the start-up key and confirms the wipe.
//! Everything is torn down at the end. IO.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::lm::Artifacts;
use crate::qemu::{Firmware, NicRom, VmSpec};
use crate::tenant::world::{Bins, VmServer, World};
use crate::{MacAddr, VmHandle};

/// Options of the demo.
#[derive(Debug, Clone)]
pub struct LeaseDemoOptions {
    pub uefi: bool,
    /// The lease's tunnel is IPsec (the gateway runs strongSwan) instead of WireGuard.
    pub ipsec: bool,
    /// Seconds to wait for each stage (boot to tenant OS, wipe) before giving up.
    pub timeout_secs: u64,
}

const VM: &str = "vm1";
const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x77, 0x00, 0x01]);

/// Console markers shown live, with the phase each one ends.
const SHOWN: [&str; 9] = [
    "AGENT-PHASE",
    "AGENT-ENROLLED",
    "AGENT-PROGRESS",
    "AGENT-RESUME",
    "AGENT-GATE",
    "AGENT-KEXEC",
    "AGENT-WIPED",
    "AGENT-POWEROFF",
    "TENANT-OS-",
];

/// The phase table: label and the marker that ends it.
const PHASES: [(&str, &str); 7] = [
    ("wake -> PXE -> agent up", "AGENT-PHASE init ok"),
    ("DHCP, facts, hello", "AGENT-PHASE hello ok"),
    ("enroll (key pair in RAM, CSR, token)", "AGENT-ENROLLED"),
    ("tunnel to the gateway", "AGENT-PHASE tunnel ok"),
    ("sealed image through the tunnel", "AGENT-PHASE transfer ok"),
    ("store under start-up key + gate", "AGENT-PHASE start ok"),
    ("kexec -> tenant OS", "TENANT-OS-UP"),
];

fn step(t0: Instant, what: &str) {
    println!(
        "\x1b[1m[{:>6.2}s] {what}\x1b[0m",
        t0.elapsed().as_secs_f64()
    );
}

fn indent(text: &str) {
    for l in text.lines() {
        println!("         {l}");
    }
}

/// Follows boot `boot` of the VM's console, printing the shown markers, until a complete
/// line with `until` appears; returns the time each phase marker was first seen.
fn follow(
    vm: &VmHandle,
    boot: u32,
    t0: Instant,
    until: &str,
    timeout: Duration,
    seen: &mut Vec<(String, Duration)>,
) -> Result<()> {
    let b = vm.wait_boot(boot, timeout)?;
    let end = Instant::now() + timeout;
    let mut next = 0;
    loop {
        for l in b.console().lines_from(next) {
            next = l.seq + 1;
            let t = l.text.trim();
            // `AGENT-PHASE <phase> start` lines are noise here; `AGENT-PHASE start ok` is not.
            if SHOWN.iter().any(|m| t.contains(m))
                && !(t.contains("AGENT-PHASE") && t.ends_with(" start"))
            {
                println!("         {:>7.2}s  {t}", t0.elapsed().as_secs_f64());
                for (_, marker) in PHASES {
                    if t.contains(marker) && !seen.iter().any(|(m, _)| m == marker) {
                        seen.push((marker.to_string(), t0.elapsed()));
                    }
                }
            }
            if t.contains(until) {
                return Ok(());
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

/// Runs the demo; everything it made is torn down when it returns.
pub fn run(art: &Artifacts, opts: &LeaseDemoOptions) -> Result<()> {
    let t0 = Instant::now();
    let timeout = Duration::from_secs(opts.timeout_secs);
    let tenant_os = art.dir.join("boot/tenant-initrd.cpio.gz");
    if !tenant_os.exists() {
        bail!(
            "{} is missing: run scripts/lab-prepare.sh",
            tenant_os.display()
        );
    }
    let disk = crate::tenant::helpers::TempDisk::create("lab-demo-disk", 256 << 20)?;
    let mut spec = VmSpec::new(VM, MAC);
    spec.disks = vec![disk.0.clone()];
    // A software TPM 2.0 (swtpm): the agent seals its host root to it (root=tpm).
    spec.tpm = Some(disk.0.with_extension("tpm"));
    if opts.uefi {
        spec.firmware = Firmware::Uefi;
        spec.nic_rom = NicRom::FirmwareOnly;
    }
    step(
        t0,
        "starting the lab: data-centre namespace with bridge br0, RA responder, Wake-on-LAN listener; the Lease Manager (DHCP, TFTP, HTTP boot, HTTPS API); the tenant's gateway namespace 10.77.0.2",
    );
    let bins = Bins::locate()?;
    let (w, vm) = World::build_with(
        bins,
        Some(VmServer {
            art: art.clone(),
            spec,
        }),
    )?;
    let vm = vm.context("no VM")?;
    let tunnel = if opts.ipsec { "ipsec" } else { "wireguard" };
    if opts.ipsec {
        w.use_ipsec()?;
    }
    println!(
        "         logs in {}; server {VM}: MAC {MAC}, 256 MiB virtio disk, TPM 2.0 (swtpm), powered off",
        w.lab.log_dir().display()
    );
    step(t0, "operator: lease-manager server list");
    indent(&w.lm.console(&["server", "list"])?);

    step(
        t0,
        "tenant: procurement-organizer images seal (the lab's tenant test OS: Debian kernel + tenant-init)",
    );
    let sealed = w.po.run(&[
        "images",
        "seal",
        "--kernel",
        &art.kernel().display().to_string(),
        "--initramfs",
        &tenant_os.display().to_string(),
        "--cmdline",
        "console=ttyS0 panic=-1",
    ])?;
    indent(&sealed);
    let image = w.po.json(&["images", "list"])?[0]["id"]
        .as_str()
        .context("no sealed image")?
        .to_string();

    step(
        t0,
        if opts.ipsec {
            "tenant: procurement-organizer gateway run (IPsec: strongSwan's charon with kernel-libipsec, key service, image store)"
        } else {
            "tenant: procurement-organizer gateway run (WireGuard, key service, image store)"
        },
    );
    let gw = w.start_gateway("gateway")?;
    if let Some(l) = gw
        .lines_from(0)
        .iter()
        .find(|l| l.text.contains("gateway ready"))
    {
        indent(l.text.trim());
    }

    step(
        t0,
        &format!(
            "tenant: procurement-organizer request --count 1 --image {image} --tunnel {tunnel} --duration 20m"
        ),
    );
    let req = w.po.json(&[
        "request",
        "--count",
        "1",
        "--role",
        "demo",
        "--image",
        &image,
        "--tunnel",
        tunnel,
        "--duration",
        "20m",
    ])?;
    let lease = req["answer"]["lease"]["id"]
        .as_str()
        .with_context(|| format!("no lease id in the organizer's answer: {req}"))?
        .to_string();
    indent(&format!(
        "granted {} of 1: lease {lease}, state {}, tunnel {tunnel} through {}",
        req["answer"]["granted"],
        req["answer"]["lease"]["state"].as_str().unwrap_or("?"),
        req["answer"]["lease"]["gateway"]["register_url"]
            .as_str()
            .unwrap_or("?")
    ));
    let requested = t0.elapsed();

    step(
        t0,
        &format!(
            "the lease {lease} live: wake, PXE, agent, tunnel, image, start-up key, kexec (server console)"
        ),
    );
    let mut seen = Vec::new();
    let up = format!("TENANT-OS-UP lease={lease}");
    if let Err(e) = follow(&vm, 1, t0, &up, timeout, &mut seen) {
        eprintln!("{}", w.lab.dump(60));
        return Err(e);
    }
    step(t0, "phase timeline (request -> tenant OS):");
    let mut last = requested;
    for (label, marker) in PHASES {
        if let Some((_, at)) = seen.iter().find(|(m, _)| m == marker) {
            println!(
                "         {label:<40} {:>7.2} s",
                at.saturating_sub(last).as_secs_f64()
            );
            last = *at;
        }
    }
    println!(
        "         {:<40} {:>7.2} s",
        "request -> tenant OS marker",
        last.saturating_sub(requested).as_secs_f64()
    );

    step(t0, &format!("tenant: procurement-organizer status {lease}"));
    indent(&w.po.run(&["status", &lease])?);

    let before = vm.boots();
    step(
        t0,
        &format!("tenant: procurement-organizer release {lease}"),
    );
    indent(&w.po.run(&["release", &lease])?);
    step(
        t0,
        "the tenant OS still runs and no agent hears the release: the LM power-cycles the server through its BMC (here the lab's virtual one) into the agent, which destroys the start-up key and wipes",
    );
    if let Err(e) = follow(&vm, before + 1, t0, "AGENT-WIPED", timeout, &mut Vec::new()) {
        eprintln!("{}", w.lab.dump(60));
        return Err(e);
    }
    w.lm.wait_server(VM, timeout, |v| v.state.name() == "idle")?;
    step(
        t0,
        "operator: lease-manager server list; lease-manager lease show",
    );
    indent(&w.lm.console(&["server", "list"])?);
    indent(&w.lm.console(&["lease", "show", &lease])?);

    step(
        t0,
        "done: tearing the lab down (VM, gateway, Lease Manager, namespaces)",
    );
    drop(gw);
    drop(w);
    println!("demo finished in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}
