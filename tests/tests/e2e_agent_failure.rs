//! The agent's failure policy in a real guest: booted straight into our kernel and initramfs on
//! a segment where nothing answers DHCP, it retries with backoff, reports each failure on the
//! console, and powers the machine off when its deadline (`lm.poweroff`) passes, instead of
//! hanging or letting the kernel panic. Needs root, QEMU and `scripts/lab-prepare.sh`; enabled
//! with `--features lab/e2e`.
#![cfg(feature = "e2e")]

use std::time::Duration;

use lab::{Artifacts, BootFrom, Lab, LabSpec, MacAddr, VmSpec};

#[test]
fn agent_without_a_network_gives_up_and_powers_off() {
    let art = Artifacts::locate().expect("artifacts");
    let lab = Lab::start(LabSpec::default()).expect("lab");
    let mac = MacAddr([0x52, 0x54, 0x00, 0x77, 0x04, 0x01]);
    let mut spec = VmSpec::new("lonely", mac);
    spec.boot = BootFrom::Kernel {
        kernel: art.kernel(),
        initrd: Some(art.initrd()),
        append: format!(
            "console=ttyS0,115200 panic=-1 quiet lm.url=https://10.77.0.1:8443 lm.boot=00000000000000aa lm.mac={mac} lm.poweroff=20"
        ),
    };
    let vm = lab.register_vm(spec).expect("vm");
    vm.power_on().expect("power on");
    vm.wait_for("AGENT-PHASE dhcp start", Duration::from_secs(60))
        .expect("agent reached DHCP");
    vm.wait_for("AGENT-PHASE dhcp fail", Duration::from_secs(40))
        .expect("DHCP failure reported");
    let off = vm
        .wait_for("AGENT-POWEROFF", Duration::from_secs(60))
        .expect("agent powered off");
    assert!(off.text.contains("AGENT-POWEROFF"), "{}", off.text);
    // QEMU exits when the guest powers off (-no-reboot); the kernel did not panic.
    let boot = vm.current().expect("boot");
    let t = std::time::Instant::now();
    while boot.is_running() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !boot.is_running(),
        "the VM is still running after AGENT-POWEROFF"
    );
    let console: Vec<String> = boot
        .console()
        .lines_from(0)
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert!(
        !console.iter().any(|l| l.contains("Kernel panic")),
        "{}",
        console.join("\n")
    );
    assert!(
        console.iter().any(|l| l.contains("reboot: Power down")),
        "{}",
        console.join("\n")
    );
}
