//! The DHCP benchmark: the highest DORA rate with at most 1% unfinished exchanges (perfdhcp,
//! relay mode) and DISCOVER->OFFER / REQUEST->ACK latency p50/p99 (our probe) for the Lease
//! Manager's server (sled, leases fsynced before the ACK), kea-dhcp4 (memfile, persisted) and
//! dnsmasq (lease file, --no-ping). IO.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use super::dhcp_latency::{self, percentile};
use super::perfdhcp::{self, PerfdhcpRun};
use super::{CLIENT_ADDR, Pair, SERVER_ADDR, ours, scratch};
use crate::process::Process;

/// The servers compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Ours,
    Kea,
    Dnsmasq,
}

impl Server {
    pub fn name(self) -> &'static str {
        match self {
            Server::Ours => "lease-manager (sled, fsync per batch)",
            Server::Kea => "kea-dhcp4 2.2 (memfile, persist)",
            Server::Dnsmasq => "dnsmasq (lease file, --no-ping)",
        }
    }
}

/// One server's result.
#[derive(Debug, Clone)]
pub struct DhcpResult {
    pub server: Server,
    pub best: Option<PerfdhcpRun>,
    pub runs: Vec<PerfdhcpRun>,
    pub probe_rate: u32,
    pub do_p50: f64,
    pub do_p99: f64,
    pub ra_p50: f64,
    pub ra_p99: f64,
    pub probe_completed: f64,
}

fn start(server: Server, pair: &Pair, dir: &Path, lm: &Path) -> Result<Process> {
    let log = dir.join("server.log");
    let ns = Some(pair.server.name());
    let (cmd, marker) = match server {
        Server::Ours => {
            let mut c = ours(lm, &dir.join("state"), "10.88.255.254", None);
            c.env("RUST_LOG", "warn,lease_manager=info");
            (c, Some("bench-pxe ready"))
        }
        Server::Kea => {
            let cfg = dir.join("kea.json");
            let leases = dir.join("kea-leases4.csv");
            std::fs::write(
                &cfg,
                format!(
                    r#"{{ "Dhcp4": {{
  "interfaces-config": {{ "interfaces": ["bs0"], "dhcp-socket-type": "udp" }},
  "lease-database": {{ "type": "memfile", "persist": true, "name": "{}", "lfc-interval": 0 }},
  "valid-lifetime": 3600,
  "subnet4": [ {{ "id": 1, "subnet": "10.88.0.0/16", "pools": [ {{ "pool": "10.88.1.0 - 10.88.255.254" }} ] }} ],
  "loggers": [ {{ "name": "kea-dhcp4", "severity": "WARN", "output_options": [ {{ "output": "stdout" }} ] }} ]
}} }}"#,
                    leases.display()
                ),
            )?;
            let mut c = Command::new("kea-dhcp4");
            c.arg("-c")
                .arg(&cfg)
                .env("KEA_PIDFILE_DIR", dir)
                .env("KEA_LOCKFILE_DIR", dir);
            (c, None)
        }
        Server::Dnsmasq => {
            let mut c = Command::new("dnsmasq");
            c.args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--port=0",
                "--interface=bs0",
                "--bind-interfaces",
            ])
            .args([
                "--dhcp-range=10.88.1.0,10.88.255.254,255.255.0.0,1h",
                "--no-ping",
                "--dhcp-authoritative",
            ])
            .args(["--dhcp-lease-max=100000", "--log-facility=-"])
            .arg(format!(
                "--dhcp-leasefile={}",
                dir.join("dnsmasq.leases").display()
            ));
            (c, Some("started, version"))
        }
    };
    let p = Process::spawn(server.name(), &cmd, ns, Some(&log))?;
    match marker {
        Some(m) => {
            p.wait_for(m, Duration::from_secs(15))
                .map_err(|e| anyhow::anyhow!("{} did not start: {e}", server.name()))?;
        }
        None => std::thread::sleep(Duration::from_secs(2)),
    }
    if !p.is_running() {
        anyhow::bail!("{} exited at start:\n{}", server.name(), p.dump(20));
    }
    Ok(p)
}

/// Measures one server.
pub fn bench(server: Server, lm: &Path, steps: &[u32], secs: u32) -> Result<DhcpResult> {
    eprintln!("  DHCP: {}", server.name());
    let dir = scratch(&format!("dhcp-{server:?}").to_lowercase())?;
    let pair = Pair::new()?;
    let p = start(server, &pair, &dir, lm)?;
    let (best, runs) = perfdhcp::search(
        &pair.client,
        CLIENT_ADDR,
        SERVER_ADDR,
        steps,
        secs,
        0.01,
        Duration::from_millis(500),
    )
    .with_context(|| format!("perfdhcp against {}", server.name()))?;
    // Latency at a moderate load the server sustains: half its best rate, at most 2,000/s.
    let probe_rate = best
        .as_ref()
        .map(|b| ((b.rate / 2.0) as u32).clamp(50, 2000))
        .unwrap_or(50);
    // A fresh server for the probe, so its MACs meet an empty table like perfdhcp's first step.
    drop(p);
    let dir2 = scratch(&format!("dhcp-{server:?}-probe").to_lowercase())?;
    let p = start(server, &pair, &dir2, lm)?;
    let lat = dhcp_latency::probe(
        &pair.client,
        CLIENT_ADDR.parse()?,
        SERVER_ADDR.parse()?,
        probe_rate,
        Duration::from_secs(4),
    )?;
    drop(p);
    eprintln!(
        "    probe at {probe_rate}/s: {}/{} completed, OFFER p50 {:.3} ms p99 {:.3} ms, ACK p50 {:.3} ms p99 {:.3} ms",
        lat.completed,
        lat.started,
        percentile(&lat.do_ms, 50.0),
        percentile(&lat.do_ms, 99.0),
        percentile(&lat.ra_ms, 50.0),
        percentile(&lat.ra_ms, 99.0)
    );
    Ok(DhcpResult {
        server,
        best,
        runs,
        probe_rate,
        do_p50: percentile(&lat.do_ms, 50.0),
        do_p99: percentile(&lat.do_ms, 99.0),
        ra_p50: percentile(&lat.ra_ms, 50.0),
        ra_p99: percentile(&lat.ra_ms, 99.0),
        probe_completed: lat.completed as f64 / lat.started.max(1) as f64,
    })
}
