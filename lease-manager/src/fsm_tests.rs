//! The server state machine's rules: walks through the lease and maintenance boots, the
//! refusals, and properties over random input sequences.

use super::*;
use ServerState as S;
use proptest::prelude::*;

fn b(n: u64) -> BootId {
    BootId::from_random(n)
}

fn run(mut s: ServerState, leased: bool, inputs: &[Input]) -> ServerState {
    for i in inputs {
        if let Some(next) = step(&s, leased, i).unwrap() {
            s = next;
        }
    }
    s
}

#[test]
fn maintenance_boot() {
    let s = run(
        S::Idle,
        false,
        &[
            Input::Wake { boot_id: b(1) },
            Input::WakeAttempt {
                boot_id: b(1),
                attempt: 1,
            },
            Input::DhcpSeen,
            Input::DhcpSeen,
        ],
    );
    assert_eq!(s, S::Booting { boot_id: b(1) });
    let s = run(s, false, &[Input::Hello { boot_id: b(1) }]);
    assert_eq!(s, S::AgentUp { boot_id: b(1) });
    assert_eq!(step(&s, false, &Input::Hello { boot_id: b(1) }), Ok(None));
    let s = run(s, false, &[Input::Reset]);
    assert!(!gate_open(&s));
}

#[test]
fn lease_boot_and_release() {
    assert!(step(&S::Idle, true, &Input::Wake { boot_id: b(1) }).is_err());
    let s = run(
        S::Idle,
        true,
        &[
            Input::Reserve,
            Input::Wake { boot_id: b(1) },
            Input::DhcpSeen,
            Input::Hello { boot_id: b(1) },
        ],
    );
    assert_eq!(s, S::Enrolling { boot_id: b(1) });
    assert!(matches!(
        step(&s, true, &Input::Enrolled { boot_id: b(2) }),
        Err(Refusal::StaleBoot { .. })
    ));
    let s = run(s, true, &[Input::Enrolled { boot_id: b(1) }]);
    assert_eq!(s, S::Tunneling { boot_id: b(1) });
    assert!(gate_open(&s));
    let s = run(s, true, &[Input::Release]);
    assert_eq!(
        s,
        S::Releasing {
            boot_id: Some(b(1))
        }
    );
    assert!(gate_open(&s), "the agent must still hear about the release");
    let s = run(s, true, &[Input::WipeStarted { boot_id: b(1) }]);
    assert_eq!(s, S::Wiping { boot_id: b(1) });
    assert!(step(&s, true, &Input::Wiped { boot_id: b(2) }).is_err());
    assert_eq!(run(s, true, &[Input::Wiped { boot_id: b(1) }]), S::Idle);
}

#[test]
fn release_before_boot_and_timeouts() {
    assert_eq!(run(S::Reserved, true, &[Input::Release]), S::Idle);
    let w = S::Waking {
        boot_id: b(1),
        attempt: 2,
    };
    assert_eq!(run(w, true, &[Input::Release]), S::Idle);
    let r = S::Releasing {
        boot_id: Some(b(1)),
    };
    let q = run(r, true, &[Input::ReleaseTimedOut { after_s: 120 }]);
    assert_eq!(q.name(), "quarantined");
    assert!(!gate_open(&q));
    assert!(step(&q, false, &Input::Reserve).is_err());
    assert_eq!(run(q, false, &[Input::Reset]), S::Idle);
}

#[test]
fn refusals() {
    let waking = S::Waking {
        boot_id: b(1),
        attempt: 1,
    };
    assert!(matches!(
        step(&waking, false, &Input::Wake { boot_id: b(2) }),
        Err(Refusal::Busy { .. })
    ));
    assert!(matches!(
        step(&waking, false, &Input::Hello { boot_id: b(2) }),
        Err(Refusal::StaleBoot { .. })
    ));
    assert!(matches!(
        step(&S::Idle, false, &Input::Hello { boot_id: b(1) }),
        Err(Refusal::NotBooting { .. })
    ));
    assert!(step(&waking, false, &Input::Reserve).is_err());
    assert_eq!(
        step(
            &waking,
            false,
            &Input::WakeExhausted {
                boot_id: b(9),
                attempts: 3
            }
        ),
        Ok(None)
    );
    let u = run(
        waking,
        false,
        &[Input::WakeExhausted {
            boot_id: b(1),
            attempts: 3,
        }],
    );
    assert_eq!(u.name(), "unreachable");
    assert!(!gate_open(&u));
    assert_eq!(
        step(&u, false, &Input::DhcpSeen),
        Ok(None),
        "no DHCP revives an unreachable server"
    );
}

