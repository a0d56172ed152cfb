//! `lab demo`: the project's main job as it stands: start the lab and the Lease Manager, add a
//! server, wake it over Wake-on-LAN, follow it PXE-booting the agent with each phase and its
//! duration, then show its hardware facts and boot timeline, and clean up. IO.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::lm::{Artifacts, LabLm, LmOptions};
use crate::qemu::{Firmware, NicRom, VmSpec};
use crate::{Lab, LabSpec, MacAddr};

/// Options of the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub uefi: bool,
    /// Seconds to wait for the agent before giving up.
    pub timeout_secs: u64,
}

fn step(t0: Instant, what: &str) {
    println!(
        "\x1b[1m[{:>6.2}s] {what}\x1b[0m",
        t0.elapsed().as_secs_f64()
    );
}

/// Runs the demo end to end; everything it made is torn down when it returns.
pub fn run(art: &Artifacts, opts: &DemoOptions) -> Result<()> {
    let t0 = Instant::now();
    step(
        t0,
        "starting the lab: network namespace, bridge br0 10.77.0.1/24, IPv6 RA responder, Wake-on-LAN listener",
    );
    let lab = Lab::start(LabSpec::default()).context("starting the lab")?;
    println!(
        "         netns {}, logs in {}",
        lab.netns().name(),
        lab.log_dir().display()
    );

    let mac = MacAddr([0x52, 0x54, 0x00, 0x77, 0x00, 0x01]);
    let mut spec = VmSpec::new("vm1", mac);
    // UEFI: no NIC ROM, so the firmware's own PXE client chain-loads iPXE over TFTP, like a
    // stock UEFI server; BIOS: QEMU's iPXE ROM, like a NIC flashed with iPXE.
    if opts.uefi {
        spec.firmware = Firmware::Uefi;
        spec.nic_rom = NicRom::FirmwareOnly;
    }
    let vm = lab.register_vm(spec)?;
    println!(
        "         lease server vm1: MAC {mac}, {:?} firmware, SMBIOS uuid {} (powered off until a magic packet arrives)",
        vm.spec().firmware,
        vm.spec().smbios_uuid
    );

    step(
        t0,
        "starting the Lease Manager (DHCP, TFTP, HTTP boot, HTTPS API) in the data-centre namespace",
    );
    let lm = LabLm::start(&lab, art, &LmOptions::default())?;

    step(
        t0,
        "operator: lease-manager server add vm1 --mac 52:54:00:77:00:01",
    );
    print!(
        "{}",
        lm.console(&["server", "add", "vm1", "--mac", &mac.to_string()])?
    );

    step(
        t0,
        "operator: lease-manager server wake vm1 --wait   (timeline streams below)",
    );
    let mut child = lm
        .command(&[
            "server",
            "wake",
            "vm1",
            "--wait",
            "--timeout",
            &opts.timeout_secs.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .context("running lease-manager server wake")?;
    let stdout = child.stdout.take().context("no stdout")?;
    for line in BufReader::new(stdout).lines() {
        println!("         {}", line?);
    }
    let status = child.wait()?;

    step(t0, "the agent's phases on vm1's serial console");
    if let Some(boot) = vm.current() {
        for l in boot.console().lines_from(0) {
            let t = &l.text;
            if t.contains("AGENT-PHASE")
                || t.contains("AGENT-READY")
                || t.contains("Lease Manager: booting")
            {
                println!("         {:>7.2}s  {}", l.at.as_secs_f64(), l.text.trim());
            }
        }
    }
    if !status.success() {
        eprintln!("{}", lab.dump(40));
        bail!("vm1 did not come up (lease-manager server wake exited with {status})");
    }

    step(t0, "operator: lease-manager server list");
    print!("{}", lm.console(&["server", "list"])?);

    step(
        t0,
        "done: tearing the lab down (VM, Lease Manager, namespace)",
    );
    drop(lm);
    drop(lab);
    println!("demo finished in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}
