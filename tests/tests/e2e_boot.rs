//! End-to-end: the Lease Manager wakes a QEMU VM over Wake-on-LAN, the VM PXE-boots our
//! initramfs from our own DHCP/TFTP/HTTP, the agent reports its facts over HTTPS, and the
//! console shows them with the boot timeline. BIOS with an iPXE NIC ROM (straight to the HTTP
//! script) and UEFI with the firmware's own PXE (OVMF -> snponly.efi over TFTP -> iPXE -> HTTP). Needs root, QEMU and
//! `scripts/lab-prepare.sh`; enabled with `--features lab/e2e`.
#![cfg(feature = "e2e")]

use std::time::Duration;

use lab::{Artifacts, Firmware, Lab, LabLm, LabSpec, LmOptions, MacAddr, NicRom, VmSpec};
use lm_api::{EventKind, ServerView};

fn has(v: &ServerView, f: impl Fn(&EventKind) -> bool) -> bool {
    v.timeline.iter().any(|e| f(&e.kind))
}

fn boot_and_check(firmware: Firmware, nic_rom: NicRom, last: u8) {
    let art = Artifacts::locate().expect("artifacts");
    let lab = Lab::start(LabSpec::default()).expect("lab");
    let mac = MacAddr([0x52, 0x54, 0x00, 0x77, 0x01, last]);
    let mut spec = VmSpec::new("vm1", mac);
    spec.firmware = firmware;
    spec.nic_rom = nic_rom;
    spec.smbios_serial = format!("LAB-SERIAL-{last}");
    let vm = lab.register_vm(spec).expect("register vm");
    let lm = LabLm::start(&lab, &art, &LmOptions::default()).expect("lease manager");

    lm.console(&["server", "add", "vm1", "--mac", &mac.to_string()])
        .expect("server add");
    let listed: Vec<ServerView> = lm.console_json(&["server", "list"]).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state.name(), "idle");

    // The console's own follower: exits 0 only when the agent is up.
    let out = lm
        .console(&["server", "wake", "vm1", "--wait", "--timeout", "240"])
        .unwrap_or_else(|e| {
            panic!("wake --wait failed: {e}\n{}", lab.dump(60));
        });
    assert!(out.contains("agent-up"), "{out}");
    vm.wait_for("AGENT-READY server=vm1", Duration::from_secs(30))
        .expect("agent ready marker");

    let v = lm.show("vm1").expect("show");
    assert_eq!(v.state.name(), "agent-up");
    let facts = v.facts.clone().expect("facts");
    assert_eq!(
        facts.smbios.serial.as_deref(),
        Some(format!("LAB-SERIAL-{last}").as_str())
    );
    assert_eq!(
        facts.smbios.uuid.as_deref().map(str::to_lowercase),
        Some(vm.spec().smbios_uuid.to_lowercase())
    );
    assert!(facts.nics.iter().any(|n| n.mac == mac), "{facts:?}");
    assert!(facts.memory_bytes > 512 << 20, "{facts:?}");
    assert!(facts.cpu.logical >= 1);

    // The timeline tells the whole boot.
    assert!(
        has(&v, |k| matches!(k, EventKind::WakeSent { .. })),
        "{v:#?}"
    );
    assert!(
        has(&v, |k| matches!(k, EventKind::WakeConfirmed { .. })),
        "{v:#?}"
    );
    assert!(has(
        &v,
        |k| matches!(k, EventKind::Dhcp { message, reply: Some(r), .. } if message == "DISCOVER" && r == "OFFER")
    ));
    assert!(
        has(
            &v,
            |k| matches!(k, EventKind::Dhcp { client, reply: Some(r), .. } if client == "agent" && r == "ACK")
        ),
        "{v:#?}"
    );
    for suffix in [".ipxe", "/vmlinuz", "/initrd"] {
        assert!(
            has(
                &v,
                |k| matches!(k, EventKind::HttpFetch { path, status: 200, bytes } if path.ends_with(suffix) && *bytes > 0)
            ),
            "no HTTP fetch of {suffix}: {v:#?}"
        );
    }
    if nic_rom == NicRom::FirmwareOnly {
        assert!(
            has(
                &v,
                |k| matches!(k, EventKind::TftpFetch { file, ok: true, .. } if file.contains("snponly.efi"))
            ),
            "UEFI boot did not chain-load iPXE over TFTP: {v:#?}"
        );
    }
    assert!(
        has(&v, |k| matches!(k, EventKind::AgentHello { .. })),
        "{v:#?}"
    );

    // And the human view shows it.
    let human = lm.console(&["server", "show", "vm1"]).expect("show human");
    for want in [
        "agent-up",
        "Boot timeline",
        "wake-confirmed",
        "agent-hello",
        "LAB-SERIAL",
        "/vmlinuz",
    ] {
        assert!(human.contains(want), "missing {want:?} in:\n{human}");
    }
    // Exactly one magic packet burst woke exactly this VM.
    assert_eq!(vm.boots(), 1);
}

/// SeaBIOS with QEMU's iPXE NIC ROM: iPXE asks for its script over HTTP at once.
#[test]
fn bios_vm_pxe_boots_the_agent_and_reports_facts() {
    boot_and_check(Firmware::Bios, NicRom::Ipxe, 1);
}

/// OVMF with no NIC ROM: the firmware's own PXE client (arch 7) gets snponly.efi over TFTP,
/// which then asks for the HTTP script as iPXE, like a UEFI server with a stock NIC.
#[test]
fn uefi_vm_pxe_boots_through_tftp_chainload() {
    boot_and_check(Firmware::Uefi, NicRom::FirmwareOnly, 2);
}
