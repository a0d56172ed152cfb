//! The agent's part of a lease, IO side: enrollment (key pair in RAM, CSR, token), heartbeats
//! until the LM says the lease is over, and the wipe that ends it.
//!
//! Does IO (through [`LmClient`] and the console). The decisions are in
//! [`agent_core::lease`]: the enrollment body, what each heartbeat answer means, the wipe
//! report. Key generation and the CSR are `lm_pki`'s (rcgen's one home).
//!
//! Secrets: the key pair is generated in RAM and never written anywhere; once the LM has
//! certified it, it lives only inside the mutual-TLS client configuration, which is dropped
//! after the wipe report. The token is single-use: it is zeroed as soon as the enrollment
//! was answered, and again (idempotently) at the wipe. Copies inside rcgen's `KeyPair` and
//! the DER handed to rustls are freed by those crates without zeroing (rcgen's `zeroize`
//! feature is off in the workspace).

use std::time::Duration;

use agent_core::backoff::Backoff;
use agent_core::lease::{self, Beat, HeartbeatMonitor, WIPE_REPORT_ATTEMPTS};
use agent_core::lm_exchange::{self, LmError};
use agent_core::secret;
use agent_core::{AgentArgs, Enrollment, Outcome};
use anyhow::anyhow;
use lm_api::{AgentPhase, EnrollResponse};

use crate::hello::{self, Failure, version};
use crate::https::{ClientIdentity, LmClient, Timeouts};
use crate::{console, sys};

fn fatal(error: anyhow::Error) -> Failure {
    Failure {
        error,
        outcome: Outcome::Fatal,
        lm_answered: false,
    }
}

/// The agent's key pair and the CSR for it, made at the first enrollment attempt and kept
/// for the retries: an LM that issued a certificate whose answer got lost gives the same
/// certificate again for the same token and key.
#[derive(Debug)]
pub struct AgentKey {
    key: lm_pki::KeyPair,
    csr_pem: String,
}

impl AgentKey {
    /// A fresh P-256 key in RAM (never written anywhere) and its CSR.
    pub fn generate(args: &AgentArgs, enrollment: &Enrollment) -> Result<Self, Failure> {
        let key = lm_pki::generate_key()
            .map_err(|e| fatal(anyhow::Error::new(e).context("generating the agent key")))?;
        let csr_pem = lm_pki::make_csr(&key, &lease::csr_common_name(args, enrollment))
            .map_err(|e| fatal(anyhow::Error::new(e).context("making the CSR")))?;
        Ok(Self { key, csr_pem })
    }
}

/// What a successful enrollment gives the agent.
#[derive(Debug)]
pub struct Enrolled {
    /// A client for the same LM that presents the new agent certificate.
    pub lm: LmClient,
    /// That certificate with its key, for the tenant gateway's TLS services.
    pub identity: ClientIdentity,
    /// The same certificate and key as the IKEv2 credential (an IPsec lease's tunnel).
    pub ike: crate::ipsec_way::Credential,
    /// The LM's answer, its `cert_pem` emptied (the certificate now lives in the identities).
    pub answer: EnrollResponse,
}

/// `POST /v1/agent/enroll` without a client certificate: the CSR of `key` (generated on the
/// first attempt) and the token from the command line. On success `key` is consumed (its
/// only copies are inside the returned identities). The token is wiped once the LM has spent
/// it.
pub fn enroll(
    lm: &LmClient,
    args: &AgentArgs,
    enrollment: &mut Enrollment,
    key: &mut Option<AgentKey>,
    t: Timeouts,
) -> Result<Enrolled, Failure> {
    if enrollment.token.is_wiped() {
        return Err(fatal(anyhow!(
            "the enrollment token for {} was already used; a new boot brings a new one",
            enrollment.lease
        )));
    }
    let pending = match key.take() {
        Some(k) => k,
        None => AgentKey::generate(args, enrollment)?,
    };
    let csr_pem = pending.csr_pem.clone();
    let pending = key.insert(pending);
    let mut req = lease::enroll_request(args, enrollment, csr_pem);
    let built = lm_exchange::enroll_request(lm.url(), &version(), &req);
    let mut token = std::mem::take(&mut req.token).into_bytes();
    secret::zero(&mut token);
    let mut bytes = built?;
    let resp = lm.exchange(&bytes, t);
    secret::zero(&mut bytes);
    let resp = resp?;
    // A certificate or a refusal (400/403) spends the token; after a server error or a lost
    // answer it may still be good for the retry (with the same key).
    if (200..300).contains(&resp.status) || matches!(resp.status, 400 | 403) {
        enrollment.token.wipe();
    }
    let mut answer = lm_exchange::enroll_verdict(&resp, enrollment.lease)?;
    let unusable = |e| {
        fatal(anyhow::Error::new(e).context(format!(
            "using the certificate {} the lease manager issued",
            answer.serial
        )))
    };
    let identity = ClientIdentity::new(&answer.cert_pem, lm_pki::private_key_der(&pending.key))
        .map_err(unusable)?;
    let ike = ike_credential(&answer.cert_pem, &pending.key).map_err(|e| {
        fatal(e.context(format!(
            "using the certificate {} as the IKE credential",
            answer.serial
        )))
    })?;
    let mtls = lm.with_identity(&identity).map_err(unusable)?;
    *key = None;
    answer.cert_pem = String::new();
    Ok(Enrolled {
        lm: mtls,
        identity,
        ike,
        answer,
    })
}

