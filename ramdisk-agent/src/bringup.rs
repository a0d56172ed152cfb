//! The bring-up loop: runs each phase, prints its markers, reports failures to the LM when it is
//! reachable, and follows [`agent_core::Sequence`] until the agent is ready (then it sends
//! heartbeats until the LM releases the server, wipes, and returns) or must power off (then it
//! returns the reason). On a leased boot the enrollment comes between hello and ready, and
//! every request after it goes with the agent certificate.
//!
//! Does IO (through the phase modules). Per-phase waits are bounded by what is left of the
//! `lm.poweroff` deadline.

use std::path::PathBuf;
use std::time::Duration;

use agent_core::cmdline::{DEFAULT_POWEROFF_SECS, MAX_CMDLINE};
use agent_core::dhcp_client::Lease;
use agent_core::tunnel_plan::{self, TunnelPlan};
use agent_core::{AgentArgs, Enrollment, LmHost, LogLevel, Next, Outcome, Policy, Sequence};
use anyhow::{Context, anyhow};
use lm_api::{AgentPhase, EnrollResponse, HardwareFacts, HelloResponse, Tunnel};

use crate::gateway::GatewayClient;
use crate::hello::{self, Failure};
use crate::https::{ClientIdentity, LmClient};
use crate::ipsec_way::{self, IpsecWay};
use crate::lease_way::LeaseWay;
use crate::net::{dhcp, link};
use crate::pid1::Mode;
use crate::pinned::Pin;
use crate::transfer::Way;
use crate::tunnel::AgentTunnel;
use crate::{console, facts, lease, modules, pid1, start, sys, transfer};
use po_api::ImageRef;
use sealed_image::VerifyingKey;

/// How the binary was started.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    /// Command line text to use instead of /proc/cmdline (`--cmdline`, not-init mode only).
    pub cmdline: Option<String>,
    /// The pinned CA (`--ca` in not-init mode; always [`crate::https::CA_PATH`] as PID 1).
    pub ca_path: String,
    /// Where the verified (still encrypted) image is kept (`--image-dir` in not-init mode;
    /// [`IMAGE_DIR`] as PID 1).
    pub image_dir: PathBuf,
    /// The local disk for the start-up key table and the image slot (`--disk` in not-init
    /// mode; as PID 1 the first of [`crate::local_disk::CANDIDATES`] that exists).
    pub disk: Option<PathBuf>,
}

/// Where PID 1 keeps the lease's sealed image (RAM: the initramfs root).
pub const IMAGE_DIR: &str = "/run/lease-image";

/// Waits of the phases, before the deadline bounds them.
const FIND_NIC: Duration = Duration::from_secs(30);
const CARRIER: Duration = Duration::from_secs(15);
const DHCP: Duration = Duration::from_secs(60);
const TUNNEL: Duration = Duration::from_secs(20);

/// What the agent has learned so far.
struct Agent<'a> {
    opts: Options,
    set_level: &'a dyn Fn(LogLevel),
    args: Option<AgentArgs>,
    iface: Option<link::Iface>,
    lease: Option<Lease>,
    facts: HardwareFacts,
    lm: Option<LmClient>,
    /// `lm.lease` + `lm.token`, kept apart from `args` so copies of those never hold the token.
    enrollment: Option<Enrollment>,
    hello: Option<HelloResponse>,
    /// The key pair being enrolled (kept across enrollment retries).
    agent_key: Option<lease::AgentKey>,
    enrolled: Option<EnrollResponse>,
    /// The agent certificate and key, shared with the gateway client (from enrollment to wipe).
    identity: Option<ClientIdentity>,
    /// The same certificate and key as the IKE credential (until an IPsec tunnel takes it).
    ike: Option<ipsec_way::Credential>,
    /// The tenant gateway's client, the checked plan and the tunnel (leases with a gateway).
    gateway: Option<GatewayClient>,
    plan: Option<TunnelPlan>,
    tunnel: Option<LeaseWay>,
    /// Transfer progress kept across attempts of the phase, and its result.
    resume: transfer::Resume,
    fetched: Option<transfer::Fetched>,
    /// The image is on the local disk under its start-up key.
    stored: bool,
}

fn fail(outcome: Outcome, error: anyhow::Error) -> Failure {
    Failure {
        error,
        outcome,
        lm_answered: false,
    }
}

fn bounded(d: Duration, remaining: Option<Duration>) -> Duration {
    remaining.map_or(d, |r| d.min(r))
}

