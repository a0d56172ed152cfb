//! The agent's part of a lease after its hello: the enrollment request, what to do with each
//! heartbeat answer, and the wipe report that ends the lease.
//!
//! Pure: no IO, time (`now`, monotonic) is an argument. The shell generates the key, sends
//! the requests ([`crate::lm_exchange`] builds and judges them) and acts on [`Beat`].
//!
//! ```text
//! hello ok --lm.lease?--> enroll (key in RAM, CSR + token) --> ready: heartbeat every N s
//!                                                                 | action=release
//!                                                                 v
//!                        wipe: drop key, certificate, token; report `wipe ok` (mTLS); power off
//! ```
//!
//! Heartbeat failures never power the agent off: the LM may be restarting. Each failure is
//! logged; once nothing was answered for [`SILENCE_FACTOR`] intervals the failures are
//! reported as overdue (the shell logs them louder) and the agent keeps trying.

use std::time::Duration;

use lm_api::{AgentPhase, AgentReport, BootId, EnrollRequest, HeartbeatResponse, MacAddr};

use crate::cmdline::{AgentArgs, Enrollment};
use crate::lm_exchange;

/// Silence, in heartbeat intervals, after which failed heartbeats are overdue.
pub const SILENCE_FACTOR: u32 = 10;
/// Attempts at delivering the wipe report before powering off without it (the LM then
/// quarantines the server when its release times out).
pub const WIPE_REPORT_ATTEMPTS: u32 = 5;
/// The `detail` of the wipe report.
pub const WIPED_DETAIL: &str = "wiped";

/// The subject CN of the agent's CSR (the LM ignores it; it is for humans reading logs).
pub fn csr_common_name(args: &AgentArgs, e: &Enrollment) -> String {
    format!("agent {} for {}", args.boot_mac, e.lease)
}

/// The body of `POST /v1/agent/enroll` (it carries the token: never log it).
pub fn enroll_request(args: &AgentArgs, e: &Enrollment, csr_pem: String) -> EnrollRequest {
    EnrollRequest {
        lease: e.lease,
        boot_id: args.boot_id,
        boot_mac: args.boot_mac,
        token: e.token.expose().to_string(),
        csr_pem,
    }
}

/// The report that confirms the wipe; sent with the agent certificate, which the LM revokes
/// once it has this report.
pub fn wipe_report(boot_id: BootId, boot_mac: MacAddr, attempt: u32) -> AgentReport {
    lm_exchange::report(
        boot_id,
        boot_mac,
        AgentPhase::Wipe,
        true,
        WIPED_DETAIL,
        attempt,
    )
}

/// What to do after a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Answered: carry on; the lease's end, if the server is in one.
    Continue { lease_ends_ms: Option<u64> },
    /// The LM says the lease is over: wipe, report, power off.
    Release,
    /// The LM refused [`DISOWNED_AFTER`] heartbeats in a row as not its business any more
    /// (401, 403, 404, 409: the server was reset, quarantined or removed, or the certificate
    /// revoked): nothing will ever release this agent, so it wipes and powers off.
    Disowned { status: u16 },
    /// Not answered (or refused). Keep trying; `overdue` once the silence has lasted
    /// [`SILENCE_FACTOR`] intervals.
    Failed {
        /// Failures in a row.
        failures: u32,
        /// Time since the last answered heartbeat (or since the agent was up).
        silent_for: Duration,
        overdue: bool,
    },
}

/// Refusals in a row after which the agent stops ([`Beat::Disowned`]).
pub const DISOWNED_AFTER: u32 = 3;

/// The heartbeat schedule and its failure count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatMonitor {
    every: Duration,
    last_answer: Duration,
    failures: u32,
    /// Refusals in a row that say the LM does not expect this agent.
    disowning: u32,
}

impl HeartbeatMonitor {
    /// Heartbeats every `every` (at least 1 s), starting from an answered exchange at `now`.
    pub fn new(every: Duration, now: Duration) -> Self {
        Self {
            every: every.max(Duration::from_secs(1)),
            last_answer: now,
            failures: 0,
            disowning: 0,
        }
    }

    /// Time between heartbeats.
    pub fn interval(&self) -> Duration {
        self.every
    }

    /// The silence after which failures are overdue.
    pub fn overdue_after(&self) -> Duration {
        self.every.saturating_mul(SILENCE_FACTOR)
    }

    /// A heartbeat was answered at `now`.
    pub fn on_answer(&mut self, now: Duration, answer: &HeartbeatResponse) -> Beat {
        self.failures = 0;
        self.disowning = 0;
        self.last_answer = self.last_answer.max(now);
        match answer.action {
            lm_api::AgentAction::Release => Beat::Release,
            lm_api::AgentAction::Continue => Beat::Continue {
                lease_ends_ms: answer.lease_ends_ms,
            },
        }
    }

    /// The LM refused a heartbeat at `now` with `status` (a 4xx other than 408/429).
    pub fn on_refused(&mut self, now: Duration, status: u16) -> Beat {
        if matches!(status, 401 | 403 | 404 | 409) {
            self.disowning = self.disowning.saturating_add(1);
            if self.disowning >= DISOWNED_AFTER {
                return Beat::Disowned { status };
            }
        } else {
            self.disowning = 0;
        }
        self.failed(now)
    }

    /// A heartbeat failed at `now` (no answer, or an answer that was not a 2xx).
    pub fn on_failure(&mut self, now: Duration) -> Beat {
        self.disowning = 0;
        self.failed(now)
    }

    fn failed(&mut self, now: Duration) -> Beat {
        self.failures = self.failures.saturating_add(1);
        let silent_for = now.saturating_sub(self.last_answer);
        Beat::Failed {
            failures: self.failures,
            silent_for,
            overdue: silent_for >= self.overdue_after(),
        }
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