fn done(n: u64, phase: AgentPhase) -> Input {
    Input::PhaseDone {
        boot_id: b(n),
        phase,
    }
}

#[test]
fn lease_pipeline_tunnel_then_transfer_then_running() {
    use AgentPhase::{Transfer, Tunnel};
    let s = S::Tunneling { boot_id: b(1) };
    let s = run(s, true, &[done(1, Tunnel)]);
    assert_eq!(s, S::Transferring { boot_id: b(1) });
    assert!(gate_open(&s));
    let s = run(s, true, &[done(1, Transfer)]);
    assert_eq!(s, S::Running { boot_id: b(1) });
    assert!(gate_open(&s));
    // Repeats (the agent lost an answer and retried) change nothing.
    for st in [
        S::Transferring { boot_id: b(1) },
        S::Running { boot_id: b(1) },
    ] {
        assert_eq!(step(&st, true, &done(1, Tunnel)), Ok(None), "{st:?}");
    }
    assert_eq!(step(&s, true, &done(1, Transfer)), Ok(None));
    // A report that crossed the release changes nothing either.
    for st in [
        S::Releasing {
            boot_id: Some(b(1)),
        },
        S::Wiping { boot_id: b(1) },
    ] {
        for p in [Tunnel, Transfer] {
            assert_eq!(step(&st, true, &done(1, p)), Ok(None), "{p:?} in {st:?}");
        }
    }
}

#[test]
fn lease_pipeline_refusals() {
    use AgentPhase::{Enroll, Ready, Transfer, Tunnel, Wipe};
    let unexpected = |st: &ServerState, input: &Input| {
        let r = step(st, true, input);
        assert!(
            matches!(r, Err(Refusal::Unexpected { state, .. }) if state == st.name()),
            "{input:?} in {st:?}: {r:?}"
        );
        r.unwrap_err().to_string()
    };
    // Out of order: transfer before tunnel, tunnel before enrollment.
    let msg = unexpected(&S::Tunneling { boot_id: b(1) }, &done(1, Transfer));
    assert!(
        msg.contains("tunneling") && msg.contains("transfer"),
        "{msg}"
    );
    unexpected(&S::Enrolling { boot_id: b(1) }, &done(1, Tunnel));
    unexpected(&S::Enrolling { boot_id: b(1) }, &done(1, Transfer));
    // Not in a lease pipeline at all.
    for st in [
        S::Waking {
            boot_id: b(1),
            attempt: 1,
        },
        S::Booting { boot_id: b(1) },
        S::AgentUp { boot_id: b(1) },
        S::Failed {
            boot_id: b(1),
            reason: "x".into(),
        },
        S::Unreachable {
            boot_id: b(1),
            reason: "x".into(),
        },
        S::Idle,
        S::Reserved,
        S::Quarantined { reason: "x".into() },
        S::Releasing { boot_id: None },
    ] {
        for p in [Tunnel, Transfer] {
            unexpected(&st, &done(1, p));
        }
    }
    // Phases that are not lease-pipeline completions.
    for p in [Enroll, Ready, Wipe] {
        unexpected(&S::Tunneling { boot_id: b(1) }, &done(1, p));
        unexpected(&S::Transferring { boot_id: b(1) }, &done(1, p));
    }
    // Another boot attempt's report is stale wherever this boot's agent may be up.
    for st in [
        S::Tunneling { boot_id: b(1) },
        S::Transferring { boot_id: b(1) },
        S::Running { boot_id: b(1) },
        S::Wiping { boot_id: b(1) },
    ] {
        for p in [Tunnel, Transfer] {
            assert!(
                matches!(step(&st, true, &done(2, p)), Err(Refusal::StaleBoot { .. })),
                "{p:?} of boot 2 in {st:?}"
            );
        }
    }
}

