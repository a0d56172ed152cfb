//! Unit tests of the QEMU argument builder and spec validation (with and without a TPM). No IO.

use super::*;

const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x77, 0x00, 0x01]);

fn spec() -> VmSpec {
    let mut s = VmSpec::new("vm1", MAC);
    s.tap = Some("tap0".into());
    s.log_dir = Some("/logs".into());
    s
}

#[test]
fn bios_network_boot_command_line() {
    let args = spec().qemu_args();
    let expected = [
        "-name",
        "guest=vm1",
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-machine",
        "q35",
        "-m",
        "1024",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-monitor",
        "none",
        "-no-reboot",
        "-fw_cfg",
        "name=etc/sercon-port,file=/logs/seabios-sercon-port.bin",
        "-netdev",
        "tap,id=n0,ifname=tap0,script=no,downscript=no",
        "-device",
        "virtio-net-pci,netdev=n0,mac=52:54:00:77:00:01,bootindex=1",
        "-smbios",
        "type=1,uuid=4c414230-0000-4000-8000-525400770001,serial=LAB-VM1",
        "-boot",
        "n",
    ];
    assert_eq!(args, expected);
    assert_eq!(spec().log_file(2), PathBuf::from("/logs/vm1.boot2.log"));
}

#[test]
fn uefi_uses_pflash_with_a_per_vm_vars_copy() {
    let mut s = spec();
    s.firmware = Firmware::Uefi;
    let args = s.qemu_args().join(" ");
    assert!(
        args.contains(
            "-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
         -drive if=pflash,format=raw,file=/logs/vm1.OVMF_VARS.fd"
        ),
        "{args}"
    );
    assert!(!args.contains("sercon"), "{args}");
}

#[test]
fn kernel_boot_disks_and_extra_args() {
    let mut s = spec();
    s.tap = None;
    s.boot = BootFrom::Kernel {
        kernel: "/k/vmlinuz".into(),
        initrd: Some("/k/initrd.gz".into()),
        append: "console=ttyS0 quiet panic=-1".into(),
    };
    s.disks = vec!["/d/a.qcow2".into(), "/d/b.img".into()];
    s.memory_mb = 512;
    s.extra_args = vec!["-device".into(), "tpm-tis,tpmdev=tpm0".into()];
    let a = s.qemu_args();
    let tail: Vec<&str> = a
        .iter()
        .map(String::as_str)
        .skip_while(|x| *x != "-nic")
        .collect();
    assert_eq!(
        tail,
        [
            "-nic",
            "none",
            "-smbios",
            "type=1,uuid=4c414230-0000-4000-8000-525400770001,serial=LAB-VM1",
            "-drive",
            "file=/d/a.qcow2,format=qcow2,if=virtio,index=0",
            "-drive",
            "file=/d/b.img,format=raw,if=virtio,index=1",
            "-kernel",
            "/k/vmlinuz",
            "-initrd",
            "/k/initrd.gz",
            "-append",
            "console=ttyS0 quiet panic=-1",
            "-device",
            "tpm-tis,tpmdev=tpm0",
        ]
    );
    assert!(a.windows(2).any(|w| w == ["-m", "512"]));
    assert!(!a.iter().any(|x| x.contains("bootindex")));
    s.validate().unwrap();
}

#[test]
fn commas_in_values_cannot_inject_options() {
    let mut s = spec();
    s.smbios_serial = "SN1,uuid=evil".into();
    s.log_dir = Some("/tmp/a,b".into());
    let a = s.qemu_args();
    assert!(a.contains(
        &"type=1,uuid=4c414230-0000-4000-8000-525400770001,serial=SN1,,uuid=evil".to_string()
    ));
    assert!(a.contains(&"name=etc/sercon-port,file=/tmp/a,,b/seabios-sercon-port.bin".to_string()));
}

#[test]
fn validation_rejects_what_would_break_files_or_boot() {
    for bad in ["", "../x", "a/b", ".hidden", "a b", "vm,1"] {
        let mut s = spec();
        s.name = bad.into();
        assert!(s.validate().is_err(), "{bad:?} accepted");
    }
    let mut s = spec();
    s.tap = None;
    assert!(s.validate().is_err(), "network boot without a NIC");
    let mut s = spec();
    s.mac = MacAddr([0x01, 0, 0x5e, 0, 0, 1]);
    assert!(s.validate().is_err(), "multicast MAC");
    let mut s = spec();
    s.memory_mb = 8;
    assert!(s.validate().is_err());
    spec().validate().unwrap();
}

#[test]
fn tpm_adds_a_tis_device_on_the_swtpm_socket() {
    assert!(spec().tpm.is_none());
    assert!(spec().tpm_socket().is_none());
    let plain = spec().qemu_args().join(" ");
    assert!(!plain.contains("tpm"), "{plain}");

    let mut s = spec();
    s.tpm = Some("/state/vm1-tpm".into());
    s.extra_args = vec!["-S".into()];
    s.validate().unwrap();
    assert_eq!(s.tpm_socket(), Some(PathBuf::from("/logs/vm1.swtpm.sock")));
    assert_eq!(
        s.tpm_log_file(3),
        PathBuf::from("/logs/vm1.boot3.swtpm.log")
    );
    let a = s.qemu_args();
    let tail: Vec<&str> = a
        .iter()
        .map(String::as_str)
        .skip_while(|x| *x != "-boot")
        .collect();
    assert_eq!(
        tail,
        [
            "-boot",
            "n",
            "-chardev",
            "socket,id=chrtpm,path=/logs/vm1.swtpm.sock",
            "-tpmdev",
            "emulator,id=tpm0,chardev=chrtpm",
            "-device",
            "tpm-tis,tpmdev=tpm0",
            "-S",
        ]
    );
}

#[test]
fn tpm_paths_options_would_split_are_refused() {
    for bad in ["/state/a,b", "/state/x,path=/etc/passwd", ""] {
        let mut s = spec();
        s.tpm = Some(bad.into());
        let e = s.validate().unwrap_err().to_string();
        assert!(e.starts_with("VM vm1: TPM state folder"), "{bad:?}: {e}");
    }
    // the socket lives in the log folder: a comma there is refused only with a TPM
    let mut s = spec();
    s.log_dir = Some("/tmp/a,b".into());
    s.validate().unwrap();
    s.tpm = Some("/state/t".into());
    let e = s.validate().unwrap_err().to_string();
    assert!(
        e.contains("TPM control socket \"/tmp/a,b/vm1.swtpm.sock\""),
        "{e}"
    );
    let mut s = spec();
    s.log_dir = Some(format!("/{}", "l".repeat(95)).into());
    s.tpm = Some("/state/t".into());
    let e = s.validate().unwrap_err().to_string();
    assert!(e.contains("use a shorter log folder or VM name"), "{e}");
}