impl Agent<'_> {
    fn args(&self) -> Result<&AgentArgs, Failure> {
        self.args
            .as_ref()
            .ok_or_else(|| fail(Outcome::Fatal, anyhow!("no arguments: init did not run")))
    }

    fn init(&mut self, seq: &mut Sequence) -> Result<String, Failure> {
        let mut detail = String::new();
        if self.opts.mode == Mode::Init {
            let (mounts, failed) = pid1::mount_filesystems();
            for e in failed {
                tracing::warn!("{e:#}");
            }
            detail = format!("{mounts} ");
        }
        let line = match &self.opts.cmdline {
            Some(text) => text.clone().into_bytes(),
            None => read_cmdline().map_err(|e| fail(Outcome::Fatal, e))?,
        };
        let mut args = AgentArgs::parse(&line).map_err(|e| fail(Outcome::Fatal, e.into()))?;
        self.enrollment = args.enrollment.take();
        seq.set_enroll(self.enrollment.is_some());
        (self.set_level)(args.log_level);
        if !args.ignored_lm_keys.is_empty() {
            tracing::info!(
                "ignoring lm.* keys this version does not know: {}",
                args.ignored_lm_keys.join(" ")
            );
        }
        seq.set_deadline(Duration::from_secs(u64::from(args.poweroff_after_secs)));
        detail += &format!(
            "boot={} mac={} lm={} poweroff_after={}s lease={}",
            args.boot_id,
            args.boot_mac,
            args.lm_url,
            args.poweroff_after_secs,
            self.enrollment
                .as_ref()
                .map_or("none".into(), |e| e.lease.to_string())
        );
        self.args = Some(args);
        Ok(detail)
    }

    fn run_phase(&mut self, phase: AgentPhase, seq: &mut Sequence) -> Result<String, Failure> {
        let remaining = seq.remaining(sys::now());
        match phase {
            AgentPhase::Init => self.init(seq),
            AgentPhase::Modules if self.opts.mode == Mode::NotInit => Ok("skipped=not-init".into()),
            AgentPhase::Modules => modules::load_all()
                .map(|l| l.detail())
                .map_err(|e| fail(Outcome::Fatal, e)),
            AgentPhase::Link => {
                let mac = self.args()?.boot_mac;
                let (iface, detail) = link::bring_up(
                    mac,
                    bounded(FIND_NIC, remaining),
                    bounded(CARRIER, remaining),
                )
                .map_err(|e| fail(Outcome::Transient, e))?;
                self.iface = Some(iface);
                Ok(detail)
            }
            AgentPhase::Dhcp => {
                let iface = self
                    .iface
                    .clone()
                    .ok_or_else(|| fail(Outcome::Fatal, anyhow!("no interface")))?;
                let transient = |e| fail(Outcome::Transient, e);
                let lease = dhcp::acquire(&iface, bounded(DHCP, remaining)).map_err(transient)?;
                dhcp::configure(&iface, &lease).map_err(transient)?;
                if self.opts.mode == Mode::Init
                    && let Err(e) = dhcp::write_resolv_conf(&lease)
                {
                    tracing::warn!("{e:#}");
                }
                let detail = dhcp::describe(&iface, &lease);
                self.lease = Some(lease);
                Ok(detail)
            }
            AgentPhase::Facts => {
                self.facts = facts::collect();
                Ok(facts::describe(&self.facts))
            }
            AgentPhase::Hello => {
                let args = self.args()?.clone();
                let address = self
                    .lease
                    .as_ref()
                    .map(|l| l.address)
                    .ok_or_else(|| fail(Outcome::Fatal, anyhow!("no lease")))?;
                if self.lm.is_none() {
                    let client = LmClient::new(args.lm_url.clone(), &self.opts.ca_path)
                        .map_err(|e| fail(Outcome::Fatal, e.into()))?;
                    self.lm = Some(client);
                }
                let lm = self
                    .lm
                    .as_ref()
                    .ok_or_else(|| fail(Outcome::Fatal, anyhow!("no LM client")))?;
                let answer =
                    hello::hello(lm, &args, address, &self.facts, hello::timeouts(remaining))?;
                let detail = format!(
                    "server={} heartbeat_secs={}",
                    answer.server, answer.heartbeat_secs
                );
                self.hello = Some(answer);
                Ok(detail)
            }
            AgentPhase::Enroll => {
                let args = self.args()?.clone();
                let lm = self
                    .lm
                    .as_ref()
                    .ok_or_else(|| fail(Outcome::Fatal, anyhow!("no LM client")))?;
                let enrollment = self.enrollment.as_mut().ok_or_else(|| {
                    fail(Outcome::Fatal, anyhow!("no lm.lease on the command line"))
                })?;
                let lease::Enrolled {
                    lm: mtls,
                    identity,
                    ike,
                    answer,
                } = lease::enroll(
                    lm,
                    &args,
                    enrollment,
                    &mut self.agent_key,
                    hello::timeouts(remaining),
                )?;
                console::enrolled(
                    &answer.lease,
                    &answer.server,
                    &answer.serial,
                    answer.not_after_ms,
                );
                let detail = format!(
                    "lease={} server={} serial={} not_after_ms={} heartbeat_secs={} tunnel={}",
                    answer.lease,
                    answer.server,
                    answer.serial,
                    answer.not_after_ms,
                    answer.heartbeat_secs,
                    answer.tunnel.as_str()
                );
                self.lm = Some(mtls);
                self.identity = Some(identity);
                self.ike = Some(ike);
                self.enrolled = Some(answer);
                Ok(detail)
            }
            AgentPhase::Tunnel => {
                let detail = self.tunnel_phase(remaining)?;
                self.report_done(phase, seq.attempt(), &detail, remaining)?;
                Ok(detail)
            }
            AgentPhase::Transfer => {
                let detail = self.transfer_phase()?;
                self.report_done(phase, seq.attempt(), &detail, remaining)?;
                Ok(detail)
            }
            AgentPhase::Start => self.start_phase(seq.attempt(), remaining),
            AgentPhase::Ready | AgentPhase::Wipe => Err(fail(
                Outcome::Fatal,
                anyhow!("phase {} is not run by the bring-up loop", phase.as_str()),
            )),
        }
    }

    /// Registers with the tenant gateway, checks its answer against the enrollment, builds the
    /// tunnel and waits for its handshake (kept across retries once built).
    fn tunnel_phase(&mut self, remaining: Option<Duration>) -> Result<String, Failure> {
        let enrolled = self
            .enrolled
            .as_ref()
            .ok_or_else(|| fail(Outcome::Fatal, anyhow!("not enrolled")))?;
        let Some(spec) = enrolled.gateway.clone() else {
            return Ok("skipped=no-gateway-in-the-lease".into());
        };
        if self.local_copy() {
            return Ok(format!("skipped=local-copy lease={}", enrolled.lease));
        }
        if self.tunnel.is_none() {
            let identity = self
                .identity
                .as_ref()
                .ok_or_else(|| fail(Outcome::Fatal, anyhow!("no agent certificate")))?;
            let client = GatewayClient::new(&spec, identity)?;
            let kind = enrolled.tunnel;
            let wg_key = (kind == Tunnel::Wireguard).then(wg_tunnel::PrivateKey::generate_os);
            let registered = client.register(
                wg_key.as_ref().map(|k| *k.public_key().as_bytes()),
                hello::timeouts(remaining),
            )?;
            let lm_ip = match self.args()?.lm_url.host() {
                LmHost::Ip(ip) => Some(*ip),
                LmHost::Name(_) => None,
            };
            let plan = tunnel_plan::check(
                &spec,
                enrolled.lease,
                &enrolled.server,
                kind,
                lm_ip,
                &registered,
            )
            .map_err(|e| {
                fail(
                    Outcome::Fatal,
                    anyhow::Error::new(e).context("refusing the gateway's registration answer"),
                )
            })?;
            let way = match wg_key {
                Some(key) => LeaseWay::Wireguard(Box::new(
                    AgentTunnel::build(&plan, key)
                        .map_err(|e| fail(Outcome::Fatal, e.context("building the tunnel")))?,
                )),
                None => {
                    let local = self
                        .lease
                        .as_ref()
                        .map(|l| l.address)
                        .ok_or_else(|| fail(Outcome::Fatal, anyhow!("no DHCP lease")))?;
                    let pin: Pin = spec.tls_cert_sha256.parse().map_err(|e| {
                        fail(
                            Outcome::Fatal,
                            anyhow::Error::new(e).context("gateway.tls_cert_sha256"),
                        )
                    })?;
                    let credential = self
                        .ike
                        .take()
                        .ok_or_else(|| fail(Outcome::Fatal, anyhow!("no IKE credential")))?;
                    LeaseWay::Ipsec(Box::new(IpsecWay::new(
                        plan.clone(),
                        local,
                        pin.bytes(),
                        credential,
                    )))
                }
            };
            self.gateway = Some(client);
            self.plan = Some(plan);
            self.tunnel = Some(way);
        }
        let (Some(tunnel), Some(plan), Some(client)) = (&self.tunnel, &self.plan, &self.gateway)
        else {
            return Err(fail(Outcome::Fatal, anyhow!("no tunnel")));
        };
        let took = tunnel
            .ensure_up(bounded(TUNNEL, remaining))
            .map_err(|e| fail(Outcome::Transient, e))?;
        Ok(format!(
            "gateway={} tunnel_address={} endpoint={} handshake_ms={} {}",
            client.register_url(),
            plan.address,
            plan.gateway_endpoint,
            took.as_millis(),
            tunnel.describe()
        ))
    }

    /// Pulls and verifies the lease's sealed image through the tunnel (once; retries resume).
    fn transfer_phase(&mut self) -> Result<String, Failure> {
        let enrolled = self
            .enrolled
            .as_ref()
            .ok_or_else(|| fail(Outcome::Fatal, anyhow!("not enrolled")))?;
        let Some(image) = enrolled.image.clone() else {
            return Ok("skipped=no-image-in-the-lease".into());
        };
        if self.local_copy() {
            return Ok(format!("skipped=local-copy image={image}"));
        }
        let (Some(tunnel), Some(plan), Some(client)) = (&self.tunnel, &self.plan, &self.gateway)
        else {
            return Ok(format!("skipped=no-gateway-in-the-lease image={image}"));
        };
        if self.fetched.is_none() {
            let id: ImageRef = image.parse().map_err(|e| {
                fail(
                    Outcome::Fatal,
                    anyhow::Error::new(e).context(format!("the lease's image {image:?}")),
                )
            })?;
            let device = tunnel.device().unwrap_or_default();
            let fetch_key =
                |image, epoch| client.fetch_key(plan, device, image, epoch, hello::timeouts(None));
            let src = transfer::Source {
                way: tunnel,
                store: plan.store,
                signing_key: VerifyingKey(plan.signing_key.0),
                fetch_key: &fetch_key,
            };
            let fetched = transfer::run(&src, id, &self.opts.image_dir, &mut self.resume)?;
            self.fetched = Some(fetched);
        }
        let f = self
            .fetched
            .as_ref()
            .ok_or_else(|| fail(Outcome::Fatal, anyhow!("no image")))?;
        Ok(format!(
            "image={} chunks={} bytes={} resumes={} seconds={:.3} path={}",
            f.image,
            f.chunks,
            f.bytes,
            f.resumes,
            f.elapsed.as_secs_f64(),
            f.chunks_file.display()
        ))
    }

    /// Stores the image under a host-bound start-up key, passes the start gate and, as PID 1,
    /// reboots into the tenant kernel (not-init mode stops after the gate and goes on to ready).
    fn start_phase(
        &mut self,
        attempt: u32,
        remaining: Option<Duration>,
    ) -> Result<String, Failure> {
        if self.fetched.is_none() && !self.local_copy() {
            return Ok("skipped=no-image".into());
        }
        let explicit = self.opts.disk.clone();
        let pid1 = self.opts.mode == Mode::Init;
        if !pid1 && explicit.is_none() {
            return Ok("skipped=no-disk-given-not-init".into());
        }
        let Some(disk) = start::disk_path(explicit.as_deref(), pid1) else {
            return Err(fail(
                Outcome::Fatal,
                anyhow!(
                    "no local disk for the start-up key and the image (looked for {})",
                    crate::local_disk::CANDIDATES.join(", ")
                ),
            ));
        };
        let (Some(lm), Some(args), Some(enrolled)) =
            (self.lm.as_ref(), self.args.as_ref(), self.enrolled.as_ref())
        else {
            return Err(fail(Outcome::Fatal, anyhow!("start without an enrollment")));
        };
        let lease = enrolled.lease.to_string();
        // A fresh transfer is stored first; a local copy (a reboot within the lease) only
        // goes through the gate.
        let fresh = match (self.fetched.as_ref(), self.plan.as_ref()) {
            (Some(f), Some(plan)) => Some((f, VerifyingKey(plan.signing_key.0))),
            _ => None,
        };
        let ctx = start::Ctx {
            lm,
            args,
            lease: &lease,
            not_after_ms: enrolled.not_after_ms,
            fresh,
            facts: &self.facts,
            disk: &disk,
        };
        let (image, detail) = start::store_and_gate(&ctx, &mut self.stored)?;
        let cmdline = crate::kexec::tenant_cmdline(&image.cmdline, &lease)
            .map_err(|e| fail(Outcome::Fatal, e))?;
        if self.opts.mode == Mode::NotInit {
            let detail = format!("{detail} kexec=skipped-not-init");
            self.report_done(AgentPhase::Start, attempt, &detail, remaining)?;
            return Ok(detail);
        }
        crate::kexec::load(&image, &cmdline).map_err(|e| fail(Outcome::Fatal, e))?;
        let detail = format!("{detail} kexec=loaded");
        self.report_done(AgentPhase::Start, attempt, &detail, remaining)?;
        console::phase_ok(AgentPhase::Start, &detail);
        // Nothing of the lease stays in this kernel's memory but what kexec copied; the disk
        // keeps the image and its wrapped start-up key for a reboot within the lease.
        let wiped = self.close_tenant_session();
        self.enrolled = None;
        if let Some(mut e) = self.enrollment.take() {
            e.token.wipe();
        }
        self.lm = None;
        self.agent_key = None;
        console::line(&start::kexec_marker(&image, &cmdline));
        tracing::info!("tenant side closed before kexec: {wiped}");
        drop(image);
        let e = crate::kexec::reboot_into();
        Err(fail(Outcome::Fatal, e))
    }

    /// Tells the LM a lease phase is done (it moves the server on); a lost report fails the
    /// phase transiently, and its retry only reports again.
    fn report_done(
        &self,
        phase: AgentPhase,
        attempt: u32,
        detail: &str,
        remaining: Option<Duration>,
    ) -> Result<(), Failure> {
        let (Some(lm), Some(args)) = (self.lm.as_ref(), self.args.as_ref()) else {
            return Err(fail(Outcome::Fatal, anyhow!("no LM client")));
        };
        hello::report(
            lm,
            args,
            phase,
            true,
            detail,
            attempt,
            hello::timeouts(remaining),
        )
        .map_err(|mut f| {
            f.error = f
                .error
                .context(format!("reporting {} done", phase.as_str()));
            f
        })
    }

    /// What the lease left on the host besides the certificate: the tunnel, the image and its
    /// start-up key (crypto-shred).
    fn wipe_tenant_side(&mut self) -> String {
        let closed = self.close_tenant_session();
        // The server goes back to the lender: every start-up key on its disk goes (this boot
        // may be the one after a power cycle, which knows no lease).
        let mut shredded = 0;
        if let Some(path) =
            start::disk_path(self.opts.disk.as_deref(), self.opts.mode == Mode::Init)
            && path.exists()
        {
            match crate::local_disk::LocalDisk::open(&path)
                .and_then(|d| crate::startup_key::shred_all(&d))
            {
                Ok(n) => {
                    shredded = n;
                    self.stored = false;
                }
                Err(err) => tracing::error!("destroying the start-up keys: {err:#}"),
            }
        }
        format!("{closed} startup_keys_destroyed={shredded}")
    }

    /// Whether the local disk already holds this lease's image under its start-up key (a
    /// reboot within the lease): then no tunnel and no transfer, the gate decides.
    fn local_copy(&self) -> bool {
        let (Some(e), Some(path)) = (
            self.enrolled.as_ref(),
            start::disk_path(self.opts.disk.as_deref(), self.opts.mode == Mode::Init),
        ) else {
            return false;
        };
        start::has_entry(&path, &e.lease.to_string())
    }

    /// Closes the tunnel and drops the gateway session and the RAM copy of the image; the
    /// stored image and its start-up key stay (before kexec, and for a reboot in the lease).
    fn close_tenant_session(&mut self) -> String {
        let tunnel = self.tunnel.take().map(LeaseWay::shutdown).is_some();
        self.ike = None;
        self.gateway = None;
        self.plan = None;
        self.identity = None;
        let mut removed = 0;
        if let Some(f) = self.fetched.take() {
            for p in [&f.manifest, &f.chunks_file] {
                match std::fs::remove_file(p) {
                    Ok(()) => removed += 1,
                    Err(e) => tracing::warn!("removing {}: {e}", p.display()),
                }
            }
        }
        format!("tunnel_closed={tunnel} image_files_removed={removed}")
    }

    /// Bring-up done: prints the ready markers, sends heartbeats until the LM releases the
    /// server, wipes, and returns the power-off reason (already printed).
    fn ready(&mut self) -> String {
        let (Some(args), Some(hello), Some(address)) = (
            self.args.clone(),
            self.hello.as_ref(),
            self.lease.as_ref().map(|l| l.address),
        ) else {
            let reason = "ready without a hello: this is a bug".to_string();
            console::poweroff(&reason);
            return reason;
        };
        let server = hello.server.clone();
        let heartbeat_secs = self
            .enrolled
            .as_ref()
            .map_or(hello.heartbeat_secs, |e| e.heartbeat_secs);
        console::phase_start(AgentPhase::Ready);
        console::phase_ok(
            AgentPhase::Ready,
            &format!(
                "heartbeat_secs={heartbeat_secs} client_cert={}",
                self.lm.as_ref().is_some_and(LmClient::has_client_cert)
            ),
        );
        console::ready(&server, address);
        let Some(lm) = self.lm.take() else {
            let reason = "ready without an LM client: this is a bug".to_string();
            console::poweroff(&reason);
            return reason;
        };
        lease::heartbeat_until_release(&lm, &args, Duration::from_secs(heartbeat_secs.into()));
        let wiped = self.wipe_tenant_side();
        tracing::info!("wiped the tenant side: {wiped}");
        self.enrolled = None;
        let reason = lease::wipe(lm, &args, self.enrollment.take());
        console::poweroff(&reason);
        reason
    }

    /// Reports a failure (or the power-off) to the LM, if the agent has an address and a client.
    fn report_failure(
        &self,
        phase: AgentPhase,
        attempt: u32,
        detail: &str,
        remaining: Option<Duration>,
    ) {
        let (Some(lm), Some(args), Some(_)) =
            (self.lm.as_ref(), self.args.as_ref(), self.lease.as_ref())
        else {
            return;
        };
        if let Err(f) = hello::report(
            lm,
            args,
            phase,
            false,
            detail,
            attempt,
            hello::timeouts(remaining),
        ) {
            tracing::warn!("could not report the failure to the LM: {:#}", f.error);
        }
    }
}