fn any_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        Just(Input::Reserve),
        (0u64..3).prop_map(|n| Input::Wake { boot_id: b(n) }),
        (0u64..3, 0u32..4).prop_map(|(n, a)| Input::WakeAttempt {
            boot_id: b(n),
            attempt: a
        }),
        (0u64..3).prop_map(|n| Input::WakeExhausted {
            boot_id: b(n),
            attempts: 3
        }),
        Just(Input::DhcpSeen),
        (0u64..3).prop_map(|n| Input::Hello { boot_id: b(n) }),
        (0u64..3).prop_map(|n| Input::Enrolled { boot_id: b(n) }),
        (
            0u64..3,
            prop_oneof![
                Just(AgentPhase::Tunnel),
                Just(AgentPhase::Transfer),
                Just(AgentPhase::Ready),
            ]
        )
            .prop_map(|(n, phase)| done(n, phase)),
        (0u64..3).prop_map(|n| Input::AgentGaveUp {
            boot_id: b(n),
            reason: "x".into()
        }),
        Just(Input::Release),
        (0u64..3).prop_map(|n| Input::WipeStarted { boot_id: b(n) }),
        (0u64..3).prop_map(|n| Input::Wiped { boot_id: b(n) }),
        Just(Input::ReleaseTimedOut { after_s: 1 }),
        Just(Input::Reset),
    ]
}

proptest! {
    /// The boot id of a state only changes through a wake from a closed state, so no event of
    /// an older boot attempt can ever open the gate for a new one or revive an old one.
    #[test]
    fn boot_id_changes_only_by_wake(
        leased in any::<bool>(),
        inputs in proptest::collection::vec(any_input(), 0..60),
    ) {
        let mut s = S::Idle;
        for i in &inputs {
            if let Ok(Some(next)) = step(&s, leased, i) {
                if next.boot_id().is_some() && next.boot_id() != s.boot_id() {
                    prop_assert!(matches!(i, Input::Wake { .. }), "{i:?} moved {s:?} -> {next:?}");
                    prop_assert!(!gate_open(&s));
                }
                if gate_open(&next) && !gate_open(&s) {
                    prop_assert!(matches!(i, Input::Wake { .. }), "gate opened by {:?}", i);
                }
                // An enrolled-or-later state is only reached by a leased server.
                if matches!(
                    next,
                    S::Enrolling { .. }
                        | S::Tunneling { .. }
                        | S::Transferring { .. }
                        | S::Running { .. }
                ) {
                    prop_assert!(leased);
                }
                s = next;
            }
        }
    }
}

/// States an agent of boot 1 (or none) may be in, leased or not.
fn any_state() -> impl Strategy<Value = ServerState> {
    prop_oneof![
        Just(S::Idle),
        Just(S::Reserved),
        Just(S::Booting { boot_id: b(1) }),
        Just(S::AgentUp { boot_id: b(1) }),
        Just(S::Enrolling { boot_id: b(1) }),
        Just(S::Tunneling { boot_id: b(1) }),
        Just(S::Transferring { boot_id: b(1) }),
        Just(S::Running { boot_id: b(1) }),
        Just(S::Releasing {
            boot_id: Some(b(1))
        }),
        Just(S::Wiping { boot_id: b(1) }),
        Just(S::Failed {
            boot_id: b(1),
            reason: "x".into()
        }),
    ]
}

/// Mostly the agent's own reports, of this boot and of another one.
fn agent_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        4 => (1u64..3, prop_oneof![
            Just(AgentPhase::Tunnel),
            Just(AgentPhase::Transfer),
            Just(AgentPhase::Enroll),
            Just(AgentPhase::Ready),
        ])
            .prop_map(|(n, phase)| done(n, phase)),
        1 => (1u64..3).prop_map(|n| Input::Enrolled { boot_id: b(n) }),
        1 => (1u64..3).prop_map(|n| Input::Hello { boot_id: b(n) }),
        1 => Just(Input::Release),
        1 => any_input(),
    ]
}