/// The agent certificate (PEM) and its key as the IKE credential (the PKCS#8 copy made for
/// it is zeroed when the credential goes).
fn ike_credential(
    cert_pem: &str,
    key: &lm_pki::KeyPair,
) -> anyhow::Result<crate::ipsec_way::Credential> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let cert = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .next()
        .ok_or_else(|| anyhow!("no PEM certificate"))??;
    let pkcs8 = zeroize::Zeroizing::new(lm_pki::private_key_der(key).secret_der().to_vec());
    crate::ipsec_way::Credential::new(cert.to_vec(), pkcs8)
}

/// Sends a heartbeat every interval until the LM answers `release`, or refuses three in a row
/// as not expecting this agent. Other failures are logged and never end the loop: the LM may
/// be restarting.
pub fn heartbeat_until_release(lm: &LmClient, args: &AgentArgs, every: Duration) {
    let mut monitor = HeartbeatMonitor::new(every, sys::now());
    let mut n: u64 = 0;
    loop {
        sys::sleep(monitor.interval());
        n += 1;
        let t = hello::timeouts(Some(monitor.interval()));
        let beat = match hello::heartbeat(lm, args, t) {
            Ok(answer) => monitor.on_answer(sys::now(), &answer),
            Err(f) => {
                let refused = f.error.downcast_ref::<LmError>().and_then(|e| match e {
                    LmError::Refused { status, .. } => Some(*status),
                    _ => None,
                });
                let beat = match refused {
                    Some(status) => monitor.on_refused(sys::now(), status),
                    None => monitor.on_failure(sys::now()),
                };
                let chain = console::one_line(&format!("{:#}", f.error));
                if let Beat::Failed {
                    failures,
                    silent_for,
                    overdue: true,
                } = beat
                {
                    tracing::error!(
                        "heartbeat {n} failed ({failures} in a row, no answer for {} s, more than {} s): {chain}; still trying",
                        silent_for.as_secs(),
                        monitor.overdue_after().as_secs()
                    );
                } else {
                    tracing::warn!("heartbeat {n} failed: {chain}");
                }
                beat
            }
        };
        match beat {
            Beat::Continue { lease_ends_ms } => {
                tracing::debug!(?lease_ends_ms, "heartbeat {n} answered");
            }
            Beat::Release => {
                tracing::info!("heartbeat {n}: the lease manager released this server");
                return;
            }
            Beat::Disowned { status } => {
                tracing::error!(
                    "heartbeat {n}: the lease manager refused {} heartbeats in a row ({status}): it no longer expects this server; wiping and powering off",
                    lease::DISOWNED_AFTER
                );
                return;
            }
            Beat::Failed { .. } => {}
        }
    }
}

/// The wipe after a release: drops the secrets, confirms with `wipe ok` over the agent's
/// mutual TLS (the LM revokes the certificate only after this report), prints the markers.
/// Returns the power-off reason.
pub fn wipe(lm: LmClient, args: &AgentArgs, enrollment: Option<Enrollment>) -> String {
    console::phase_start(AgentPhase::Wipe);
    let lease = enrollment.as_ref().map(|e| e.lease);
    if let Some(mut e) = enrollment {
        e.token.wipe();
    }
    // Nothing of the lease is on disk yet: the start-up key and the local image come with
    // later issues and will be wiped here. What the lease left in RAM is the agent
    // certificate and its key, held only by `lm`'s TLS configuration: they go right after
    // the report that needs them.
    let with_cert = lm.has_client_cert();
    let backoff = Backoff::default();
    let mut delivered = Err(String::new());
    for attempt in 1..=WIPE_REPORT_ATTEMPTS {
        let report = lease::wipe_report(args.boot_id, args.boot_mac, attempt);
        match hello::send_report(&lm, &report, hello::timeouts(None)) {
            Ok(()) => {
                delivered = Ok(attempt);
                break;
            }
            Err(f) => {
                let chain = console::one_line(&format!("{:#}", f.error));
                tracing::warn!("wipe report attempt {attempt} failed: {chain}");
                delivered = Err(chain);
                if f.outcome == Outcome::Fatal {
                    break;
                }
                if attempt < WIPE_REPORT_ATTEMPTS {
                    sys::sleep(backoff.delay(attempt, sys::random_u64()));
                }
            }
        }
    }
    drop(lm);
    let shown = lease.map(|l| l.to_string());
    match &delivered {
        Ok(attempt) => console::phase_ok(
            AgentPhase::Wipe,
            &format!(
                "lease={} reported=yes attempt={attempt} client_cert={with_cert}",
                shown.as_deref().unwrap_or("none")
            ),
        ),
        Err(chain) => console::phase_fail(
            AgentPhase::Wipe,
            WIPE_REPORT_ATTEMPTS,
            &format!("wiped, but the wipe report was not delivered: {chain}"),
        ),
    }
    console::wiped(lease.as_ref().map(|l| l as &dyn std::fmt::Display));
    match (lease, delivered.is_ok()) {
        (Some(l), true) => format!("lease {l} released: wiped and reported"),
        (Some(l), false) => format!("lease {l} released: wiped, report not delivered"),
        (None, _) => "released by the lease manager".into(),
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
