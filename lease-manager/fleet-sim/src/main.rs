//! `fleet-sim`: N simulated ramdisk agents as tokio tasks against a real Lease Manager over
//! real HTTPS (no VMs). It adds N servers and a tenant through the LM's admin socket, asks for
//! the servers as the tenant over mutual TLS, runs one agent per server (boot script ->
//! hello -> all enroll at once -> heartbeats), optionally releases, and reports enrollments
//! per second, enroll latency (p50/p99/max), errors and the LM's peak RSS.

mod agent;
mod burst;
mod script;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use lm_api::{
    AddServer, AddTenant, CreateLease, CreateLeaseResponse, CredentialBundle, LeaseState,
    LeaseView, MacAddr, ServerView, Tunnel,
};
use lm_client::Client;
use tokio::sync::Barrier;

#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The LM's admin socket (`<state_dir>/admin.sock`).
    #[arg(long)]
    admin_socket: PathBuf,
    /// The LM's plain-HTTP boot service, e.g. http://10.88.0.1:8080.
    #[arg(long)]
    boot_url: String,
    /// How many agents (servers).
    #[arg(long, default_value_t = 100)]
    agents: u32,
    /// Tenant to create for the run (default: fleet-<random>).
    #[arg(long)]
    tenant: Option<String>,
    /// Lease duration asked for, seconds.
    #[arg(long, default_value_t = 3600)]
    duration_s: u64,
    /// Release the leases once every agent enrolled, and wait until they are over.
    #[arg(long)]
    release: bool,
    /// Give up on an agent after this many seconds without progress.
    #[arg(long, default_value_t = 120)]
    patience_s: u64,
    /// The LM's PID, to report its peak RSS (VmHWM).
    #[arg(long)]
    lm_pid: Option<u32>,
    /// First two octets of the simulated MACs.
    #[arg(long, default_value = "02:5e")]
    mac_prefix: String,
    /// Machine-readable report.
    #[arg(long)]
    json: bool,
}

