//! The server boot state machine, pure: `(state, input) -> new state | refusal`.
//!
//! ```text
//!  idle/unreachable/failed --wake--> waking{attempt} --DHCPDISCOVER--> booting --hello--> agent-up
//!                                      |  \--retry--> waking{attempt+1}
//!                                      \--budget spent--> unreachable
//!  any --reset--> idle          booting/agent-up --agent reports fatal--> failed
//! ```
//! The netboot gate is open exactly in `waking`, `booting` and `agent-up`.

use lm_api::{BootId, ServerState};

/// Something that happened to a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The operator (or a lease, later) asks to boot it; `boot_id` is freshly drawn.
    Wake { boot_id: BootId },
    /// Attempt `attempt` of the wake was sent.
    WakeAttempt { boot_id: BootId, attempt: u32 },
    /// The whole wake budget passed without a DHCPDISCOVER.
    WakeExhausted { boot_id: BootId, attempts: u32 },
    /// DHCP traffic from the server's MAC.
    DhcpSeen,
    /// The agent said hello for `boot_id`.
    Hello { boot_id: BootId },
    /// The agent gave up (it is powering off).
    AgentGaveUp { boot_id: BootId, reason: String },
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
    #[error("boot id {got} is not the server's current boot attempt ({current})")]
    StaleBoot { got: BootId, current: String },
    #[error("the server is {state}: not expecting an agent (wake it first)")]
    NotBooting { state: &'static str },
}

/// Whether the PXE services should answer this server now.
pub fn gate_open(state: &ServerState) -> bool {
    matches!(
        state,
        ServerState::Waking { .. } | ServerState::Booting { .. } | ServerState::AgentUp { .. }
    )
}

/// Applies `input` to `state`. `Ok(None)` means "nothing changes" (for example a late DHCP
/// packet), `Ok(Some(s))` is the new state to persist, `Err` a refusal to report.
pub fn step(state: &ServerState, input: &Input) -> Result<Option<ServerState>, Refusal> {
    use ServerState as S;
    let current = || {
        state
            .boot_id()
            .map(|b| b.to_string())
            .unwrap_or_else(|| "none".into())
    };
    let same = |got: BootId| state.boot_id() == Some(got);
    match input {
        Input::Wake { boot_id } => match state {
            S::Idle | S::Unreachable { .. } | S::Failed { .. } => Ok(Some(S::Waking {
                boot_id: *boot_id,
                attempt: 0,
            })),
            S::Waking { boot_id: b, .. }
            | S::Booting { boot_id: b }
            | S::AgentUp { boot_id: b } => Err(Refusal::Busy {
                state: state.name(),
                boot_id: *b,
            }),
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
            S::Waking { .. } | S::Booting { .. } | S::AgentUp { .. } if same(*boot_id) => {
                Ok(Some(S::AgentUp { boot_id: *boot_id }))
            }
            S::Waking { .. } | S::Booting { .. } | S::AgentUp { .. } => Err(Refusal::StaleBoot {
                got: *boot_id,
                current: current(),
            }),
            _ => Err(Refusal::NotBooting {
                state: state.name(),
            }),
        },
        Input::AgentGaveUp { boot_id, reason } => match state {
            S::Waking { .. } | S::Booting { .. } | S::AgentUp { .. } if same(*boot_id) => {
                Ok(Some(S::Failed {
                    boot_id: *boot_id,
                    reason: reason.clone(),
                }))
            }
            _ => Err(Refusal::StaleBoot {
                got: *boot_id,
                current: current(),
            }),
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
    use proptest::prelude::*;

    fn b(n: u64) -> BootId {
        BootId::from_random(n)
    }

    #[test]
    fn happy_path() {
        let s = step(&ServerState::Idle, &Input::Wake { boot_id: b(1) })
            .unwrap()
            .unwrap();
        assert!(gate_open(&s));
        let s = step(
            &s,
            &Input::WakeAttempt {
                boot_id: b(1),
                attempt: 1,
            },
        )
        .unwrap()
        .unwrap();
        let s = step(&s, &Input::DhcpSeen).unwrap().unwrap();
        assert_eq!(s, ServerState::Booting { boot_id: b(1) });
        assert_eq!(step(&s, &Input::DhcpSeen).unwrap(), None);
        let s = step(&s, &Input::Hello { boot_id: b(1) }).unwrap().unwrap();
        assert_eq!(s, ServerState::AgentUp { boot_id: b(1) });
        let s = step(&s, &Input::Reset).unwrap().unwrap();
        assert!(!gate_open(&s));
    }

    #[test]
    fn refusals() {
        let waking = ServerState::Waking {
            boot_id: b(1),
            attempt: 1,
        };
        assert!(matches!(
            step(&waking, &Input::Wake { boot_id: b(2) }),
            Err(Refusal::Busy { .. })
        ));
        assert!(matches!(
            step(&waking, &Input::Hello { boot_id: b(2) }),
            Err(Refusal::StaleBoot { .. })
        ));
        assert!(matches!(
            step(&ServerState::Idle, &Input::Hello { boot_id: b(1) }),
            Err(Refusal::NotBooting { .. })
        ));
        // A late exhaustion of an older boot changes nothing.
        assert_eq!(
            step(
                &waking,
                &Input::WakeExhausted {
                    boot_id: b(9),
                    attempts: 3
                }
            )
            .unwrap(),
            None
        );
        let u = step(
            &waking,
            &Input::WakeExhausted {
                boot_id: b(1),
                attempts: 3,
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(u.name(), "unreachable");
        assert!(!gate_open(&u));
        assert_eq!(
            step(&u, &Input::DhcpSeen).unwrap(),
            None,
            "no DHCP revives an unreachable server"
        );
    }

    fn any_input() -> impl Strategy<Value = Input> {
        prop_oneof![
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
            (0u64..3).prop_map(|n| Input::AgentGaveUp {
                boot_id: b(n),
                reason: "x".into()
            }),
            Just(Input::Reset),
        ]
    }

    proptest! {
        /// The boot id of a state only changes through a wake from a closed state, so no event of
        /// an older boot attempt can ever open the gate for a new one or revive an old one.
        #[test]
        fn boot_id_changes_only_by_wake(inputs in proptest::collection::vec(any_input(), 0..40)) {
            let mut s = ServerState::Idle;
            for i in &inputs {
                if let Ok(Some(next)) = step(&s, i) {
                    if next.boot_id().is_some() && next.boot_id() != s.boot_id() {
                        prop_assert!(matches!(i, Input::Wake { .. }), "{i:?} moved {s:?} -> {next:?}");
                        prop_assert!(!gate_open(&s));
                    }
                    if gate_open(&next) && !gate_open(&s) {
                        prop_assert!(matches!(i, Input::Wake { .. }), "gate opened by {:?}", i);
                    }
                    s = next;
                }
            }
        }
    }
}
