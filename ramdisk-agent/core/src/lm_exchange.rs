//! The agent's exchange with the Lease Manager: request bytes for `POST /v1/agent/hello`,
//! `/v1/agent/report`, `/v1/agent/enroll` and `/v1/agent/heartbeat`, and the verdict on each
//! answer.
//!
//! Pure: serialises the `lm_api` types and judges parsed [`Response`]s; the shell does TLS.
//! Verdicts map onto the retry policy ([`LmError::outcome`]): 2xx is success; 408, 429 and 5xx
//! are transient; every other 4xx, a 3xx, and a 2xx whose body is not the contract's JSON are
//! refusals that retrying a few times will not change. An enrollment the LM refuses with 400
//! or 403 is final ([`LmError::Denied`]): the token is single-use and spent by the refusal.

use lm_api::{
    AgentPhase, AgentReport, ApiError, BootId, EnrollRequest, EnrollResponse, Heartbeat,
    HeartbeatResponse, HelloRequest, HelloResponse, LeaseId, MacAddr, paths,
};

use crate::http::{self, HttpError, Response};
use crate::lm_url::LmUrl;
use crate::sequence::Outcome;

/// Longest `detail` the LM accepts in a report (its contract says 4 KiB).
pub const MAX_DETAIL: usize = 4096;
/// `POST` path of the enrollment (not yet in `lm_api::paths`; the LM's route table has it).
pub const AGENT_ENROLL: &str = "/v1/agent/enroll";
/// `POST` path of the heartbeat (not yet in `lm_api::paths`; the LM's route table has it).
pub const AGENT_HEARTBEAT: &str = "/v1/agent/heartbeat";
/// Longest certificate serial accepted from the LM, in hex characters (20 bytes, RFC 5280).
pub const MAX_SERIAL_HEX: usize = 40;

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
    #[error("the lease manager denied {path} with {status}: {message}; retrying cannot help")]
    Denied {
        path: &'static str,
        status: u16,
        message: String,
    },
    #[error("the lease manager's answer to {path} does not fit the request: {detail}")]
    Inconsistent { path: &'static str, detail: String },
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
            Self::Refused { .. } | Self::BadBody { .. } | Self::Inconsistent { .. } => {
                Outcome::Rejected
            }
            Self::Denied { .. } | Self::Request { .. } => Outcome::Fatal,
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

/// Request bytes of `POST /v1/agent/enroll` (the body carries the token: never log them).
pub fn enroll_request(url: &LmUrl, version: &str, req: &EnrollRequest) -> Result<Vec<u8>, LmError> {
    post(url, AGENT_ENROLL, version, req)
}

/// Request bytes of `POST /v1/agent/heartbeat`.
pub fn heartbeat_request(url: &LmUrl, version: &str, hb: &Heartbeat) -> Result<Vec<u8>, LmError> {
    post(url, AGENT_HEARTBEAT, version, hb)
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
    let mut hello: HelloResponse = body(path, resp)?;
    hello.heartbeat_secs = hello
        .heartbeat_secs
        .clamp(HEARTBEAT_BOUNDS.0, HEARTBEAT_BOUNDS.1);
    Ok(hello)
}

fn body<T: serde::de::DeserializeOwned>(path: &'static str, resp: &Response) -> Result<T, LmError> {
    serde_json::from_slice(&resp.body).map_err(|e| LmError::BadBody {
        path,
        status: resp.status,
        error: e.to_string(),
    })
}

/// The verdict on the answer to an enrollment for `lease`. 400 and 403 are
/// [`LmError::Denied`] (fatal: the token is spent); other refusals and server errors follow
/// [`judge`]'s rules. A 2xx must be for `lease`, carry one PEM certificate and a hex serial; the
/// heartbeat interval is clamped to [`HEARTBEAT_BOUNDS`].
pub fn enroll_verdict(resp: &Response, lease: LeaseId) -> Result<EnrollResponse, LmError> {
    let path = AGENT_ENROLL;
    if matches!(resp.status, 400 | 403) {
        return Err(LmError::Denied {
            path,
            status: resp.status,
            message: server_message(resp),
        });
    }
    judge(path, resp)?;
    let mut e: EnrollResponse = body(path, resp)?;
    let inconsistent = |detail: String| LmError::Inconsistent { path, detail };
    if e.lease != lease {
        return Err(inconsistent(format!(
            "a certificate for lease {} was issued, the agent asked for {lease}",
            e.lease
        )));
    }
    if e.cert_pem.matches("-----BEGIN CERTIFICATE-----").count() != 1 {
        return Err(inconsistent(
            "cert_pem does not hold exactly one PEM certificate".into(),
        ));
    }
    if e.serial.is_empty()
        || e.serial.len() > MAX_SERIAL_HEX
        || !e.serial.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(inconsistent(format!(
            "serial {:?} is not 1 to {MAX_SERIAL_HEX} hex characters",
            e.serial.chars().take(64).collect::<String>()
        )));
    }
    if e.server.is_empty() || !e.server.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(inconsistent(format!(
            "server name {:?} is not usable",
            e.server
        )));
    }
    e.heartbeat_secs = e
        .heartbeat_secs
        .clamp(HEARTBEAT_BOUNDS.0, HEARTBEAT_BOUNDS.1);
    Ok(e)
}

/// The verdict on the answer to a heartbeat.
pub fn heartbeat_verdict(resp: &Response) -> Result<HeartbeatResponse, LmError> {
    judge(AGENT_HEARTBEAT, resp)?;
    body(AGENT_HEARTBEAT, resp)
}

/// The verdict on the answer to a report (the body of a 2xx is not looked at).
pub fn report_verdict(resp: &Response) -> Result<(), LmError> {
    judge(paths::AGENT_REPORT, resp)
}

#[cfg(test)]
#[path = "lm_exchange_tests.rs"]
mod tests;
