//! Interop, our own IKE SA rekey (RFC 7296 1.3.2, 2.18) against strongSwan's charon
//! (kernel-libipsec) in namespaces (root; skipped with a reason otherwise):
//! - we rekey the IKE SA every 3 s during a paced TCP transfer both ways (intact): charon logs
//!   the rekey and the Delete of the old IKE SA, `swanctl --list-sas` shows our newest SPIs,
//!   our liveness check reaches charon on the new SA (message id 0), nothing retransmitted;
//! - both sides with the same IKE rekey time: whoever goes first, the tunnel stays up and the
//!   transfer intact (a true collision needs both requests in flight at once, which the
//!   sub-millisecond round trip here makes rare; the nonce rule is unit-tested in agent-ike).

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

use std::process::Command;
use std::time::Duration;

use agent_esp::LifetimeLimits;
use agent_ipsec::{LifeConfig, LinkState};
use life::{fast_life, lab, paced_tcp_both_ways, up};
use strongswan::Lab;

fn list_sas(lab: &Lab) -> String {
    let vici = format!(
        "unix://{}",
        lab.log_path().with_file_name("charon.vici").display()
    );
    let out = Command::new("swanctl")
        .args(["--list-sas", "--uri", &vici])
        .output()
        .expect("run swanctl --list-sas");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn print_ike_lines(log: &str) {
    for l in log.lines().filter(|l| {
        l.contains("IKE_SA")
            || l.contains("CREATE_CHILD_SA")
            || l.contains("INFORMATIONAL")
            || l.contains("collision")
            || l.contains("retransmit")
    }) {
        eprintln!("charon: {l}");
    }
}

#[test]
fn our_ike_sa_rekey_keeps_the_transfer_and_deletes_the_old_sa() {
    let Some((lab, ca)) = lab("", "") else {
        return;
    };
    let life = LifeConfig {
        dpd_idle: Duration::from_secs(2),
        ike_rekey: Some(Duration::from_secs(3)),
        ..fast_life()
    };
    let tunnel = up(&lab, &ca, LifetimeLimits::default(), life);
    let first = tunnel.info().ike.clone();
    // ~8 s of paced traffic both ways: two IKE SA rekeys of ours in the middle.
    paced_tcp_both_ways(&lab, 160, Duration::from_millis(50));
    // Idle: our liveness check goes to the newest IKE SA.
    std::thread::sleep(Duration::from_millis(2500));
    let stats = tunnel.life_stats();
    eprintln!("life: {stats:?}");
    let log = lab.log();
    print_ike_lines(&log);
    assert!(
        stats.ike_rekeys_ours >= 2,
        "we did not rekey the IKE SA twice: {stats:?}"
    );
    assert_eq!(stats.ike_rekeys, 0, "charon rekeyed instead: {stats:?}");
    assert!(
        stats.old_ike_deleted >= stats.ike_rekeys_ours,
        "an old IKE SA's Delete was not answered: {stats:?}"
    );
    assert!(
        log.matches("parsed CREATE_CHILD_SA request").count() >= 2,
        "charon saw no IKE SA rekey request"
    );
    assert!(
        log.contains("received DELETE for IKE_SA"),
        "charon logged no Delete of the old IKE SA"
    );
    assert!(
        log.contains("parsed INFORMATIONAL request 0 [ ]"),
        "our liveness check on a new IKE SA (message id 0) not seen by charon"
    );
    assert!(
        !log.contains("retransmit") && !log.contains("giving up"),
        "charon retransmitted"
    );
    // charon holds exactly the IKE SA we use now: our newest SPIs, not the first ones.
    let (spi_i, spi_r) = stats.ike_spis.expect("SPIs after the rekey");
    let sas = list_sas(&lab);
    eprintln!("swanctl --list-sas:\n{sas}");
    assert!(
        sas.contains(&format!("{spi_i:016x}_i")) && sas.contains(&format!("{spi_r:016x}_r")),
        "swanctl does not list the IKE SA {spi_i:016x}_i {spi_r:016x}_r"
    );
    assert!(
        !sas.contains(&format!("{:016x}_i", first.spi_i)),
        "the first IKE SA is still listed"
    );
    assert_eq!(sas.matches("ESTABLISHED").count(), 1, "one IKE SA: {sas}");
    assert_eq!(tunnel.state(), LinkState::Up);
    drop(tunnel);
    drop(lab);
}

#[test]
fn both_sides_rekey_the_ike_sa_on_the_same_lifetime() {
    let Some((lab, ca)) = lab(
        "",
        "rekey_time = 3s\n    over_time = 60s\n    rand_time = 0s",
    ) else {
        return;
    };
    let life = LifeConfig {
        dpd_idle: Duration::from_secs(2),
        ike_rekey: Some(Duration::from_secs(3)),
        ..fast_life()
    };
    let tunnel = up(&lab, &ca, LifetimeLimits::default(), life);
    paced_tcp_both_ways(&lab, 160, Duration::from_millis(50));
    std::thread::sleep(Duration::from_millis(500));
    let stats = tunnel.life_stats();
    eprintln!("life: {stats:?}");
    let log = lab.log();
    print_ike_lines(&log);
    eprintln!(
        "collision lines in charon's log: {}",
        log.lines().filter(|l| l.contains("collision")).count()
    );
    assert!(
        stats.ike_rekeys + stats.ike_rekeys_ours >= 2,
        "too few IKE SA rekeys: {stats:?}"
    );
    assert_eq!(tunnel.state(), LinkState::Up);
    let sas = list_sas(&lab);
    eprintln!("swanctl --list-sas:\n{sas}");
    let (spi_i, spi_r) = stats.ike_spis.expect("SPIs after a rekey");
    assert!(
        sas.contains(&format!("{spi_i:016x}_i")) && sas.contains(&format!("{spi_r:016x}_r")),
        "swanctl does not list the IKE SA we use"
    );
    drop(tunnel);
    drop(lab);
}
