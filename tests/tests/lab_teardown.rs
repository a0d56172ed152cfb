//! Lab lifecycle tests (root): processes started with `run_in_dc` run inside the DC namespace
//! with their output logged, and a panic while VMs and processes run still tears everything
//! down (QEMU and processes killed by PID, namespace deleted).

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod common;
use common::pid_gone;

use lab::netns;
use lab::{Lab, LabSpec, MacAddr, VmSpec};

#[test]
fn run_in_dc_sees_the_bridge_and_logs_to_the_run_folder() {
    let lab = Lab::start(LabSpec {
        prefix: "ld".into(),
        ..LabSpec::default()
    })
    .unwrap();
    let name = lab.netns().name().to_owned();
    let mut cmd = Command::new("ip");
    cmd.args(["addr", "show", "dev", "br0"]);
    let p = lab.run_in_dc("ipaddr", &cmd).unwrap();
    p.wait_for("inet 10.77.0.1/24", Duration::from_secs(10))
        .unwrap();
    p.wait_for("inet6 fd77::1/64", Duration::from_secs(10))
        .unwrap();
    p.wait_for("inet6 fe80::77:ff:fe00:1/64", Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        p.wait_exit(Duration::from_secs(10)).and_then(|s| s.code()),
        Some(0)
    );
    let log = std::fs::read_to_string(lab.log_dir().join("ipaddr.log")).unwrap();
    assert!(log.contains("| ") && log.contains("10.77.0.1/24"), "{log}");
    assert!(lab.run_in_dc("../escape", &cmd).is_err());
    assert_eq!(lab.processes().len(), 1);
    drop(lab);
    assert!(!netns::exists(&name).unwrap());
}

#[test]
fn a_panic_tears_down_vms_processes_and_the_namespace() {
    let seen = Mutex::new((String::new(), Vec::<u32>::new()));
    let result = std::panic::catch_unwind(|| {
        let lab = Lab::start(LabSpec {
            prefix: "lt".into(),
            dump_lines: 5,
            ..LabSpec::default()
        })
        .unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo sleeper up; exec sleep 300"]);
        let sleeper = lab.run_in_dc("sleeper", &cmd).unwrap();
        sleeper
            .wait_for("sleeper up", Duration::from_secs(10))
            .unwrap();
        let vm = lab
            .register_vm(VmSpec::new("vm0", MacAddr([0x52, 0x54, 0, 0x77, 0x50, 1])))
            .unwrap();
        vm.power_on().unwrap();
        vm.wait_marker(1, "SeaBIOS", Duration::from_secs(60))
            .unwrap();
        let qemu = vm.current().unwrap().console().pid();
        *seen.lock().unwrap() = (lab.netns().name().to_owned(), vec![sleeper.pid(), qemu]);
        panic!("scenario failed while the lab was up");
    });
    assert!(result.is_err());
    let t = Instant::now();
    let (name, pids) = seen.into_inner().unwrap();
    assert_eq!(pids.len(), 2);
    for pid in pids {
        assert!(pid_gone(pid), "pid {pid} survived the panic");
    }
    assert!(!netns::exists(&name).unwrap(), "{name} left behind");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "teardown happened during unwinding"
    );
}
