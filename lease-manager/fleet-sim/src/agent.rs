//! One simulated agent: the same HTTP exchanges as the ramdisk agent, without a VM. It
//! fetches its boot script (the LM mints its token then), says hello, enrolls with a fresh
//! P-256 key and CSR, then sends heartbeats with its certificate until the LM says release,
//! confirms the wipe and stops. Transient failures (the LM restarting) are retried.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lm_api::{
    AgentAction, AgentPhase, AgentReport, EnrollRequest, EnrollResponse, HardwareFacts, Heartbeat,
    HeartbeatResponse, HelloRequest, HelloResponse, MacAddr,
};
use lm_client::{Client, ClientError, ClientIdentity};
use tokio::sync::Barrier;

use crate::script::{self, BootParams};

/// What one agent measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub enrolled: bool,
    /// The enroll request alone (after key generation), including its TCP connect and TLS
    /// handshake.
    pub enroll: Option<Duration>,
    /// From start to holding a certificate.
    pub to_enrolled: Option<Duration>,
    pub released: bool,
    pub error: Option<String>,
    pub retries: u32,
    /// Of those, retries of the enroll request (inside its measured latency).
    pub enroll_retries: u32,
}

/// Shared settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub boot_url: String,
    pub ca_pem: String,
    /// Give up after this long without success (the LM may be restarting in fault tests).
    pub patience: Duration,
    /// Stop heartbeating (without a release) after this long once enrolled; `None`: wait for
    /// the release.
    pub hold: Option<Duration>,
    /// The enroll burst's wall and CPU time.
    pub burst: Arc<crate::burst::Burst>,
}

/// Calls `f` until it succeeds, a non-transient error comes, or `deadline` passes.
pub async fn retry<T, F, Fut>(
    deadline: Instant,
    retries: &mut u32,
    what: &str,
    mut f: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let mut wait = Duration::from_millis(100);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && Instant::now() < deadline => {
                *retries += 1;
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(anyhow::Error::new(e).context(what.to_string())),
        }
    }
}

/// Runs one agent for `mac`. `barrier`: every agent waits there after its hello so that all
/// enroll at the same moment.
pub async fn run(mac: MacAddr, n: u32, s: Arc<Settings>, barrier: Arc<Barrier>) -> Outcome {
    let mut out = Outcome::default();
    let start = Instant::now();
    let mut waited = false;
    let r = run_inner(mac, n, &s, &barrier, &mut out, &mut waited, start).await;
    if !waited {
        // Failed before enrolling: counts as answered for the burst.
        if barrier.wait().await.is_leader() {
            s.burst.started();
        }
        s.burst.answered();
    }
    if let Err(e) = r {
        out.error = Some(format!("{e:#}"));
    }
    out
}

