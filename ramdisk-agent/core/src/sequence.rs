//! The agent's bring-up sequence and failure policy: which phase runs next, when to retry, when
//! to give up and power off.
//!
//! Pure: time (`now`, a monotonic duration since an arbitrary origin) and randomness are
//! arguments. The `/init` shell runs a phase, tells the [`Sequence`] how it went, and does what
//! the returned [`Next`] says.
//!
//! Policy, in order of precedence:
//! - a [`Outcome::Fatal`] failure (for example a kernel command line without `lm.url`: it will
//!   not change by retrying) powers off at once;
//! - a [`Outcome::Rejected`] failure (the LM answered 4xx: it is reachable but says no) is retried
//!   with backoff at most [`Policy::rejected_attempts`] attempts in all, then powers off;
//! - a [`Outcome::Transient`] failure (IO, timeouts, 5xx) is retried with backoff while the retry
//!   would still start before the deadline;
//! - the whole bring-up has a deadline (`lm.poweroff`, measured from the sequence's start): when a
//!   retry or the next phase would start at or after it, the agent powers off. Once the LM has
//!   accepted the hello (on a leased boot: the enrollment) the bring-up is over: the deadline and
//!   the refusal budget no longer apply and `Ready` failures other than fatal ones are retried
//!   forever.
//!
//! A leased boot (`lm.lease` on the command line, [`Sequence::set_enroll`]) runs
//! [`AgentPhase::Enroll`], [`AgentPhase::Tunnel`], [`AgentPhase::Transfer`] and
//! [`AgentPhase::Start`] between `Hello`
//! and `Ready`, under the same deadline.

use std::fmt;
use std::time::Duration;

use lm_api::AgentPhase;

use crate::backoff::Backoff;

/// How a phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The phase did its job.
    Ok,
    /// It failed in a way that may go away (IO error, timeout, no DHCP answer, 5xx).
    Transient,
    /// The LM refused (4xx): retrying a few times covers races, not more.
    Rejected,
    /// Retrying cannot help (bad command line, missing pinned CA).
    Fatal,
}

/// What the shell does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Run this phase now.
    Run(AgentPhase),
    /// Run this phase again after the delay.
    RetryAfter(AgentPhase, Duration),
    /// Give up: log `AGENT-POWEROFF <reason>`, report if possible, sync, power off.
    PowerOff(PowerOffReason),
}

/// Why the agent gives up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PowerOffReason {
    /// The bring-up deadline passed.
    Deadline {
        phase: AgentPhase,
        attempts: u32,
        deadline: Duration,
    },
    /// The LM kept refusing.
    Rejected { phase: AgentPhase, attempts: u32 },
    /// A failure that retrying cannot fix.
    Fatal { phase: AgentPhase },
}

impl fmt::Display for PowerOffReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Deadline {
                phase,
                attempts,
                deadline,
            } => write!(
                f,
                "deadline of {} s passed in phase {} after {attempts} attempt(s)",
                deadline.as_secs(),
                phase.as_str()
            ),
            Self::Rejected { phase, attempts } => write!(
                f,
                "the lease manager refused phase {} {attempts} time(s)",
                phase.as_str()
            ),
            Self::Fatal { phase } => {
                write!(
                    f,
                    "phase {} failed and retrying cannot help",
                    phase.as_str()
                )
            }
        }
    }
}

/// Tunables of the failure policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Bring-up deadline, from the start of the sequence (`lm.poweroff`).
    pub deadline: Duration,
    /// Delay between attempts of one phase.
    pub backoff: Backoff,
    /// Attempts in all for a phase the LM refuses.
    pub rejected_attempts: u32,
}

impl Policy {
    /// The default policy with the deadline from `lm.poweroff`.
    pub fn with_deadline_secs(secs: u32) -> Self {
        Self {
            deadline: Duration::from_secs(u64::from(secs)),
            backoff: Backoff::default(),
            rejected_attempts: 3,
        }
    }
}

