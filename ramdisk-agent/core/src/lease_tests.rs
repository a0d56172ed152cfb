//! Tests of the lease part of the agent: enrollment body, heartbeat decisions. No IO.

use lm_api::{AgentAction, LeaseId};

use super::*;

const TOKEN: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn leased() -> AgentArgs {
    let line = format!(
        "lm.url=https://10.77.0.1:8443 lm.boot=00000000000000ff lm.mac=52:54:00:00:00:01 \
         lm.lease=l-0123456789abcdef lm.token={TOKEN}"
    );
    AgentArgs::parse(line.as_bytes()).unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn answer(action: AgentAction) -> HeartbeatResponse {
    HeartbeatResponse {
        action,
        lease_ends_ms: Some(99),
    }
}

#[test]
fn the_enroll_request_carries_lease_boot_and_token() {
    let args = leased();
    let e = args.enrollment.clone().unwrap();
    let req = enroll_request(&args, &e, "CSR".into());
    let lease: LeaseId = "l-0123456789abcdef".parse().unwrap();
    assert_eq!(req.lease, lease);
    assert_eq!((req.boot_id, req.boot_mac), (args.boot_id, args.boot_mac));
    assert_eq!(req.token, TOKEN);
    assert_eq!(req.csr_pem, "CSR");
    // The contract type redacts the token in Debug; so does ours.
    assert!(!format!("{req:?}").contains(TOKEN));
    assert!(!format!("{args:?}").contains(TOKEN));
    assert_eq!(
        csr_common_name(&args, &e),
        "agent 52:54:00:00:00:01 for l-0123456789abcdef"
    );
}

#[test]
fn the_wipe_report_says_wiped() {
    let args = leased();
    let r = wipe_report(args.boot_id, args.boot_mac, 0);
    assert_eq!(
        (r.phase, r.ok, r.detail.as_str(), r.attempt),
        (AgentPhase::Wipe, true, "wiped", 1)
    );
}

#[test]
fn release_means_wipe_and_continue_carries_the_end() {
    let mut m = HeartbeatMonitor::new(secs(2), secs(10));
    assert_eq!(
        m.on_answer(secs(12), &answer(AgentAction::Continue)),
        Beat::Continue {
            lease_ends_ms: Some(99)
        }
    );
    assert_eq!(
        m.on_answer(secs(14), &answer(AgentAction::Release)),
        Beat::Release
    );
}

#[test]
fn failures_count_up_become_overdue_and_never_power_off() {
    let mut m = HeartbeatMonitor::new(secs(2), secs(100));
    assert_eq!(m.overdue_after(), secs(20));
    let mut last = None;
    for n in 1..=15u64 {
        last = Some(m.on_failure(secs(100 + 2 * n)));
        let Some(Beat::Failed {
            failures,
            silent_for,
            overdue,
        }) = last
        else {
            panic!("{last:?}");
        };
        assert_eq!(failures as u64, n);
        assert_eq!(silent_for, secs(2 * n));
        assert_eq!(overdue, 2 * n >= 20, "after {n}");
    }
    assert!(matches!(last, Some(Beat::Failed { overdue: true, .. })));
    // One answer resets the count and the silence.
    m.on_answer(secs(140), &answer(AgentAction::Continue));
    assert_eq!(
        m.on_failure(secs(142)),
        Beat::Failed {
            failures: 1,
            silent_for: secs(2),
            overdue: false
        }
    );
}

#[test]
fn the_interval_is_at_least_a_second_and_clocks_never_underflow() {
    let mut m = HeartbeatMonitor::new(Duration::ZERO, secs(50));
    assert_eq!(m.interval(), secs(1));
    // A clock reading before the start (cannot happen, must not panic).
    assert!(matches!(
        m.on_failure(secs(1)),
        Beat::Failed {
            silent_for: Duration::ZERO,
            ..
        }
    ));
}

#[test]
fn three_refusals_in_a_row_disown_the_agent_but_outages_do_not() {
    use std::time::Duration;
    let s = Duration::from_secs;
    let mut m = HeartbeatMonitor::new(s(2), s(0));
    assert!(matches!(m.on_refused(s(2), 409), Beat::Failed { .. }));
    assert!(matches!(m.on_refused(s(4), 409), Beat::Failed { .. }));
    // A transport failure in between restarts the count (the LM may be restarting).
    assert!(matches!(m.on_failure(s(6)), Beat::Failed { .. }));
    assert!(matches!(m.on_refused(s(8), 401), Beat::Failed { .. }));
    assert!(matches!(m.on_refused(s(10), 404), Beat::Failed { .. }));
    assert_eq!(m.on_refused(s(12), 409), Beat::Disowned { status: 409 });
    // Other refusals (a 400: our bug, or a proxy) never disown.
    let mut m = HeartbeatMonitor::new(s(2), s(0));
    for t in 1..20 {
        assert!(matches!(m.on_refused(s(2 * t), 400), Beat::Failed { .. }));
    }
}
