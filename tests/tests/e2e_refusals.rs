//! End-to-end refusals: a VM whose MAC is not expected gets no DHCP offer; TFTP requests that
//! try to leave the root are refused; a wake for a server that never answers ends in
//! `unreachable` after the retry budget. Needs root, QEMU and `scripts/lab-prepare.sh`;
//! enabled with `--features lab/e2e`.
#![cfg(feature = "e2e")]

use std::time::Duration;

use lab::{Artifacts, Lab, LabLm, LabSpec, LmOptions, MacAddr, VmSpec};
use lm_api::EventKind;

#[test]
fn unexpected_macs_get_no_offer() {
    let art = Artifacts::locate().expect("artifacts");
    let lab = Lab::start(LabSpec::default()).expect("lab");
    let stranger = MacAddr([0x52, 0x54, 0x00, 0x77, 0x02, 0x01]);
    let idle = MacAddr([0x52, 0x54, 0x00, 0x77, 0x02, 0x02]);
    let s = lab
        .register_vm(VmSpec::new("stranger", stranger))
        .expect("vm");
    let i = lab.register_vm(VmSpec::new("idle", idle)).expect("vm");
    let lm = LabLm::start(&lab, &art, &LmOptions::default()).expect("lm");
    lm.console(&["server", "add", "idle", "--mac", &idle.to_string()])
        .expect("add");

    // Both machines are switched on by hand: nobody asked the LM to boot them.
    s.power_on().expect("power on");
    i.power_on().expect("power on");
    let log = lm.process();
    log.wait_for(&format!("{stranger}"), Duration::from_secs(60))
        .expect("stranger's DISCOVER logged");
    log.wait_for(&format!("{idle}"), Duration::from_secs(60))
        .expect("idle server's DISCOVER logged");
    // iPXE retries DHCP for a while; give it several DISCOVERs, then check nothing was offered.
    let v = lm
        .wait_server("idle", Duration::from_secs(60), |v| {
            v.timeline
                .iter()
                .filter(
                    |e| matches!(&e.kind, EventKind::Dhcp { message, .. } if message == "DISCOVER"),
                )
                .count()
                >= 3
        })
        .expect("DISCOVERs recorded");
    assert_eq!(v.state.name(), "idle");
    for e in &v.timeline {
        if let EventKind::Dhcp { reply, .. } = &e.kind {
            assert!(reply.is_none(), "the idle server got an answer: {e:?}");
        }
    }
    let text: Vec<String> = log.lines_from(0).into_iter().map(|l| l.text).collect();
    let joined = text.join("\n");
    assert!(
        text.iter().any(|l| l.contains(&stranger.to_string())
            && l.contains("not in the Lease Manager's inventory")),
        "no log line says why the stranger was ignored:\n{joined}"
    );
    assert!(
        text.iter()
            .any(|l| l.contains(&idle.to_string()) && l.contains("not woken")),
        "no log line says why the idle server was ignored:\n{joined}"
    );
    assert!(!joined.contains("OFFER"), "an OFFER went out:\n{joined}");
    for vm in [&s, &i] {
        let boot = vm.current().expect("running");
        assert!(
            boot.console()
                .lines_from(0)
                .iter()
                .all(|l| !l.text.contains("AGENT-PHASE"))
        );
    }
}

#[test]
fn tftp_refuses_paths_outside_its_root() {
    let art = Artifacts::locate().expect("artifacts");
    let lab = Lab::start(LabSpec::default()).expect("lab");
    let lm = LabLm::start(&lab, &art, &LmOptions::default()).expect("lm");
    let fetch = |name: &str| {
        let out = lab
            .netns()
            .command("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download}",
            ])
            .arg(format!("tftp://10.77.0.1/{name}"))
            .output()
            .expect("curl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The real file is served (proves the client and server work)...
    let (ok, size, err) = fetch("undionly.kpxe");
    assert!(ok, "undionly.kpxe: {err}");
    assert!(size.parse::<u64>().unwrap_or(0) > 10_000, "{size}");
    // ...and nothing outside the root is.
    for bad in [
        "../../etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "/../../etc/passwd",
        "ipxe/../../../etc/passwd",
        "..\\..\\etc\\passwd",
        "//etc/passwd",
    ] {
        let (ok, size, err) = fetch(bad);
        assert!(!ok, "{bad:?} was served ({size} bytes)");
        assert!(!err.is_empty(), "{bad:?}");
    }
    let log: Vec<String> = lm
        .process()
        .lines_from(0)
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert!(
        log.iter().any(|l| l.contains("refused")),
        "no refusal logged:\n{}",
        log.join("\n")
    );
}

#[test]
fn wake_of_an_absent_server_ends_unreachable() {
    let art = Artifacts::locate().expect("artifacts");
    let lab = Lab::start(LabSpec::default()).expect("lab");
    let opts = LmOptions {
        wake_attempts: 3,
        wake_confirm_ms: 800,
        ..LmOptions::default()
    };
    let lm = LabLm::start(&lab, &art, &opts).expect("lm");
    let ghost = MacAddr([0x52, 0x54, 0x00, 0x77, 0x03, 0x01]);
    lm.console(&["server", "add", "ghost", "--mac", &ghost.to_string()])
        .expect("add");
    let err = lm
        .console(&["server", "wake", "ghost", "--wait", "--timeout", "30"])
        .expect_err("the wake cannot succeed");
    assert!(err.to_string().contains("unreachable"), "{err}");
    let v = lm.show("ghost").expect("show");
    assert_eq!(v.state.name(), "unreachable");
    let sent = v
        .timeline
        .iter()
        .filter(|e| matches!(e.kind, EventKind::WakeSent { .. }))
        .count();
    assert_eq!(sent, 3, "{v:#?}");
    assert!(
        v.timeline
            .iter()
            .any(|e| matches!(e.kind, EventKind::Unreachable { attempts: 3 }))
    );
    // The magic packets really went out on the bridge: UDP and EtherType 0x0842, three times.
    let seen = lab
        .wait_wakes(6, Duration::from_secs(5))
        .expect("magic packets on the bridge");
    assert!(seen.iter().all(|w| w.mac == ghost));
    // The gate is closed again: unreachable servers get no answers.
    assert_eq!(v.state.name(), "unreachable");
}
