//! The tenant test OS in a real guest: the pinned Debian kernel booted straight into
//! `tenant-initrd.cpio.gz` (what the agent will kexec into, with ` tenant.lease=<id>`
//! appended) prints `TENANT-OS-UP lease=<id>` on the console; with `tenant.poweroff` it powers
//! the machine off by itself, without it it stays up. Needs root, QEMU and the kernel and
//! tenant image of `scripts/lab-prepare.sh` (`<lab>/boot/vmlinuz`,
//! `<lab>/boot/tenant-initrd.cpio.gz`; `<lab>` is `$LAB_ARTIFACTS` or `target/lab`); enabled
//! with `--features lab/e2e`. The lab powers the VMs off and removes its namespace on drop.
#![cfg(feature = "e2e")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;
use common::pid_gone;

use lab::{BootFrom, Lab, LabSpec, MacAddr, VmHandle, VmSpec, netns};

const MARKER_TIMEOUT: Duration = Duration::from_secs(90);

/// The pinned kernel and the tenant image, or a panic saying how to make them.
fn tenant_artifacts() -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    let dir = std::env::var_os("LAB_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/lab"));
    let kernel = dir.join("boot/vmlinuz");
    let initrd = dir.join("boot/tenant-initrd.cpio.gz");
    for p in [&kernel, &initrd] {
        assert!(
            p.exists(),
            "lab artifact {} is missing: run scripts/lab-prepare.sh first",
            p.display()
        );
    }
    (kernel, initrd)
}

fn lab(prefix: &str) -> Lab {
    Lab::start(LabSpec {
        prefix: prefix.into(),
        ra: false,
        wol: false,
        ..LabSpec::default()
    })
    .expect("lab")
}

fn tenant_vm(lab: &Lab, name: &str, last: u8, append: &str) -> VmHandle {
    let (kernel, initrd) = tenant_artifacts();
    let mut spec = VmSpec::new(name, MacAddr([0x52, 0x54, 0x00, 0x77, 0x05, last]));
    spec.memory_mb = 512;
    spec.boot = BootFrom::Kernel {
        kernel,
        initrd: Some(initrd),
        append: append.to_owned(),
    };
    lab.register_vm(spec).expect("register vm")
}

/// The console lines of the VM's latest boot.
fn console(vm: &VmHandle) -> Vec<String> {
    vm.current()
        .expect("boot")
        .console()
        .lines_from(0)
        .into_iter()
        .map(|l| l.text)
        .collect()
}

/// The first complete console line containing `text`, waiting up to 10 s for it (a marker
/// also matches a line still being written, so the line list can lag behind it).
fn complete_line(vm: &VmHandle, text: &str) -> String {
    let t = Instant::now();
    loop {
        if let Some(line) = console(vm).into_iter().find(|l| l.contains(text)) {
            return line;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no complete line with {text:?}:\n{}",
            console(vm).join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the report; returns when the marker showed (since QEMU started), the UP line and
/// the CMDLINE line.
fn wait_report(vm: &VmHandle, up: &str) -> (Duration, String, String) {
    let seen = vm.wait_for(up, MARKER_TIMEOUT).expect("TENANT-OS-UP");
    let up = complete_line(vm, "TENANT-OS-UP ");
    let cmdline = complete_line(vm, "TENANT-OS-CMDLINE ");
    (seen.at, up, cmdline)
}

#[test]
fn tenant_os_reports_its_lease_and_powers_off() {
    let lab = lab("lt");
    let ns = lab.netns().name().to_owned();
    let vm = tenant_vm(
        &lab,
        "tenant0",
        1,
        "console=ttyS0 panic=-1 tenant.lease=l-e2e-test tenant.poweroff",
    );
    let t = Instant::now();
    vm.power_on().expect("power on");
    let (at, up, cmdline) = wait_report(&vm, "TENANT-OS-UP lease=l-e2e-test");
    eprintln!(
        "power-on -> TENANT-OS-UP: {:?} (QEMU start -> marker {at:?}); {up}",
        t.elapsed()
    );
    let boot = vm.current().expect("boot");
    assert!(up.contains(" kernel=6.1."), "{up}");
    assert!(!up.contains("uptime_s=?"), "{up}");
    assert!(
        cmdline.ends_with("tenant.lease=l-e2e-test tenant.poweroff"),
        "{cmdline}"
    );

    // It powers off by itself: QEMU exits (-no-reboot), cleanly, without a kernel panic.
    let status = boot.console().wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "QEMU still running or failed ({status:?}) after the report:\n{}",
        console(&vm).join("\n")
    );
    eprintln!("power-on -> QEMU exited: {:?}", t.elapsed());
    let text = console(&vm);
    assert!(
        text.iter().any(|l| l.contains("reboot: Power down")),
        "{}",
        text.join("\n")
    );
    assert!(
        !text.iter().any(|l| l.contains("Kernel panic")),
        "{}",
        text.join("\n")
    );
    let pid = boot.console().pid();
    drop(boot);
    drop(vm);
    drop(lab);
    assert!(pid_gone(pid));
    assert!(!netns::exists(&ns).unwrap(), "{ns} left behind");
}

#[test]
fn tenant_os_without_poweroff_stays_up() {
    let lab = lab("lu");
    let ns = lab.netns().name().to_owned();
    let vm = tenant_vm(&lab, "tenant1", 2, "console=ttyS0 panic=-1 quiet");
    vm.power_on().expect("power on");
    let (at, up, cmdline) = wait_report(&vm, "TENANT-OS-UP lease=none");
    assert!(
        cmdline.ends_with("console=ttyS0 panic=-1 quiet"),
        "{cmdline}"
    );
    eprintln!("QEMU start -> marker {at:?}; {up}");
    // PID 1 must not exit (the kernel would panic, and with panic=-1 reboot: QEMU would exit).
    let boot = vm.current().expect("boot");
    assert!(
        boot.console().wait_exit(Duration::from_secs(5)).is_none(),
        "the tenant OS did not stay up:\n{}",
        console(&vm).join("\n")
    );
    assert!(!console(&vm).iter().any(|l| l.contains("Kernel panic")));
    let pid = boot.console().pid();
    drop(boot);
    drop(vm);
    drop(lab);
    assert!(pid_gone(pid), "QEMU {pid} survived the lab");
    assert!(!netns::exists(&ns).unwrap(), "{ns} left behind");
}
