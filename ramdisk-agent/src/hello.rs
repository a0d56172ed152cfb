//! The hello, report and heartbeat exchanges with the Lease Manager: build the request with
//! [`agent_core::lm_exchange`], send it with [`crate::https`], judge the answer. Each goes
//! with the agent certificate once the [`LmClient`] has one (see [`crate::lease`]).
//!
//! Does IO (through [`LmClient`]). Errors carry how the retry policy should treat them and
//! whether the LM answered at all (only then is a failure report worth sending).

use std::net::Ipv4Addr;
use std::time::Duration;

use agent_core::lm_exchange::{self, LmError};
use agent_core::{AgentArgs, Outcome};
use lm_api::{
    AgentPhase, AgentReport, HardwareFacts, Heartbeat, HeartbeatResponse, HelloRequest,
    HelloResponse,
};

use crate::https::{ExchangeError, LmClient, Timeouts};
use crate::sys;

/// The agent's version: crate version plus the build id the initramfs builder may set at compile
/// time (`AGENT_BUILD`).
pub fn version() -> String {
    format!(
        "{}+{}",
        env!("CARGO_PKG_VERSION"),
        option_env!("AGENT_BUILD").unwrap_or("dev")
    )
}

/// A failed exchange.
#[derive(Debug)]
pub struct Failure {
    pub error: anyhow::Error,
    pub outcome: Outcome,
    /// The LM answered (with a refusal or an error status): it is reachable.
    pub lm_answered: bool,
}

impl From<ExchangeError> for Failure {
    fn from(e: ExchangeError) -> Self {
        Self {
            error: e.into(),
            outcome: Outcome::Transient,
            lm_answered: false,
        }
    }
}

impl From<LmError> for Failure {
    fn from(e: LmError) -> Self {
        let outcome = e.outcome();
        let lm_answered = !matches!(e, LmError::Request { .. });
        Self {
            error: e.into(),
            outcome,
            lm_answered,
        }
    }
}

/// Timeouts bounded by what is left of the bring-up (`None`: no deadline any more).
pub fn timeouts(remaining: Option<Duration>) -> Timeouts {
    let cap = |d: Duration| remaining.map_or(d, |r| d.min(r.max(Duration::from_secs(1))));
    Timeouts {
        connect: cap(Duration::from_secs(5)),
        io: cap(Duration::from_secs(15)),
    }
}

/// `POST /v1/agent/hello`.
pub fn hello(
    lm: &LmClient,
    args: &AgentArgs,
    address: Ipv4Addr,
    facts: &HardwareFacts,
    t: Timeouts,
) -> Result<HelloResponse, Failure> {
    let req = HelloRequest {
        boot_id: args.boot_id,
        boot_mac: args.boot_mac,
        address,
        agent_version: version(),
        uptime_ms: u64::try_from(sys::now().as_millis()).unwrap_or(u64::MAX),
        facts: facts.clone(),
    };
    let bytes = lm_exchange::hello_request(lm.url(), &version(), &req)?;
    let resp = lm.exchange(&bytes, t)?;
    Ok(lm_exchange::hello_verdict(&resp)?)
}

/// `POST /v1/agent/report`.
pub fn report(
    lm: &LmClient,
    args: &AgentArgs,
    phase: AgentPhase,
    ok: bool,
    detail: &str,
    attempt: u32,
    t: Timeouts,
) -> Result<(), Failure> {
    let report = lm_exchange::report(args.boot_id, args.boot_mac, phase, ok, detail, attempt);
    send_report(lm, &report, t)
}

/// `POST /v1/agent/report` of a report built by the caller.
pub fn send_report(lm: &LmClient, report: &AgentReport, t: Timeouts) -> Result<(), Failure> {
    let bytes = lm_exchange::report_request(lm.url(), &version(), report)?;
    let resp = lm.exchange(&bytes, t)?;
    Ok(lm_exchange::report_verdict(&resp)?)
}

/// `POST /v1/agent/heartbeat`.
pub fn heartbeat(
    lm: &LmClient,
    args: &AgentArgs,
    t: Timeouts,
) -> Result<HeartbeatResponse, Failure> {
    let hb = Heartbeat {
        boot_id: args.boot_id,
        boot_mac: args.boot_mac,
        uptime_ms: u64::try_from(sys::now().as_millis()).unwrap_or(u64::MAX),
    };
    let bytes = lm_exchange::heartbeat_request(lm.url(), &version(), &hb)?;
    let resp = lm.exchange(&bytes, t)?;
    Ok(lm_exchange::heartbeat_verdict(&resp)?)
}

#[cfg(test)]
#[path = "hello_tests.rs"]
pub(crate) mod tests;