async fn run_inner(
    mac: MacAddr,
    n: u32,
    s: &Settings,
    barrier: &Barrier,
    out: &mut Outcome,
    waited: &mut bool,
    start: Instant,
) -> anyhow::Result<()> {
    let deadline = start + s.patience;
    // 1. The boot script (the gate opens when the LM wakes the server).
    let boot = Client::new(&s.boot_url, None, None)?;
    let path = format!("/boot/{}.ipxe", mac.dashed());
    let params: BootParams = loop {
        match boot.request("GET", &path, None).await {
            Ok(a) if a.status == 200 => {
                break script::parse(&String::from_utf8_lossy(&a.body))
                    .map_err(anyhow::Error::msg)?;
            }
            Ok(_) | Err(_) if Instant::now() < deadline => {
                out.retries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(a) => bail!("boot script: HTTP {}", a.status),
            Err(e) => return Err(e).context("boot script"),
        }
    };
    let (Some(lease), Some(token)) = (params.lease, params.token.clone()) else {
        bail!("the boot script carries no lease or token: not a lease boot");
    };
    // 2. Hello, anonymously (TLS with the LM CA pinned).
    let anon = Client::new(&params.api_url, Some(&s.ca_pem), None)?;
    let hello = HelloRequest {
        boot_id: params.boot_id,
        boot_mac: mac,
        address: Ipv4Addr::new(10, 200, (n >> 8) as u8, n as u8),
        agent_version: "fleet-sim".into(),
        uptime_ms: start.elapsed().as_millis() as u64,
        facts: HardwareFacts::default(),
    };
    let hr: HelloResponse = retry(deadline, &mut out.retries, "hello", || {
        anon.post(lm_api::paths::AGENT_HELLO, &hello)
    })
    .await?;
    // 3. Key and CSR in memory, then all agents enroll at once.
    let key = lm_pki::generate_key().map_err(|e| anyhow::anyhow!("{e}"))?;
    let csr = lm_pki::make_csr(&key, &hr.server).map_err(|e| anyhow::anyhow!("{e}"))?;
    // The ramdisk agent opens a new TCP and TLS connection per exchange (with the same TLS
    // configuration, so it may resume the hello's session): the enroll latency includes that
    // connect and handshake.
    anon.close().await;
    *waited = true;
    if barrier.wait().await.is_leader() {
        s.burst.started();
    }
    let req = EnrollRequest {
        lease,
        boot_id: params.boot_id,
        boot_mac: mac,
        token,
        csr_pem: csr,
    };
    let t0 = Instant::now();
    let before = out.retries;
    let er = retry(deadline, &mut out.retries, "enroll", || {
        anon.post::<_, EnrollResponse>("/v1/agent/enroll", &req)
    })
    .await;
    s.burst.answered();
    out.enroll_retries = out.retries - before;
    let er = er?;
    out.enroll = Some(t0.elapsed());
    out.to_enrolled = Some(start.elapsed());
    out.enrolled = true;
    drop(anon);
    // 4. Heartbeats with the certificate until released.
    let beat = Heartbeat {
        boot_id: params.boot_id,
        boot_mac: mac,
        uptime_ms: 0,
    };
    let every = Duration::from_secs(u64::from(er.heartbeat_secs.max(1)));
    let enrolled_at = Instant::now();
    // Like the ramdisk agent: the first heartbeat one interval after enrolling.
    if s.hold.is_none_or(|h| !h.is_zero()) {
        tokio::time::sleep(every).await;
    }
    // Built only now: loading the key (a P-256 point multiplication) and the PEMs is this
    // agent's own work after its enrollment, on its own CPU in reality; here it would take
    // the shared cores from the agents still enrolling.
    let me = Client::new(
        &params.api_url,
        Some(&s.ca_pem),
        Some(&ClientIdentity {
            cert_pem: er.cert_pem.clone(),
            key_pem: key.serialize_pem(),
        }),
    )?;
    loop {
        if s.hold.is_some_and(|h| enrolled_at.elapsed() >= h) {
            return Ok(());
        }
        let hb_deadline = Instant::now() + s.patience;
        let answer: HeartbeatResponse = retry(hb_deadline, &mut out.retries, "heartbeat", || {
            me.post("/v1/agent/heartbeat", &beat)
        })
        .await?;
        if answer.action == AgentAction::Release {
            let wiped = AgentReport {
                boot_id: params.boot_id,
                boot_mac: mac,
                phase: AgentPhase::Wipe,
                ok: true,
                detail: "wiped (simulated)".into(),
                attempt: 1,
            };
            let before = out.retries;
            let r = retry(hb_deadline, &mut out.retries, "wipe report", || {
                me.call::<serde_json::Value>(
                    "POST",
                    lm_api::paths::AGENT_REPORT,
                    Some(serde_json::to_vec(&wiped).unwrap_or_default()),
                )
            })
            .await;
            match r {
                Ok(_) => {}
                // The first report landed but its answer was lost (the LM restarted): the
                // LM revokes the agent certificate only once the server has left the lease,
                // so "revoked" on the retry is the confirmation.
                Err(e)
                    if out.retries > before
                        && e.downcast_ref::<ClientError>()
                            .and_then(ClientError::status)
                            == Some(401) => {}
                Err(e) => return Err(e),
            }
            out.released = true;
            return Ok(());
        }
        tokio::time::sleep(every).await;
    }
}
