//! Crash safety (issue 3): the Lease Manager is killed with SIGKILL again and again while
//! simulated agents (fleet-sim, real HTTPS, no VMs) are enrolling and while their leases are
//! being released. After each restart every lease resumes: every agent ends enrolled and then
//! released, every lease ends, no server was ever in two leases, every server is idle again,
//! and the audit chain is intact.

#![cfg(feature = "e2e")]

use std::process::Stdio;
use std::time::{Duration, Instant};

use lab::Artifacts;
use lab::bench::fleet;

#[test]
fn leases_survive_sigkill_of_the_lease_manager() {
    let art = Artifacts::locate().expect("artifacts");
    let sim = art.bin_dir.join("fleet-sim");
    assert!(
        sim.exists(),
        "{} missing: cargo build -p fleet-sim",
        sim.display()
    );
    let (lab, mut lm) = fleet::lab_with_lm(&art, None, 1).expect("lab");
    let agents = 24;
    let child = fleet::sim_command(&lab, &lm, &sim, agents)
        .args(["--release", "--json", "--patience-s", "90"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("fleet-sim");
    // Let the sim set up its servers, tenant and lease, then crash the LM three times at
    // different moments (enrolling; heartbeating; releasing).
    let lease_created = Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(lm.process().log_path().unwrap()).unwrap_or_default();
        if log.contains("lease.created") {
            break;
        }
        assert!(
            Instant::now() < lease_created,
            "the sim never created its lease"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for (i, pause) in [150u64, 1500, 2500].into_iter().enumerate() {
        std::thread::sleep(Duration::from_millis(pause));
        lm.crash_and_restart(&lab, i as u32).expect("restart");
        eprintln!("crash {i}: LM restarted");
    }
    let out = child.wait_with_output().expect("fleet-sim output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "fleet-sim failed: {stdout}");
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(r["enrolled"], agents);
    assert_eq!(r["released"], agents);
    assert_eq!(r["errors"], 0);
    // Every server is idle and in no lease; the chain holds.
    let servers: Vec<lm_api::ServerView> = lm.console_json(&["server", "list"]).unwrap();
    assert_eq!(servers.len(), agents as usize);
    for s in &servers {
        assert_eq!(s.state.name(), "idle", "{}", s.name);
        assert_eq!(s.lease, None, "{}", s.name);
    }
    let verify: lm_api::AuditVerification = lm.console_json(&["audit", "verify"]).unwrap();
    assert_eq!(verify.broken, None);
    assert!(verify.entries > u64::from(agents) * 4, "{verify:?}");
}
