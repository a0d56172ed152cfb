//! The agent's exchange with the Lease Manager: request bytes for `POST /v1/agent/hello` and
//! `POST /v1/agent/report`, and the verdict on each answer.
//!
//! Pure: serialises the `lm_api` types and judges parsed [`Response`]s; the shell does TLS.
//! Verdicts map onto the retry policy ([`LmError::outcome`]): 2xx is success; 408, 429 and 5xx
//! are transient; every other 4xx, a 3xx, and a 2xx whose body is not the contract's JSON are
//! refusals that retrying a few times will not change.

use lm_api::{
    AgentPhase, AgentReport, ApiError, BootId, HelloRequest, HelloResponse, MacAddr, paths,
};

use crate::http::{self, HttpError, Response};
use crate::lm_url::LmUrl;
use crate::sequence::Outcome;

/// Longest `detail` the LM accepts in a report (its contract says 4 KiB).
pub const MAX_DETAIL: usize = 4096;
/// Bounds applied to the LM's `heartbeat_secs`.
pub const HEARTBEAT_BOUNDS: (u32, u32) = (1, 3600);

/// What went wrong talking to the LM, after TLS delivered a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LmError {
    #[error("the lease manager refused {path} with {status}: {message}")]
    Refused {
        path: &'static str,
        status: u16,
        message: String,
    },
    #[error("the lease manager could not serve {path} ({status}): {message}")]
    Unavailable {
        path: &'static str,
        status: u16,
        message: String,
    },
    #[error(
        "the lease manager answered {path} with {status} and a body that is not the contract's JSON: {error}"
    )]
    BadBody {
        path: &'static str,
        status: u16,
        error: String,
    },
    #[error("building the request for {path} failed")]
    Request {
        path: &'static str,
        #[source]
        source: HttpError,
    },
}

impl LmError {
    /// How the retry policy treats this error.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Unavailable { .. } => Outcome::Transient,
            Self::Refused { .. } | Self::BadBody { .. } => Outcome::Rejected,
            Self::Request { .. } => Outcome::Fatal,
        }
    }
}

/// The `User-Agent` of the agent.
pub fn user_agent(version: &str) -> String {
    let clean: String = version
        .chars()
        .filter(char::is_ascii_graphic)
        .take(64)
        .collect();
    format!("lease-agent/{clean}")
}

fn post<T: serde::Serialize>(
    url: &LmUrl,
    path: &'static str,
    version: &str,
    body: &T,
) -> Result<Vec<u8>, LmError> {
    // Serialising these plain structs cannot fail; map it anyway rather than unwrap.
    let json = serde_json::to_vec(body).map_err(|e| LmError::Request {
        path,
        source: HttpError::BadRequestField {
            what: "body",
            value: e.to_string(),
        },
    })?;
    http::post_json(&url.authority(), path, &user_agent(version), &json)
        .map_err(|source| LmError::Request { path, source })
}

/// Request bytes of `POST /v1/agent/hello`.
pub fn hello_request(url: &LmUrl, version: &str, hello: &HelloRequest) -> Result<Vec<u8>, LmError> {
    post(url, paths::AGENT_HELLO, version, hello)
}

/// Request bytes of `POST /v1/agent/report`.
pub fn report_request(
    url: &LmUrl,
    version: &str,
    report: &AgentReport,
) -> Result<Vec<u8>, LmError> {
    post(url, paths::AGENT_REPORT, version, report)
}

/// A report, its detail cut to [`MAX_DETAIL`] bytes on a character boundary.
pub fn report(
    boot_id: BootId,
    boot_mac: MacAddr,
    phase: AgentPhase,
    ok: bool,
    detail: &str,
    attempt: u32,
) -> AgentReport {
    let mut end = detail.len().min(MAX_DETAIL);
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    AgentReport {
        boot_id,
        boot_mac,
        phase,
        ok,
        detail: detail.get(..end).unwrap_or_default().to_string(),
        attempt: attempt.max(1),
    }
}

/// The server's explanation in a non-2xx answer: `{"error": ...}` when it follows the contract,
/// otherwise the start of the body as text.
fn server_message(resp: &Response) -> String {
    let text = match serde_json::from_slice::<ApiError>(&resp.body) {
        Ok(e) => e.error,
        Err(_) if resp.body.is_empty() => resp.reason.clone(),
        Err(_) => String::from_utf8_lossy(&resp.body).into_owned(),
    };
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(512)
        .collect();
    if one_line.trim().is_empty() {
        "(no explanation)".into()
    } else {
        one_line
    }
}

fn judge(path: &'static str, resp: &Response) -> Result<(), LmError> {
    let status = resp.status;
    match status {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => Err(LmError::Unavailable {
            path,
            status,
            message: server_message(resp),
        }),
        _ => Err(LmError::Refused {
            path,
            status,
            message: server_message(resp),
        }),
    }
}

/// The verdict on the answer to a hello. The heartbeat interval is clamped to
/// [`HEARTBEAT_BOUNDS`].
pub fn hello_verdict(resp: &Response) -> Result<HelloResponse, LmError> {
    let path = paths::AGENT_HELLO;
    judge(path, resp)?;
    let mut hello: HelloResponse =
        serde_json::from_slice(&resp.body).map_err(|e| LmError::BadBody {
            path,
            status: resp.status,
            error: e.to_string(),
        })?;
    hello.heartbeat_secs = hello
        .heartbeat_secs
        .clamp(HEARTBEAT_BOUNDS.0, HEARTBEAT_BOUNDS.1);
    Ok(hello)
}

/// The verdict on the answer to a report (the body of a 2xx is not looked at).
pub fn report_verdict(resp: &Response) -> Result<(), LmError> {
    judge(paths::AGENT_REPORT, resp)
}

#[cfg(test)]
#[path = "lm_exchange_tests.rs"]
mod tests;