fn read_cmdline() -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open("/proc/cmdline")
        .context("opening /proc/cmdline (is /proc mounted?)")?;
    let mut buf = Vec::new();
    // One byte over the limit, so the parser can refuse an oversized line by its length.
    f.take(MAX_CMDLINE as u64 + 1)
        .read_to_end(&mut buf)
        .context("reading /proc/cmdline")?;
    Ok(buf)
}

/// Runs the bring-up. Returns only to power off, with the reason (already printed as
/// `AGENT-POWEROFF` and reported to the LM when possible).
pub fn run(opts: Options, set_level: &dyn Fn(LogLevel)) -> String {
    let mut agent = Agent {
        opts,
        set_level,
        args: None,
        iface: None,
        lease: None,
        facts: HardwareFacts::default(),
        lm: None,
        enrollment: None,
        hello: None,
        agent_key: None,
        enrolled: None,
        identity: None,
        ike: None,
        gateway: None,
        plan: None,
        tunnel: None,
        resume: transfer::Resume::default(),
        fetched: None,
        stored: false,
    };
    let mut seq = Sequence::new(
        Policy::with_deadline_secs(DEFAULT_POWEROFF_SECS),
        sys::now(),
    );
    let mut next = seq.first();
    let mut last_error = String::new();
    loop {
        let phase = match next {
            Next::Run(AgentPhase::Ready) => return agent.ready(),
            Next::Run(p) => p,
            Next::RetryAfter(p, d) => {
                tracing::info!("retrying {} in {} ms", p.as_str(), d.as_millis());
                sys::sleep(d);
                p
            }
            Next::PowerOff(reason) => {
                let reason = if last_error.is_empty() {
                    reason.to_string()
                } else {
                    format!("{reason}: {last_error}")
                };
                console::poweroff(&reason);
                let grace = Some(Duration::from_secs(5));
                agent.report_failure(
                    seq.phase(),
                    seq.attempt(),
                    &format!("AGENT-POWEROFF {reason}"),
                    grace,
                );
                return reason;
            }
        };
        console::phase_start(phase);
        let outcome = match agent.run_phase(phase, &mut seq) {
            Ok(detail) => {
                console::phase_ok(phase, &detail);
                Outcome::Ok
            }
            Err(f) => {
                let chain = console::one_line(&format!("{:#}", f.error));
                console::phase_fail(phase, seq.attempt(), &chain);
                if f.lm_answered {
                    agent.report_failure(phase, seq.attempt(), &chain, seq.remaining(sys::now()));
                }
                last_error = chain;
                f.outcome
            }
        };
        next = seq.on_outcome(outcome, sys::now(), sys::random_u64());
    }
}
