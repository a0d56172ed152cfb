//! swtpm argument building, path checks and `/proc/net/unix` reading (pure); the lifecycle of
//! a real swtpm (no root needed): listens, is killed by PID, leaves no socket; a Vm with a TPM
//! loses QEMU and swtpm on power off; the host probe tells TPM state folders apart. The IO
//! tests are skipped with a message when swtpm (or QEMU's `/boot/ipxe.lkrn`) is missing.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::qemu::{BootFrom, Vm, VmSpec};
use crate::tpm_probe;
use lm_api::MacAddr;

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lab-swtpm-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn have_swtpm() -> bool {
    let ok = Path::new(SWTPM).exists();
    if !ok {
        eprintln!("SKIPPED: {SWTPM} missing (apt-get install swtpm swtpm-tools)");
    }
    ok
}

/// Gone or a zombie.
fn pid_gone(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    matches!(
        stat.rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next()),
        None | Some("Z")
    )
}

#[test]
fn swtpm_command_line() {
    assert_eq!(
        swtpm_args(Path::new("/s/tpm"), Path::new("/l/vm1.swtpm.sock")),
        [
            "socket",
            "--tpm2",
            "--tpmstate",
            "dir=/s/tpm",
            "--ctrl",
            "type=unixio,path=/l/vm1.swtpm.sock",
            "--terminate",
        ]
    );
}

#[test]
fn paths_that_options_would_split_are_refused() {
    let sock = Path::new("/l/vm1.swtpm.sock");
    check_paths("vm1", Path::new("/s/tpm state=1"), sock).unwrap();
    for bad in ["/s/a,b", "/s/a,,b", "", "/s/a\nb", "/s/,path=/etc"] {
        let e = check_paths("vm1", Path::new(bad), sock).unwrap_err();
        assert!(e.to_string().contains("VM vm1: TPM state folder"), "{e}");
    }
    let e = check_paths("vm1", Path::new("/s"), Path::new("/l,x/vm1.swtpm.sock")).unwrap_err();
    assert!(e.to_string().contains("control socket"), "{e}");
    let long = PathBuf::from(format!("/{}/vm1.swtpm.sock", "d".repeat(100)));
    let e = check_paths("vm1", Path::new("/s"), &long).unwrap_err();
    assert!(
        e.to_string().contains("more than a Unix socket address"),
        "{e}"
    );
    use std::os::unix::ffi::OsStrExt;
    let not_utf8 = Path::new(std::ffi::OsStr::from_bytes(b"/s/\xff"));
    assert!(check_paths("vm1", not_utf8, sock).is_err());
}

#[test]
fn proc_net_unix_listening_sockets() {
    let table = "Num       RefCount Protocol Flags    Type St Inode Path\n\
        000000006aa72697: 00000002 00000000 00010000 0001 01 145940 /tmp/a/vm1.swtpm.sock\n\
        000000006d2d33aa: 00000003 00000000 00000000 0001 03   145 /tmp/a/connected.sock\n\
        0000000000000000: 00000002 00000000 00010000 0001 01    17 /tmp/a/with space.sock\n\
        garbage\n\
        00: 2 0 zz 1 1 9 /tmp/a/bad-flags\n\
        0000000000000001: 00000002 00000000 00010000 0001 01 145941\n";
    assert!(unix_listening(table, Path::new("/tmp/a/vm1.swtpm.sock")));
    assert!(unix_listening(table, Path::new("/tmp/a/with space.sock")));
    assert!(!unix_listening(table, Path::new("/tmp/a/connected.sock")));
    assert!(!unix_listening(table, Path::new("/tmp/a/bad-flags")));
    assert!(!unix_listening(table, Path::new("/tmp/a/vm1.swtpm")));
    assert!(!unix_listening(table, Path::new("")));
    assert!(!unix_listening("", Path::new("/x")));
}

#[test]
fn swtpm_listens_and_is_killed_by_pid() {
    if !have_swtpm() {
        return;
    }
    let d = scratch("life");
    let (state, sock) = (d.join("state"), d.join("vm1.swtpm.sock"));
    // a stale socket from an earlier run is replaced
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let p = start("vm1#1.swtpm", &state, &sock, &d.join("swtpm.log")).unwrap();
    let pid = p.pid();
    assert!(state.is_dir(), "state folder created");
    assert!(p.is_running() && !pid_gone(pid));
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/unix")).unwrap();
    assert!(unix_listening(&table, &sock));
    p.terminate();
    assert!(pid_gone(pid), "swtpm {pid} survived terminate");
    assert!(!sock.exists(), "swtpm left its socket behind");
    // a regular file where the socket goes is not removed
    std::fs::write(&sock, b"mine").unwrap();
    let e = start("vm1#2.swtpm", &state, &sock, &d.join("swtpm2.log")).unwrap_err();
    assert!(e.to_string().contains("is not a socket"), "{e}");
    assert_eq!(std::fs::read(&sock).unwrap(), b"mine");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn vm_with_tpm_loses_qemu_and_swtpm_on_power_off() {
    let kernel = PathBuf::from("/boot/ipxe.lkrn");
    if !have_swtpm() {
        return;
    }
    if !kernel.exists() {
        eprintln!(
            "SKIPPED: {} missing (Debian package ipxe)",
            kernel.display()
        );
        return;
    }
    let d = scratch("vm");
    let mut spec = VmSpec::new("tpmvm", MacAddr([0x52, 0x54, 0x00, 0x77, 0x41, 0x01]));
    spec.boot = BootFrom::Kernel {
        kernel,
        initrd: None,
        append: String::new(),
    };
    spec.memory_mb = 256;
    spec.log_dir = Some(d.clone());
    spec.tpm = Some(d.join("tpm"));
    let vm = Vm::start(&spec, None, 1).unwrap();
    let tpm = vm.tpm().expect("a swtpm");
    let (qemu_pid, tpm_pid) = (vm.console().pid(), tpm.pid());
    assert_eq!(
        tpm.log_path(),
        Some(d.join("tpmvm.boot1.swtpm.log").as_path())
    );
    // QEMU connected to swtpm (it exits at once when it cannot) and the firmware runs
    vm.wait_for("iPXE", Duration::from_secs(60)).unwrap();
    assert!(vm.is_running() && tpm.is_running());
    vm.power_off();
    assert!(pid_gone(qemu_pid), "QEMU {qemu_pid} survived power off");
    assert!(pid_gone(tpm_pid), "swtpm {tpm_pid} survived power off");
    assert!(!spec.tpm_socket().unwrap().exists());
    // TPM state was created through QEMU (SeaBIOS initialised the TPM)
    assert!(d.join("tpm/tpm2-00.permall").exists());
    drop(vm);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_state_folder_is_one_tpm() {
    if !have_swtpm() {
        return;
    }
    let d = scratch("probe");
    let (a, b) = (d.join("a"), d.join("b"));
    let a1 = tpm_probe::owner_primary_public(&a, &d).unwrap();
    let a2 = tpm_probe::owner_primary_public(&a, &d).unwrap();
    let b1 = tpm_probe::owner_primary_public(&b, &d).unwrap();
    // TPMT_PUBLIC of an ECC key: 26 bytes of template, then x and y of 32 bytes each
    assert_eq!(a1.len(), 26 - 4 + 2 * (2 + 32), "{a1:02x?}");
    assert_eq!(a1, a2, "same state folder, same owner seed");
    assert_ne!(a1, b1, "another folder is another TPM");
    std::fs::remove_dir_all(&d).unwrap();
}
