//! The fleet benchmark: the Lease Manager (release build) in the lab's data-centre namespace,
//! and `fleet-sim` next to it running N simulated agents that all enroll at once over real
//! HTTPS, then are released. No reference tool does this; the goal (issue 3) is a p99 enroll
//! latency under 200 ms at 1,000 agents with no errors.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::lab::{Lab, LabSpec};
use crate::lm::{Artifacts, LabLm, LmOptions};

/// What `fleet-sim --json` printed.
#[derive(Debug, Clone, Deserialize)]
pub struct FleetResult {
    pub agents: u32,
    pub enrolled: u32,
    pub errors: u32,
    pub retries: u32,
    /// Retries of the enroll request itself (inside the measured latency).
    #[serde(default)]
    pub enroll_retries: u32,
    pub enroll_per_s: f64,
    pub enroll_latency_ms: Latency,
    pub released: u32,
    pub release_to_ended_ms: Option<u64>,
    pub total_ms: u64,
    pub lm_peak_rss_kib: Option<u64>,
    #[serde(default)]
    pub lm_cpu_ms: Option<u64>,
    #[serde(default)]
    pub first_errors: Vec<String>,
    /// The enroll burst alone: wall time and the CPU the LM and the simulator spent in it.
    #[serde(default)]
    pub burst: Option<Burst>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Burst {
    pub wall_ms: f64,
    pub lm_cpu_ms: Option<u64>,
    pub sim_cpu_ms: Option<u64>,
    /// CLOCK_MONOTONIC at its start and end (to cut a `perf record -k CLOCK_MONOTONIC`).
    pub monotonic_s: (f64, f64),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Starts a lab (no VMs) with the LM, for simulated agents.
pub fn lab_with_lm(
    art: &Artifacts,
    lm_bin: Option<&Path>,
    heartbeat_secs: u32,
) -> Result<(Lab, LabLm)> {
    let lab = Lab::start(LabSpec {
        prefix: "fleet".into(),
        ra: false,
        wol: false,
        ..LabSpec::default()
    })?;
    let lm = LabLm::start(
        &lab,
        art,
        &LmOptions {
            heartbeat_secs,
            // Simulated agents do no DHCP: the wake is confirmed by their hello.
            wake_attempts: 20,
            wake_confirm_ms: 60_000,
            bin: lm_bin.map(Path::to_path_buf),
            extra_toml: "[leases]\nrelease_timeout_s = 120\n".into(),
            ..LmOptions::default()
        },
    )?;
    Ok((lab, lm))
}

/// The `fleet-sim` command line for a lab LM.
pub fn sim_command(lab: &Lab, lm: &LabLm, sim: &Path, agents: u32) -> std::process::Command {
    let (addr, _) = lab.spec().ipv4;
    let mut c = lab.netns().command(sim);
    c.arg("--admin-socket")
        .arg(lm.state_dir().join("admin.sock"))
        .arg("--boot-url")
        .arg(format!("http://{addr}:8080"))
        .arg("--agents")
        .arg(agents.to_string())
        .arg("--lm-pid")
        .arg(lm.process().pid().to_string());
    c
}

/// Runs the benchmark once.
pub fn bench(art: &Artifacts, lm_bin: &Path, sim: &Path, agents: u32) -> Result<FleetResult> {
    let (lab, lm) = lab_with_lm(art, Some(lm_bin), 2)?;
    let out = sim_command(&lab, &lm, sim, agents)
        .args(["--release", "--json", "--patience-s", "120"])
        .output()
        .context("running fleet-sim")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let Some(line) = line else {
        bail!(
            "fleet-sim printed no result (exit {}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let r: FleetResult = serde_json::from_str(line).context("parsing fleet-sim's JSON")?;
    eprintln!("fleet-sim: {line}");
    std::thread::sleep(Duration::from_millis(100));
    drop(lm);
    drop(lab);
    Ok(r)
}

/// The report section for docs/benchmarks.md.
pub fn report(r: &FleetResult) -> String {
    let rss = r
        .lm_peak_rss_kib
        .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "n/a".into());
    let mut s = String::from("## Fleet: concurrent enrollment\n\n");
    s.push_str("| agents | enrolled | errors | enrollments/s | enroll p50 | enroll p99 | max | LM peak RSS | release -> all ended |\n|---|---|---|---|---|---|---|---|---|\n");
    s.push_str(&format!(
        "| {} | {} | {} | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms | {} | {} |\n",
        r.agents,
        r.enrolled,
        r.errors,
        r.enroll_per_s,
        r.enroll_latency_ms.p50_ms,
        r.enroll_latency_ms.p99_ms,
        r.enroll_latency_ms.max_ms,
        rss,
        r.release_to_ended_ms
            .map(|m| format!("{:.1} s", m as f64 / 1000.0))
            .unwrap_or_else(|| "-".into()),
    ));
    s.push_str(&format!(
        "\nGoal: p99 under 200 ms with no errors: **{}**. Retries: {} ({} of the enroll request). Wall time {:.1} s. LM CPU {}.\n",
        if r.errors == 0 && r.enroll_latency_ms.p99_ms < 200.0 {
            "met"
        } else {
            "missed"
        },
        r.retries,
        r.enroll_retries,
        r.total_ms as f64 / 1000.0,
        r.lm_cpu_ms
            .map(|ms| format!("{:.1} s ({:.2} ms per agent)", ms as f64 / 1000.0, ms as f64 / f64::from(r.agents)))
            .unwrap_or_else(|| "n/a".into())
    ));
    if let Some(b) = &r.burst {
        let ms = |v: Option<u64>| v.map_or("n/a".into(), |v| format!("{v} ms"));
        s.push_str(&format!(
            "Enroll burst: {:.0} ms wall, LM CPU {}, simulator CPU {} (of {:.0} ms on 2 cores).\n",
            b.wall_ms,
            ms(b.lm_cpu_ms),
            ms(b.sim_cpu_ms),
            2.0 * b.wall_ms
        ));
    }
    for e in &r.first_errors {
        s.push_str(&format!("- error: {e}\n"));
    }
    s
}
