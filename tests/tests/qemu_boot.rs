//! QEMU tests (root, TCG): a magic packet powers on a registered SeaBIOS VM whose serial
//! console (SeaBIOS and iPXE banners via sercon) is captured and awaited; repeats are ignored
//! while it runs; a powered-off VM can be woken again; a UEFI VM prints iPXE's banner on the
//! serial port; direct kernel boot works (iPXE's Linux-kernel image from Debian's `ipxe`).
//! Every test checks that its namespace and QEMU are gone afterwards.

use std::time::{Duration, Instant};

mod common;
use common::pid_gone;

use lab::netns;
use lab::wol_listener;
use lab::{BootFrom, Firmware, Lab, LabSpec, MacAddr, Vm, VmSpec, WakeOutcome, WakeVia};

const MARKER_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn wake_powers_on_a_bios_vm_once_and_again_after_power_off() {
    let t0 = Instant::now();
    let lab = Lab::start(LabSpec {
        prefix: "lq".into(),
        ..LabSpec::default()
    })
    .unwrap();
    let name = lab.netns().name().to_owned();
    let mac = MacAddr([0x52, 0x54, 0x00, 0x77, 0x20, 0x01]);
    let vm = lab.register_vm(VmSpec::new("vm0", mac)).unwrap();
    assert_eq!(vm.spec().tap.as_deref(), Some("tap0"));

    let t = Instant::now();
    wol_listener::send_udp(lab.netns(), "br0", mac, 9).unwrap();
    let banner = vm
        .wait_marker(1, "SeaBIOS (version", MARKER_TIMEOUT)
        .unwrap();
    eprintln!(
        "wake -> SeaBIOS banner: {:?} (console t={:?})",
        t.elapsed(),
        banner.at
    );
    // SMBIOS reached the firmware (markers also match unterminated lines, so await the UUID)
    let uuid = format!("Machine UUID {}", vm.spec().smbios_uuid);
    vm.wait_marker(1, &uuid, MARKER_TIMEOUT).unwrap();
    let ipxe = vm.wait_marker(1, "iPXE", MARKER_TIMEOUT).unwrap();
    eprintln!("wake -> iPXE: {:?} ({})", t.elapsed(), ipxe.text);
    let link = vm
        .wait_marker(1, "net0: 52:54:00:77:20:01", MARKER_TIMEOUT)
        .unwrap();
    eprintln!("wake -> iPXE net0 open: {:?}", t.elapsed());
    assert!(link.seq > ipxe.seq);

    // the 0x0842 copy of the same wake is ignored while QEMU runs
    wol_listener::send_ethertype(lab.netns(), "br0", mac).unwrap();
    let wakes = lab.wait_wakes(2, Duration::from_secs(5)).unwrap();
    assert_eq!(
        wakes[0].outcome,
        WakeOutcome::Started {
            vm: "vm0".into(),
            boot: 1
        }
    );
    assert_eq!(wakes[0].via, WakeVia::Udp { port: 9 });
    assert_eq!(
        wakes[1].outcome,
        WakeOutcome::AlreadyRunning { vm: "vm0".into() }
    );
    assert_eq!(vm.boots(), 1);

    let first = vm.boot(1).unwrap();
    let first_pid = first.console().pid();
    let log = first.console().log_path().unwrap().to_owned();
    assert_eq!(log, lab.log_dir().join("vm0.boot1.log"));
    vm.power_off();
    assert!(!vm.is_running() && pid_gone(first_pid));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("| SeaBIOS (version"), "console log: {text}");

    // powered off: the next wake starts boot 2 with its own console
    let t = Instant::now();
    wol_listener::send_ethertype(lab.netns(), "br0", mac).unwrap();
    vm.wait_marker(2, "SeaBIOS (version", MARKER_TIMEOUT)
        .unwrap();
    eprintln!("second wake -> SeaBIOS banner: {:?}", t.elapsed());
    assert_eq!(
        lab.wait_wakes(3, Duration::from_secs(5)).unwrap()[2].outcome,
        WakeOutcome::Started {
            vm: "vm0".into(),
            boot: 2
        }
    );
    let second_pid = vm.current().unwrap().console().pid();
    let wol_log = std::fs::read_to_string(lab.log_dir().join("wol.log")).unwrap();
    assert_eq!(wol_log.lines().count(), 3, "{wol_log}");
    assert!(
        wol_log
            .lines()
            .nth(1)
            .unwrap()
            .ends_with("EtherType -> AlreadyRunning { vm: \"vm0\" }"),
        "{wol_log}"
    );
    assert!(lab.dump(5).contains("vm0#2"));

    drop(first);
    drop(lab);
    assert!(pid_gone(second_pid), "QEMU {second_pid} survived the lab");
    assert!(!netns::exists(&name).unwrap(), "{name} left behind");
    eprintln!("BIOS wake test took {:?}", t0.elapsed());
}

#[test]
fn uefi_vm_prints_ipxe_banner_on_serial() {
    let t = Instant::now();
    let lab = Lab::start(LabSpec {
        prefix: "le".into(),
        ..LabSpec::default()
    })
    .unwrap();
    let name = lab.netns().name().to_owned();
    let mut spec = VmSpec::new("uefi0", MacAddr([0x52, 0x54, 0x00, 0x77, 0x30, 0x01]));
    spec.firmware = Firmware::Uefi;
    let vm = lab.register_vm(spec).unwrap();
    vm.power_on().unwrap();
    let line = vm.wait_marker(1, "iPXE 1.", MARKER_TIMEOUT).unwrap();
    eprintln!(
        "UEFI power-on -> iPXE banner: {:?} (console t={:?})",
        t.elapsed(),
        line.at
    );
    assert!(lab.log_dir().join("uefi0.OVMF_VARS.fd").exists());
    let pid = vm.current().unwrap().console().pid();
    drop(vm);
    drop(lab);
    assert!(pid_gone(pid));
    assert!(!netns::exists(&name).unwrap(), "{name} left behind");
}

#[test]
fn direct_kernel_boot_without_network() {
    let t = Instant::now();
    let dir = std::env::temp_dir().join(format!("lab-kboot-{}", std::process::id()));
    let mut spec = VmSpec::new("kboot", MacAddr([0x52, 0x54, 0x00, 0x77, 0x40, 0x01]));
    spec.boot = BootFrom::Kernel {
        kernel: "/boot/ipxe.lkrn".into(),
        initrd: None,
        append: String::new(),
    };
    spec.log_dir = Some(dir.clone());
    let vm = Vm::start(&spec, None, 1).unwrap();
    let line = vm.wait_for("iPXE 1.", MARKER_TIMEOUT).unwrap();
    eprintln!("direct kernel boot -> iPXE banner: {:?}", line.at);
    assert!(
        vm.console()
            .lines_from(0)
            .iter()
            .all(|l| !l.text.contains("net0")),
        "no NIC expected"
    );
    let pid = vm.console().pid();
    drop(vm);
    assert!(pid_gone(pid));
    assert!(
        std::fs::read_to_string(dir.join("kboot.boot1.log"))
            .unwrap()
            .contains("iPXE 1.")
    );
    std::fs::remove_dir_all(&dir).unwrap();
    eprintln!("kernel boot test took {:?}", t.elapsed());
}