/// The phase after `phase` (`enroll`: a leased boot), `None` after [`AgentPhase::Ready`].
pub fn following(phase: AgentPhase, enroll: bool) -> Option<AgentPhase> {
    use AgentPhase::*;
    Some(match phase {
        Init => Modules,
        Modules => Link,
        Link => Dhcp,
        Dhcp => Facts,
        Facts => Hello,
        Hello if enroll => Enroll,
        Hello => Ready,
        Enroll => Tunnel,
        Tunnel => Transfer,
        Transfer => Start,
        Start => Ready,
        Ready | Wipe => return None,
    })
}

/// Where the bring-up is.
#[derive(Debug, Clone)]
pub struct Sequence {
    policy: Policy,
    started: Duration,
    phase: AgentPhase,
    attempt: u32,
    enroll: bool,
}

impl Sequence {
    /// A sequence starting at `now` with phase [`AgentPhase::Init`], attempt 1.
    pub fn new(policy: Policy, now: Duration) -> Self {
        Self {
            policy,
            started: now,
            phase: AgentPhase::Init,
            attempt: 1,
            enroll: false,
        }
    }

    /// The first action: run `Init`.
    pub fn first(&self) -> Next {
        Next::Run(self.phase)
    }

    /// Replaces the deadline, still measured from the sequence's start: the agent only learns
    /// `lm.poweroff` from the command line it parses in `Init`, after the sequence started.
    pub fn set_deadline(&mut self, deadline: Duration) {
        self.policy.deadline = deadline;
    }

    /// Whether the bring-up includes [`AgentPhase::Enroll`] (a leased boot); learned from the
    /// command line in `Init`.
    pub fn set_enroll(&mut self, enroll: bool) {
        self.enroll = enroll;
    }

    /// The phase being run.
    pub fn phase(&self) -> AgentPhase {
        self.phase
    }

    /// The attempt number of the current phase (1-based).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// True once the bring-up is over (hello accepted, or the enrollment on a leased boot) and
    /// the deadline no longer applies.
    pub fn is_up(&self) -> bool {
        self.phase == AgentPhase::Ready
    }

    /// Time left until the deadline (zero when passed; `None` once the agent is up). Phases use
    /// it to bound their own waits.
    pub fn remaining(&self, now: Duration) -> Option<Duration> {
        if self.is_up() {
            return None;
        }
        let deadline = self.started.saturating_add(self.policy.deadline);
        Some(deadline.saturating_sub(now))
    }

    fn deadline_reason(&self) -> PowerOffReason {
        PowerOffReason::Deadline {
            phase: self.phase,
            attempts: self.attempt,
            deadline: self.policy.deadline,
        }
    }

    /// Records how the current phase ended at `now` and decides what comes next. `random` jitters
    /// the retry delay.
    pub fn on_outcome(&mut self, outcome: Outcome, now: Duration, random: u64) -> Next {
        let remaining = self.remaining(now);
        match outcome {
            Outcome::Ok => {
                let Some(next) = following(self.phase, self.enroll) else {
                    return Next::Run(self.phase);
                };
                // The last bring-up phase ends the bring-up even late; others must not start
                // the next phase after the deadline.
                if next != AgentPhase::Ready && remaining == Some(Duration::ZERO) {
                    return Next::PowerOff(self.deadline_reason());
                }
                self.phase = next;
                self.attempt = 1;
                Next::Run(next)
            }
            Outcome::Fatal => Next::PowerOff(PowerOffReason::Fatal { phase: self.phase }),
            Outcome::Rejected if self.attempt >= self.policy.rejected_attempts && !self.is_up() => {
                Next::PowerOff(PowerOffReason::Rejected {
                    phase: self.phase,
                    attempts: self.attempt,
                })
            }
            Outcome::Rejected | Outcome::Transient => {
                let delay = self.policy.backoff.delay(self.attempt, random);
                if let Some(left) = remaining
                    && delay >= left
                {
                    return Next::PowerOff(self.deadline_reason());
                }
                self.attempt = self.attempt.saturating_add(1);
                Next::RetryAfter(self.phase, delay)
            }
        }
    }
}

#[cfg(test)]
#[path = "sequence_tests.rs"]
mod tests;
