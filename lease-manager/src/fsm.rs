//! The server state machine, pure: `(state, leased, input) -> new state | refusal`.
//! The lease binding itself is kept by the ledger ([`crate::ledger`]); here it only decides
//! where a hello leads (maintenance boot or lease boot).
//!
//! ```text
//!  idle --reserve--> reserved --wake--> waking{attempt} --DHCP--> booting --hello--> enrolling
//!  idle/unreachable/failed --wake (no lease)--> waking ... booting --hello--> agent-up
//!  enrolling --enrolled--> tunneling --tunnel ok--> transferring --image ok--> running
//!  waking --budget spent--> unreachable        booting..running --agent gives up--> failed
//!  booting..running --release--> releasing --wipe started--> wiping --wiped--> idle
//!  reserved/waking --release--> idle           releasing/wiping --timeout--> quarantined
//!  any --reset--> idle
//! ```
//! The netboot gate is open from `waking` to `wiping` (an agent must be able to renew its
//! address and hear that its lease is over).

use lm_api::{AgentPhase, BootId, ServerState};

/// Something that happened to a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A lease takes the (idle) server.
    Reserve,
    /// Boot it: an operator's maintenance wake, or the lease provisioner; `boot_id` is fresh.
    Wake { boot_id: BootId },
    /// Attempt `attempt` of the wake was sent.
    WakeAttempt { boot_id: BootId, attempt: u32 },
    /// The whole wake budget passed without a DHCPDISCOVER.
    WakeExhausted { boot_id: BootId, attempts: u32 },
    /// DHCP traffic (or another boot fetch) from the server's MAC.
    DhcpSeen,
    /// The agent said hello for `boot_id`.
    Hello { boot_id: BootId },
    /// The agent enrolled (it now holds a certificate for the lease).
    Enrolled { boot_id: BootId },
    /// The agent finished a phase of the lease pipeline.
    PhaseDone { boot_id: BootId, phase: AgentPhase },
    /// The agent gave up (it is powering off).
    AgentGaveUp { boot_id: BootId, reason: String },
    /// The server's lease is over (released, expired or failed).
    Release,
    /// The agent started wiping.
    WipeStarted { boot_id: BootId },
    /// The agent confirmed the wipe (it powers off next).
    Wiped { boot_id: BootId },
    /// A released server did not confirm its wipe in time.
    ReleaseTimedOut { after_s: u64 },
    /// The operator resets the server to idle (it is powered off or will be).
    Reset,
}

/// Why an input does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the server is {state} (boot {boot_id}); reset it first with `lease-manager server reset`"
    )]
    Busy {
        state: &'static str,
        boot_id: BootId,
    },
    #[error("the server is {state}; only an idle server can be {what}")]
    NotIdle {
        state: &'static str,
        what: &'static str,
    },
    #[error("boot id {got} is not the server's current boot attempt ({current})")]
    StaleBoot { got: BootId, current: String },
    #[error("the server is {state}: not expecting an agent (wake it first)")]
    NotBooting { state: &'static str },
    #[error("the server is {state}: not expecting {what}")]
    Unexpected {
        state: &'static str,
        what: &'static str,
    },
}

/// Whether the PXE services should answer this server now.
pub fn gate_open(state: &ServerState) -> bool {
    use ServerState as S;
    match state {
        S::Waking { .. }
        | S::Booting { .. }
        | S::AgentUp { .. }
        | S::Enrolling { .. }
        | S::Tunneling { .. }
        | S::Transferring { .. }
        | S::Running { .. }
        | S::Wiping { .. } => true,
        S::Releasing { boot_id } => boot_id.is_some(),
        S::Idle
        | S::Reserved
        | S::Unreachable { .. }
        | S::Failed { .. }
        | S::Quarantined { .. } => false,
    }
}

/// Whether an agent of the current boot may be up (hello accepted, reports expected).
fn agent_may_be_up(state: &ServerState) -> bool {
    use ServerState as S;
    matches!(
        state,
        S::Waking { .. }
            | S::Booting { .. }
            | S::AgentUp { .. }
            | S::Enrolling { .. }
            | S::Tunneling { .. }
            | S::Transferring { .. }
            | S::Running { .. }
            | S::Releasing { boot_id: Some(_) }
            | S::Wiping { .. }
    )
}

