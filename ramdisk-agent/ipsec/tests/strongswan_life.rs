//! Interop, the established IKE SA's life against strongSwan's charon (kernel-libipsec) in
//! namespaces (root; skipped with a reason otherwise):
//! - charon rekeys the child SA every 5 s (`rekey_time = 5s`) and checks liveness every 2 s
//!   (`dpd_delay = 2s`): a paced TCP transfer both ways across the rekeys stays intact, charon
//!   logs the new CHILD_SA with the SPIs we installed and no retransmission, our endpoint
//!   counts packets on the new inbound SPI; then charon is SIGKILLed and our liveness check
//!   declares it dead;
//! - our own rekey (soft packet limit low) likewise, charon logs the new CHILD_SA;
//! - charon rekeys the IKE SA every 4 s: answered, traffic and liveness checks go on.

#[allow(dead_code)]
#[path = "../../ike/tests/common/ca.rs"]
mod ca;
mod common;
#[allow(dead_code)]
#[path = "common/life.rs"]
mod life;
#[allow(dead_code)]
#[path = "../../ike/tests/common/strongswan.rs"]
mod strongswan;

use std::time::{Duration, Instant};

use agent_esp::LifetimeLimits;
use agent_ipsec::{LifeConfig, LinkState};
use life::{fast_life, lab, paced_tcp_both_ways, up};

