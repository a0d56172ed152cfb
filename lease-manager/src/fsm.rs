//! The server state machine, pure: `(state, leased, input) -> new state | refusal`.
//! The lease binding itself is kept by the ledger ([`crate::ledger`]); here it only decides
//! where a hello leads (maintenance boot or lease boot).
//!
//! ```text
//!  idle --reserve--> reserved --wake--> waking{attempt} --DHCP--> booting --hello--> enrolling
//!  idle/unreachable/failed --wake (no lease)--> waking ... booting --hello--> agent-up
//!  enrolling --enrolled--> tunneling --tunnel done--> transferring --transfer done--> running
//!  waking --budget spent--> unreachable        booting..running --agent gives up--> failed
//!  booting..running --release--> releasing --wipe started--> wiping --wiped--> idle
//!  tunneling..running --rebooted (leased)--> booting    releasing/wiping --rebooted--> releasing
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
    /// The server's firmware fetched its boot script again after its agent was up: it rebooted
    /// (the tenant OS rebooted, or it was power-cycled). `boot_id` is fresh.
    Rebooted { boot_id: BootId },
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

/// What a `PhaseDone` of `phase` is, for a refusal ("not expecting ...").
fn phase_done_what(phase: AgentPhase) -> &'static str {
    match phase {
        AgentPhase::Tunnel => "the end of the tunnel phase (it follows enrollment)",
        AgentPhase::Transfer => "the end of the transfer phase (it follows the tunnel phase)",
        _ => "the end of a phase outside the lease pipeline (tunnel, transfer)",
    }
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
        Input::Rebooted { boot_id } => match state {
            // Within the lease: a new boot attempt; the agent enrolls again and starts the
            // tenant's image from the server's disk (or pulls it again).
            S::Tunneling { .. } | S::Transferring { .. } | S::Running { .. } if leased => {
                Ok(Some(S::Booting { boot_id: *boot_id }))
            }
            // Released while its tenant OS ran: power-cycled into the agent for the wipe.
            S::Releasing { boot_id: Some(_) } | S::Wiping { .. } => Ok(Some(S::Releasing {
                boot_id: Some(*boot_id),
            })),
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
            if agent_may_be_up(state) && !same(*boot_id) {
                return Err(stale(*boot_id));
            }
            let what = phase_done_what(*phase);
            match (phase, state) {
                (AgentPhase::Tunnel, S::Tunneling { .. }) if leased && same(*boot_id) => {
                    Ok(Some(S::Transferring { boot_id: *boot_id }))
                }
                (AgentPhase::Transfer, S::Transferring { .. }) if leased && same(*boot_id) => {
                    Ok(Some(S::Running { boot_id: *boot_id }))
                }
                // A phase reported again (the agent retried after a lost answer) changes
                // nothing; so does one that crossed the release (the release wins, and the
                // agent hears it with its next heartbeat).
                (AgentPhase::Tunnel, S::Transferring { .. } | S::Running { .. })
                | (AgentPhase::Transfer, S::Running { .. })
                | (
                    AgentPhase::Tunnel | AgentPhase::Transfer,
                    S::Releasing { boot_id: Some(_) } | S::Wiping { .. },
                ) if same(*boot_id) => Ok(None),
                _ => Err(Refusal::Unexpected {
                    state: state.name(),
                    what,
                }),
            }
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
#[path = "fsm_tests.rs"]
mod tests;
