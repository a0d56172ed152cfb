//! A lab VM with a software TPM 2.0 (`VmSpec::tpm`): the pinned Debian kernel, booted straight
//! into the tenant test OS (`tenant.poweroff`: it powers off after its report), finds the TPM
//! on the TIS interface (`tpm_tis MSFT0101:00: 2.0 TPM ...` on the console); QEMU exits
//! cleanly and its swtpm is gone. A second boot with the same state folder finds the same TPM:
//! the owner storage primary key the host probe derives from the folder is the same after
//! boot 1 and after boot 2, and differs for a fresh folder. Needs root, QEMU, swtpm and the
//! kernel and tenant image of `scripts/lab-prepare.sh` (`<lab>/boot/vmlinuz`,
//! `<lab>/boot/tenant-initrd.cpio.gz`; `<lab>` is `$LAB_ARTIFACTS` or `target/lab`); enabled
//! with `--features lab/e2e`. The lab powers the VM off and removes its namespace on drop.
#![cfg(feature = "e2e")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;
use common::pid_gone;

use lab::{BootFrom, Lab, LabSpec, MacAddr, VmHandle, VmSpec, netns, tpm_probe};

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

fn console(vm: &VmHandle, boot: u32) -> Vec<String> {
    vm.boot(boot)
        .expect("boot")
        .console()
        .lines_from(0)
        .into_iter()
        .map(|l| l.text)
        .collect()
}

/// Powers the VM on, waits for the tenant OS's report and the power-off; checks the TPM line,
/// QEMU's clean exit and that swtpm is gone. Returns the TPM line.
fn boot_once(vm: &VmHandle, n: u32) -> String {
    let t = Instant::now();
    vm.power_on().expect("power on");
    let run = vm.wait_boot(n, Duration::from_secs(5)).expect("boot");
    let tpm = run.tpm().expect("the VM has a swtpm");
    let (qemu_pid, tpm_pid) = (run.console().pid(), tpm.pid());
    assert!(
        tpm.log_path()
            .is_some_and(|p| p.ends_with(format!("tpm0.boot{n}.swtpm.log"))),
        "{:?}",
        tpm.log_path()
    );
    let found = vm
        .wait_marker(n, "2.0 TPM (device-id", MARKER_TIMEOUT)
        .expect("the kernel finds the TPM");
    vm.wait_marker(n, "TENANT-OS-UP lease=none", MARKER_TIMEOUT)
        .expect("TENANT-OS-UP");
    let status = run.console().wait_exit(Duration::from_secs(30));
    let text = console(vm, n);
    assert!(
        status.is_some_and(|s| s.success()),
        "QEMU still running or failed ({status:?}):\n{}",
        text.join("\n")
    );
    assert!(
        text.iter().any(|l| l.contains("reboot: Power down")),
        "{}",
        text.join("\n")
    );
    assert!(
        !text
            .iter()
            .any(|l| l.contains("Kernel panic") || l.to_lowercase().contains("tpm error")),
        "{}",
        text.join("\n")
    );
    // swtpm ends by itself when QEMU disconnects (--terminate); the lab reaps it
    let tpm_status = tpm.wait_exit(Duration::from_secs(10));
    assert!(
        tpm_status.is_some_and(|s| s.success()),
        "swtpm {tpm_pid}: {tpm_status:?}\n{}",
        tpm.dump(20)
    );
    assert!(pid_gone(qemu_pid) && pid_gone(tpm_pid));
    assert!(!vm.spec().tpm_socket().expect("socket").exists());
    eprintln!(
        "boot {n}: power-on -> QEMU and swtpm gone {:?}; TPM found at {:?}: {}",
        t.elapsed(),
        found.at,
        found.text
    );
    found.text
}

#[test]
fn vm_finds_its_tpm_and_keeps_it_across_boots() {
    let t = Instant::now();
    let (kernel, initrd) = tenant_artifacts();
    let lab = Lab::start(LabSpec {
        prefix: "lp".into(),
        ra: false,
        wol: false,
        ..LabSpec::default()
    })
    .expect("lab");
    let ns = lab.netns().name().to_owned();
    let state = lab.log_dir().join("tpm0-state");
    let mut spec = VmSpec::new("tpm0", MacAddr([0x52, 0x54, 0x00, 0x77, 0x06, 0x01]));
    spec.memory_mb = 512;
    spec.boot = BootFrom::Kernel {
        kernel,
        initrd: Some(initrd),
        append: "console=ttyS0 panic=-1 tenant.poweroff".into(),
    };
    spec.tpm = Some(state.clone());
    let vm = lab.register_vm(spec.clone()).expect("register vm");
    // one TPM per VM: a second VM on the same state folder is refused
    let mut twin = spec.clone();
    twin.name = "tpm0-twin".into();
    twin.mac = MacAddr([0x52, 0x54, 0x00, 0x77, 0x06, 0x02]);
    twin.tap = None;
    let e = lab.register_vm(twin).unwrap_err().to_string();
    assert!(e.contains("belongs to VM tpm0 already"), "{e}");
    assert!(!state.exists());

    let line1 = boot_once(&vm, 1);
    assert!(line1.contains("tpm_tis MSFT0101:00: 2.0 TPM"), "{line1}");
    let permall = state.join("tpm2-00.permall");
    assert!(permall.exists(), "no TPM state after boot 1");
    let probe_dir = lab.log_dir().to_owned();
    let key1 = tpm_probe::owner_primary_public(&state, &probe_dir).expect("probe after boot 1");

    let line2 = boot_once(&vm, 2);
    assert!(line2.contains("tpm_tis MSFT0101:00: 2.0 TPM"), "{line2}");
    let key2 = tpm_probe::owner_primary_public(&state, &probe_dir).expect("probe after boot 2");
    assert_eq!(key1, key2, "the TPM's owner seed changed between boots");
    let other = tpm_probe::owner_primary_public(&lab.log_dir().join("fresh-tpm"), &probe_dir)
        .expect("probe of a fresh TPM");
    assert_ne!(key1, other, "a fresh state folder gave the same TPM");
    assert_eq!(vm.boots(), 2);

    drop(vm);
    drop(lab);
    assert!(!netns::exists(&ns).unwrap(), "{ns} left behind");
    eprintln!("TPM VM test took {:?}", t.elapsed());
}