/// Applies `input` to `state` of a server that is (`leased`) or is not in a lease. `Ok(None)`
/// means "nothing changes" (for example a late DHCP packet), `Ok(Some(s))` is the new state to
/// persist, `Err` a refusal to report.
pub fn step(
    state: &ServerState,
    leased: bool,
    input: &Input,
) -> Result<Option<ServerState>, Refusal> {
    use ServerState as S;
    let current = || {
        state
            .boot_id()
            .map(|b| b.to_string())
            .unwrap_or_else(|| "none".into())
    };
    let same = |got: BootId| state.boot_id() == Some(got);
    let stale = |got: BootId| Refusal::StaleBoot {
        got,
        current: current(),
    };
    match input {
        Input::Reserve => match state {
            S::Idle => Ok(Some(S::Reserved)),
            _ => Err(Refusal::NotIdle {
                state: state.name(),
                what: "reserved for a lease",
            }),
        },
        Input::Wake { boot_id } => match state {
            S::Reserved => Ok(Some(S::Waking {
                boot_id: *boot_id,
                attempt: 0,
            })),
            S::Idle | S::Unreachable { .. } | S::Failed { .. } if !leased => Ok(Some(S::Waking {
                boot_id: *boot_id,
                attempt: 0,
            })),
            _ => match state.boot_id() {
                Some(b) => Err(Refusal::Busy {
                    state: state.name(),
                    boot_id: b,
                }),
                None => Err(Refusal::Unexpected {
                    state: state.name(),
                    what: "a wake",
                }),
            },
        },
        Input::WakeAttempt { boot_id, attempt } => match state {
            S::Waking { .. } if same(*boot_id) => Ok(Some(S::Waking {
                boot_id: *boot_id,
                attempt: *attempt,
            })),
            _ => Ok(None),
        },
        Input::WakeExhausted { boot_id, attempts } => match state {
            S::Waking { .. } if same(*boot_id) => Ok(Some(S::Unreachable {
                boot_id: *boot_id,
                reason: format!("no DHCPDISCOVER after {attempts} wake attempts"),
            })),
            _ => Ok(None),
        },
        Input::DhcpSeen => match state {
            S::Waking { boot_id, .. } => Ok(Some(S::Booting { boot_id: *boot_id })),
            _ => Ok(None),
        },
        Input::Hello { boot_id } => match state {
            S::Waking { .. } | S::Booting { .. } if same(*boot_id) => Ok(Some(if leased {
                S::Enrolling { boot_id: *boot_id }
            } else {
                S::AgentUp { boot_id: *boot_id }
            })),
            // A repeated hello (the agent retried after a lost answer) changes nothing.
            _ if agent_may_be_up(state) && same(*boot_id) => Ok(None),
            _ if agent_may_be_up(state) => Err(stale(*boot_id)),
            _ => Err(Refusal::NotBooting {
                state: state.name(),
            }),
        },
        Input::Enrolled { boot_id } => match state {
            S::Enrolling { .. } if same(*boot_id) => Ok(Some(S::Tunneling { boot_id: *boot_id })),
            S::Enrolling { .. } => Err(stale(*boot_id)),
            _ => Err(Refusal::Unexpected {
                state: state.name(),
                what: "an enrollment",
            }),
        },
        Input::PhaseDone { boot_id, phase } => {
            if !same(*boot_id) {
                return Err(stale(*boot_id));
            }
            // The tunnel and image phases come with the tenant-side issue; until then the
            // only lease phase an agent completes is enrollment (see `Enrolled`).
            let _ = phase;
            Ok(None)
        }
        Input::AgentGaveUp { boot_id, reason } => match state {
            _ if agent_may_be_up(state) && same(*boot_id) => Ok(Some(S::Failed {
                boot_id: *boot_id,
                reason: reason.clone(),
            })),
            _ => Err(stale(*boot_id)),
        },
        Input::Release => match state {
            S::Reserved | S::Waking { .. } => Ok(Some(S::Idle)),
            S::Booting { boot_id }
            | S::AgentUp { boot_id }
            | S::Enrolling { boot_id }
            | S::Tunneling { boot_id }
            | S::Transferring { boot_id }
            | S::Running { boot_id } => Ok(Some(S::Releasing {
                boot_id: Some(*boot_id),
            })),
            S::Idle
            | S::Releasing { .. }
            | S::Wiping { .. }
            | S::Unreachable { .. }
            | S::Failed { .. }
            | S::Quarantined { .. } => Ok(None),
        },
        Input::WipeStarted { boot_id } => match state {
            S::Releasing { .. } if same(*boot_id) => Ok(Some(S::Wiping { boot_id: *boot_id })),
            S::Wiping { .. } if same(*boot_id) => Ok(None),
            _ => Err(Refusal::Unexpected {
                state: state.name(),
                what: "a wipe",
            }),
        },
        Input::Wiped { boot_id } => match state {
            S::Releasing { .. } | S::Wiping { .. } if same(*boot_id) => Ok(Some(S::Idle)),
            _ => Err(Refusal::Unexpected {
                state: state.name(),
                what: "a wipe confirmation",
            }),
        },
        Input::ReleaseTimedOut { after_s } => match state {
            S::Releasing { .. } | S::Wiping { .. } => Ok(Some(S::Quarantined {
                reason: format!(
                    "released, but the agent did not confirm its wipe within {after_s} s"
                ),
            })),
            _ => Ok(None),
        },
        Input::Reset => match state {
            S::Idle => Ok(None),
            _ => Ok(Some(S::Idle)),
        },
    }
}

#[cfg(test)]
mod tests {
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
                    if matches!(next, S::Enrolling { .. } | S::Tunneling { .. }) {
                        prop_assert!(leased);
                    }
                    s = next;
                }
            }
        }
    }
}