#[test]
fn charon_rekeys_and_checks_liveness_then_dies() {
    let Some((lab, ca)) = lab(
        "rekey_time = 5s\n      life_time = 60s\n      rand_time = 0s",
        "dpd_delay = 2s",
    ) else {
        return;
    };
    // Our own checks only after 4 s of silence, so that charon's (every 2 s of silence) come.
    let life = LifeConfig {
        dpd_idle: Duration::from_secs(4),
        ..fast_life()
    };
    let tunnel = up(&lab, &ca, LifetimeLimits::default(), life);
    let info = tunnel.info().clone();
    // ~9 s of paced traffic both ways: one rekey or more in the middle.
    let t = Instant::now();
    paced_tcp_both_ways(&lab, 180, Duration::from_millis(50));
    eprintln!("paced TCP both ways intact in {:?}", t.elapsed());
    let stats = tunnel.life_stats();
    let status = tunnel.sa_status();
    eprintln!("life: {stats:?}; SAs: {status:?}");
    assert!(stats.rekeys_peer >= 1, "charon did not rekey: {stats:?}");
    let (new_in, new_out) = *stats.installed.last().expect("an installed pair");
    assert_ne!(new_in, info.spi_in);
    assert_eq!(status.outbound_spi, new_out);
    assert!(
        status.outbound_packets > 0,
        "no packets sent on the new SPI"
    );
    assert!(
        status
            .inbound
            .iter()
            .any(|&(spi, n)| spi == new_in && n > 0),
        "no packets received on the new SPI {new_in:08x}: {status:?}"
    );
    assert!(
        !status.inbound.iter().any(|&(spi, _)| spi == info.spi_in),
        "the first inbound SA was not removed after charon's Delete"
    );
    let line = format!("established with SPIs {new_out:08x}_i {new_in:08x}_o");
    let log = lab.log();
    for l in log
        .lines()
        .filter(|l| l.contains("CHILD_SA") || l.contains("DPD") || l.contains("retransmit"))
    {
        eprintln!("charon: {l}");
    }
    assert!(log.contains(&line), "charon did not log {line}");
    assert!(
        log.contains("creating rekey job for CHILD_SA"),
        "charon logged no rekey"
    );
    // Idle for a while: charon's liveness checks (empty INFORMATIONAL requests) get answers.
    std::thread::sleep(Duration::from_secs(3));
    let log = lab.log();
    let dpd_sent = log.matches("generating INFORMATIONAL request").count();
    let dpd_answered = log.matches("parsed INFORMATIONAL response").count();
    for l in log.lines().filter(|l| l.contains("INFORMATIONAL")) {
        eprintln!("charon: {l}");
    }
    assert!(
        dpd_sent >= 2,
        "charon sent {dpd_sent} INFORMATIONAL requests"
    );
    assert_eq!(dpd_sent, dpd_answered, "charon's requests all answered");
    assert!(
        !log.contains("retransmit") && !log.contains("giving up"),
        "charon retransmitted (our answers missing)"
    );
    assert!(stats.answered >= 2, "liveness checks answered: {stats:?}");
    assert_eq!(tunnel.state(), LinkState::Up);

    // charon dies without a word: our liveness check gives up.
    let pid = lab.charon_pid().expect("charon's pid") as libc::pid_t;
    // SAFETY: signalling the charon process this test started, by its PID.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let killed = Instant::now();
    // 4 s of silence, then the check and 2 retransmissions (0.5 s, 1 s, 1 s): about 6.5 s.
    let until = killed + Duration::from_secs(10);
    while tunnel.state() == LinkState::Up {
        assert!(Instant::now() < until, "peer not declared dead within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "after SIGKILL: {:?} in {:?}",
        tunnel.state(),
        killed.elapsed()
    );
    assert!(matches!(tunnel.state(), LinkState::PeerDead { .. }));
    drop(tunnel);
    drop(lab);
}

#[test]
fn our_rekey_on_the_soft_limit() {
    let Some((lab, ca)) = lab("", "") else {
        return;
    };
    let limits = LifetimeLimits {
        soft_packets: Some(300),
        ..LifetimeLimits::default()
    };
    let life = LifeConfig {
        dpd_idle: Duration::from_secs(30),
        ..fast_life()
    };
    let tunnel = up(&lab, &ca, limits, life);
    let info = tunnel.info().clone();
    paced_tcp_both_ways(&lab, 120, Duration::from_millis(50));
    let stats = tunnel.life_stats();
    let status = tunnel.sa_status();
    eprintln!("life: {stats:?}; SAs: {status:?}");
    assert!(stats.rekeys_ours >= 1, "we did not rekey: {stats:?}");
    let (new_in, new_out) = stats.installed[0];
    assert_ne!((new_in, new_out), (info.spi_in, info.spi_out));
    let line = format!("established with SPIs {new_out:08x}_i {new_in:08x}_o");
    let log = lab.log();
    for l in log.lines().filter(|l| l.contains("CHILD_SA")) {
        eprintln!("charon: {l}");
    }
    assert!(log.contains(&line), "charon did not log {line}");
    assert!(
        status.inbound.iter().all(|&(spi, _)| spi != info.spi_in),
        "the first inbound SA is still there: {status:?}"
    );
    assert!(stats.deleted_children >= 1);
    assert_eq!(tunnel.state(), LinkState::Up);
    drop(tunnel);
    drop(lab);
}

#[test]
fn charon_rekeys_the_ike_sa() {
    let Some((lab, ca)) = lab(
        "",
        "rekey_time = 4s\n    over_time = 60s\n    rand_time = 0s",
    ) else {
        return;
    };
    let life = LifeConfig {
        dpd_idle: Duration::from_secs(2),
        ..fast_life()
    };
    let tunnel = up(&lab, &ca, LifetimeLimits::default(), life);
    paced_tcp_both_ways(&lab, 160, Duration::from_millis(50));
    // Our liveness checks go to the new IKE SA and are answered.
    std::thread::sleep(Duration::from_secs(3));
    let stats = tunnel.life_stats();
    eprintln!("life: {stats:?}");
    let log = lab.log();
    for l in log.lines().filter(|l| {
        l.contains("IKE_SA")
            || l.contains("INFORMATIONAL")
            || l.contains("CREATE_CHILD_SA")
            || l.contains("retransmit")
    }) {
        eprintln!("charon: {l}");
    }
    assert!(
        stats.ike_rekeys >= 1,
        "charon did not rekey the IKE SA: {stats:?}"
    );
    assert_eq!(tunnel.state(), LinkState::Up);
    assert!(
        !log.contains("retransmit") && !log.contains("giving up"),
        "charon retransmitted (our answers missing)"
    );
    assert!(
        log.contains("parsed INFORMATIONAL request 0 [ ]"),
        "our liveness check on the new IKE SA (message id 0) not seen by charon"
    );
    drop(tunnel);
    drop(lab);
}