/// Lets this process hold one socket per agent (and the LM's, for the same reason).
fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn macs(prefix: &str, n: u32) -> anyhow::Result<Vec<MacAddr>> {
    let p: Vec<u8> = prefix
        .split(':')
        .map(|h| u8::from_str_radix(h, 16))
        .collect::<Result<_, _>>()
        .context("--mac-prefix: two hex octets like 02:5e")?;
    if p.len() != 2 {
        bail!("--mac-prefix: two hex octets like 02:5e");
    }
    Ok((0..n)
        .map(|i| {
            let b = i.to_be_bytes();
            MacAddr([p[0], p[1], b[0], b[1], b[2], b[3]])
        })
        .collect())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    raise_nofile();
    if args.agents == 0 {
        bail!("--agents must be at least 1");
    }
    let admin = Client::unix(&args.admin_socket);
    let tenant_name = args
        .tenant
        .clone()
        .unwrap_or_else(|| format!("fleet-{:08x}", rand::random::<u32>()));
    let macs = macs(&args.mac_prefix, args.agents)?;

    eprintln!("fleet-sim: adding {} servers", args.agents);
    let existing: Vec<ServerView> = admin.get("/v1/servers").await.context("listing servers")?;
    for (i, mac) in macs.iter().enumerate() {
        if existing.iter().any(|s| s.mac == *mac) {
            continue;
        }
        let _: ServerView = admin
            .post(
                "/v1/servers",
                &AddServer {
                    name: format!("sim-{}", mac.dashed()),
                    mac: *mac,
                    reserved_ip: None,
                    wol_password: None,
                },
            )
            .await
            .with_context(|| format!("adding server {mac}"))?;
        if (i + 1) % 200 == 0 {
            eprintln!("fleet-sim:   {} servers", i + 1);
        }
    }
    eprintln!("fleet-sim: adding tenant {tenant_name}");
    let bundle: CredentialBundle = admin
        .post(
            "/v1/tenants",
            &AddTenant {
                name: tenant_name.parse().map_err(anyhow::Error::msg)?,
                cert_days: None,
            },
        )
        .await
        .context("adding the tenant")?;
    let tenant = Client::from_bundle(&bundle)?;

    // Start the agents first: they wait for their boot scripts, as powered-off servers wait
    // for their wake.
    let settings = Arc::new(agent::Settings {
        boot_url: args.boot_url.clone(),
        ca_pem: bundle.ca_pem.clone(),
        patience: Duration::from_secs(args.patience_s),
        hold: (!args.release).then_some(Duration::ZERO),
        burst: Arc::new(burst::Burst::new(args.lm_pid, args.agents as usize)),
    });
    let barrier = Arc::new(Barrier::new(args.agents as usize));
    let started = Instant::now();
    let cpu_before = args.lm_pid.and_then(|p| burst::cpu_ms(&p.to_string()));
    let tasks: Vec<_> = macs
        .iter()
        .enumerate()
        .map(|(i, mac)| {
            tokio::spawn(agent::run(
                *mac,
                i as u32,
                settings.clone(),
                barrier.clone(),
            ))
        })
        .collect();

    eprintln!(
        "fleet-sim: asking for {} servers as {tenant_name}",
        args.agents
    );
    let mut leases = Vec::new();
    let mut left = args.agents;
    while left > 0 {
        let count = left.min(lm_api::MAX_COUNT);
        let r: CreateLeaseResponse = tenant
            .post(
                "/v1/leases",
                &CreateLease {
                    count,
                    duration_s: args.duration_s,
                    allow_partial: false,
                    queue: false,
                    tunnel: Tunnel::Wireguard,
                    role: Some("fleet-sim".into()),
                    image: None,
                    gateway: None,
                },
            )
            .await
            .context("creating the lease")?;
        eprintln!("fleet-sim: lease {}: {}", r.lease.id, r.message);
        leases.push(r.lease.id);
        left -= count;
    }

    let mut outcomes = Vec::with_capacity(tasks.len());
    let mut release_started = None;
    if args.release {
        // Wait until every agent enrolled (or failed), then release.
        loop {
            let views: Vec<LeaseView> = lm_retry(|| tenant.get("/v1/leases")).await?;
            let enrolled: usize = views
                .iter()
                .filter(|l| leases.contains(&l.id))
                .flat_map(|l| &l.servers)
                .filter(|s| s.cert_serial.is_some())
                .count();
            eprintln!("fleet-sim: {enrolled}/{} enrolled", args.agents);
            if enrolled as u32 >= args.agents || tasks.iter().all(|t| t.is_finished()) {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        release_started = Some(Instant::now());
        for id in &leases {
            let path = format!("/v1/leases/{id}/release");
            let _: LeaseView = lm_retry(|| tenant.call("POST", &path, None)).await?;
        }
    }
    for t in tasks {
        outcomes.push(t.await.unwrap_or_else(|e| agent::Outcome {
            error: Some(format!("agent task panicked: {e}")),
            ..Default::default()
        }));
    }
    let mut ended = None;
    if let Some(t0) = release_started {
        loop {
            let views: Vec<LeaseView> = lm_retry(|| tenant.get("/v1/leases")).await?;
            if views
                .iter()
                .filter(|l| leases.contains(&l.id))
                .all(|l| l.state == LeaseState::Ended)
            {
                ended = Some(t0.elapsed());
                break;
            }
            if t0.elapsed() > Duration::from_secs(args.patience_s) {
                bail!("the leases did not end within {} s", args.patience_s);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let total = started.elapsed();
    let lm_cpu = match (
        cpu_before,
        args.lm_pid.and_then(|p| burst::cpu_ms(&p.to_string())),
    ) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    report(
        &args,
        &outcomes,
        total,
        ended,
        lm_cpu,
        settings.burst.cost(),
    )
}

/// The tenant's calls survive an LM restart (fault tests kill it).
async fn lm_retry<T, F, Fut>(f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, lm_client::ClientError>>,
{
    let mut retries = 0;
    agent::retry(
        Instant::now() + Duration::from_secs(60),
        &mut retries,
        "tenant call",
        f,
    )
    .await
}

fn report(
    args: &Args,
    outcomes: &[agent::Outcome],
    total: Duration,
    release: Option<Duration>,
    lm_cpu_ms: Option<u64>,
    burst: Option<burst::Cost>,
) -> anyhow::Result<()> {
    let enroll: Vec<Duration> = outcomes.iter().filter_map(|o| o.enroll).collect();
    let s = stats::summarize(&enroll);
    let errors: Vec<&str> = outcomes.iter().filter_map(|o| o.error.as_deref()).collect();
    let retries: u32 = outcomes.iter().map(|o| o.retries).sum();
    let enroll_retries: u32 = outcomes.iter().map(|o| o.enroll_retries).sum();
    // Enrollments per second: all enrolled agents over the span from the barrier (first
    // enroll request) to the last certificate.
    let span = enroll.iter().max().copied().unwrap_or_default();
    let rate = if span.is_zero() {
        0.0
    } else {
        enroll.len() as f64 / span.as_secs_f64()
    };
    let rss = args.lm_pid.and_then(peak_rss_kib);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "agents": args.agents,
                "enrolled": enroll.len(),
                "errors": errors.len(),
                "retries": retries,
                "enroll_retries": enroll_retries,
                "enroll_per_s": rate,
                "enroll_latency_ms": s,
                "released": outcomes.iter().filter(|o| o.released).count(),
                "release_to_ended_ms": release.map(|d| d.as_millis() as u64),
                "total_ms": total.as_millis() as u64,
                "lm_peak_rss_kib": rss,
                "lm_cpu_ms": lm_cpu_ms,
                "burst": burst,
                "first_errors": errors.iter().take(5).collect::<Vec<_>>(),
            })
        );
    } else {
        println!("agents            {}", args.agents);
        println!(
            "enrolled          {} ({} errors, {retries} retries, {enroll_retries} of the enroll request)",
            enroll.len(),
            errors.len()
        );
        println!("enrollments/s     {rate:.0} (all agents enrolling at once)");
        println!(
            "enroll latency    p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
            s.p50_ms, s.p99_ms, s.max_ms
        );
        if let Some(r) = release {
            println!(
                "release           {} agents wiped, leases ended {:.1} s after the release",
                outcomes.iter().filter(|o| o.released).count(),
                r.as_secs_f64()
            );
        }
        if let Some(ms) = lm_cpu_ms {
            println!(
                "LM CPU            {:.1} s for the run ({:.2} ms per agent)",
                ms as f64 / 1000.0,
                ms as f64 / f64::from(args.agents)
            );
        }
        if let Some(b) = burst {
            let ms = |v: Option<u64>| v.map_or("n/a".into(), |v| format!("{v} ms"));
            println!(
                "enroll burst      {:.1} ms wall, LM CPU {}, simulator CPU {}",
                b.wall_ms,
                ms(b.lm_cpu_ms),
                ms(b.sim_cpu_ms)
            );
        }
        if let Some(kib) = rss {
            println!("LM peak RSS       {:.1} MiB", kib as f64 / 1024.0);
        }
        println!("wall time         {:.1} s", total.as_secs_f64());
        for e in errors.iter().take(5) {
            println!("error: {e}");
        }
    }
    if !errors.is_empty() {
        bail!("{} of {} agents failed", errors.len(), args.agents);
    }
    Ok(())
}