proptest! {
    /// The lease pipeline runs in order, one phase at a time, only in a lease and only for the
    /// current boot; a phase reported again changes nothing.
    #[test]
    fn lease_pipeline_runs_in_order(
        start in any_state(),
        leased in any::<bool>(),
        inputs in proptest::collection::vec(agent_input(), 0..30),
    ) {
        let mut s = start;
        for i in &inputs {
            let Ok(Some(next)) = step(&s, leased, i) else { continue };
            if let Input::PhaseDone { boot_id, .. } = i {
                prop_assert_eq!(s.boot_id(), Some(*boot_id), "{:?} moved {:?}", i, s);
                prop_assert!(leased, "{:?} moved {:?} outside a lease", i, s);
                prop_assert_eq!(step(&next, leased, i), Ok(None), "{:?} twice", i);
            }
            if matches!(next, S::Transferring { .. }) {
                prop_assert!(matches!(s, S::Tunneling { .. }), "{:?} -> {:?}", s, next);
                prop_assert!(
                    matches!(i, Input::PhaseDone { phase: AgentPhase::Tunnel, .. }),
                    "{:?}", i
                );
            }
            if matches!(next, S::Running { .. }) {
                prop_assert!(matches!(s, S::Transferring { .. }), "{:?} -> {:?}", s, next);
                prop_assert!(
                    matches!(i, Input::PhaseDone { phase: AgentPhase::Transfer, .. }),
                    "{:?}", i
                );
            }
            s = next;
        }
    }
}

#[test]
fn a_reboot_within_the_lease_starts_a_new_boot_attempt() {
    let running = S::Running { boot_id: b(1) };
    let s = run(running.clone(), true, &[Input::Rebooted { boot_id: b(2) }]);
    assert_eq!(s, S::Booting { boot_id: b(2) });
    // The new boot enrolls and runs the pipeline again; the old one is stale.
    let s = run(
        s,
        true,
        &[
            Input::Hello { boot_id: b(2) },
            Input::Enrolled { boot_id: b(2) },
            Input::PhaseDone {
                boot_id: b(2),
                phase: AgentPhase::Tunnel,
            },
            Input::PhaseDone {
                boot_id: b(2),
                phase: AgentPhase::Transfer,
            },
        ],
    );
    assert_eq!(s, S::Running { boot_id: b(2) });
    assert!(matches!(
        step(&s, true, &Input::Hello { boot_id: b(1) }),
        Err(Refusal::StaleBoot { .. })
    ));
    for st in [
        S::Tunneling { boot_id: b(1) },
        S::Transferring { boot_id: b(1) },
    ] {
        assert_eq!(
            step(&st, true, &Input::Rebooted { boot_id: b(3) }),
            Ok(Some(S::Booting { boot_id: b(3) }))
        );
    }
    // Outside a lease, or before the agent was up, a boot script fetch is no reboot.
    for (st, leased) in [
        (running, false),
        (
            S::Waking {
                boot_id: b(1),
                attempt: 1,
            },
            true,
        ),
        (S::Booting { boot_id: b(1) }, true),
        (S::Enrolling { boot_id: b(1) }, true),
        (S::Idle, false),
        (S::Releasing { boot_id: None }, true),
    ] {
        assert_eq!(
            step(&st, leased, &Input::Rebooted { boot_id: b(3) }),
            Ok(None),
            "{st:?}"
        );
    }
}

#[test]
fn a_released_server_power_cycled_for_its_wipe_gets_the_new_boot() {
    for st in [
        S::Releasing {
            boot_id: Some(b(1)),
        },
        S::Wiping { boot_id: b(1) },
    ] {
        let s = run(st, true, &[Input::Rebooted { boot_id: b(2) }]);
        assert_eq!(
            s,
            S::Releasing {
                boot_id: Some(b(2))
            }
        );
        let s = run(
            s,
            true,
            &[
                Input::Hello { boot_id: b(2) },
                Input::WipeStarted { boot_id: b(2) },
                Input::Wiped { boot_id: b(2) },
            ],
        );
        assert_eq!(s, S::Idle);
    }
}
