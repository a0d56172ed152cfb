//! Running perfdhcp (Kea's DHCP load generator, package kea-admin) in relay mode and parsing
//! its report. The parser is pure and tested on perfdhcp 2.2's output.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::netns::Netns;

/// One perfdhcp run's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PerfdhcpRun {
    /// Requested rate (exchanges/s).
    pub asked: u32,
    /// Completed 4-way exchanges per second of the test period (perfdhcp's own "Rate" line also
    /// counts its exit wait, which understates short runs).
    pub rate: f64,
    /// perfdhcp's "Rate" line.
    pub perfdhcp_rate: f64,
    pub discovers_sent: u64,
    pub offers_received: u64,
    pub requests_sent: u64,
    pub acks_received: u64,
    /// Average DISCOVER->OFFER and REQUEST->ACK delays in ms.
    pub do_avg_ms: f64,
    pub ra_avg_ms: f64,
    pub do_max_ms: f64,
    pub ra_max_ms: f64,
    /// Leases perfdhcp saw handed out twice (must be 0).
    pub non_unique: u64,
}

impl PerfdhcpRun {
    /// DORA exchanges that did not finish, as a fraction of those started.
    pub fn unfinished(&self) -> f64 {
        if self.discovers_sent == 0 {
            return 1.0;
        }
        1.0 - self.acks_received as f64 / self.discovers_sent as f64
    }
}

fn num(line: &str) -> Option<f64> {
    line.split(':')
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Parses perfdhcp's text report of a run of `secs` seconds.
pub fn parse(text: &str, asked: u32, secs: u32) -> Result<PerfdhcpRun> {
    let mut r = PerfdhcpRun {
        asked,
        ..Default::default()
    };
    let mut section = "";
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Rate:") {
            r.perfdhcp_rate = rest
                .split_whitespace()
                .next()
                .and_then(|x| x.parse().ok())
                .context("bad Rate line")?;
        } else if line.contains("Statistics for: DISCOVER-OFFER") {
            section = "do";
        } else if line.contains("Statistics for: REQUEST-ACK") {
            section = "ra";
        } else if line.starts_with("***") {
            section = "";
        }
        let v = || num(line).unwrap_or(0.0);
        match (section, line.split(':').next().unwrap_or("")) {
            ("do", "sent packets") => r.discovers_sent = v() as u64,
            ("do", "received packets") => r.offers_received = v() as u64,
            ("do", "avg delay") => r.do_avg_ms = v(),
            ("do", "max delay") => r.do_max_ms = v(),
            ("ra", "sent packets") => r.requests_sent = v() as u64,
            ("ra", "received packets") => r.acks_received = v() as u64,
            ("ra", "avg delay") => r.ra_avg_ms = v(),
            ("ra", "max delay") => r.ra_max_ms = v(),
            (_, "non unique addresses") => r.non_unique += v() as u64,
            _ => {}
        }
    }
    if r.discovers_sent == 0 {
        anyhow::bail!("perfdhcp printed no DISCOVER-OFFER statistics:\n{text}");
    }
    r.rate = r.acks_received as f64 / f64::from(secs.max(1));
    Ok(r)
}

/// Runs perfdhcp in relay mode from `ns` (local address `local`) against `server` for
/// `secs` seconds at `rate` exchanges/s with up to `clients` distinct MACs.
pub fn run(
    ns: &Netns,
    local: &str,
    server: &str,
    rate: u32,
    secs: u32,
    clients: u32,
) -> Result<PerfdhcpRun> {
    let out = ns
        .command("perfdhcp")
        .args([
            "-4",
            "-l",
            local,
            "-r",
            &rate.to_string(),
            "-p",
            &secs.to_string(),
            "-R",
            &clients.to_string(),
        ])
        .arg(server)
        .output()
        .context("running perfdhcp (package kea-admin)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse(&text, rate, secs)
        .with_context(|| format!("perfdhcp stderr: {}", String::from_utf8_lossy(&out.stderr)))
}

/// Highest rate (from `steps`) whose run leaves at most `max_unfinished` exchanges unfinished;
/// stops at the first failing step. Returns every run.
pub fn search(
    ns: &Netns,
    local: &str,
    server: &str,
    steps: &[u32],
    secs: u32,
    max_unfinished: f64,
    pause: Duration,
) -> Result<(Option<PerfdhcpRun>, Vec<PerfdhcpRun>)> {
    let mut best = None;
    let mut all = Vec::new();
    for &rate in steps {
        let r = run(ns, local, server, rate, secs, 60_000)?;
        let ok =
            r.unfinished() <= max_unfinished && r.rate >= 0.95 * rate as f64 && r.non_unique == 0;
        eprintln!(
            "    perfdhcp -r {rate}: {:.0}/s, unfinished {:.2}% {}",
            r.rate,
            r.unfinished() * 100.0,
            if ok { "ok" } else { "over the limit" }
        );
        all.push(r.clone());
        if !ok {
            break;
        }
        best = Some(r);
        std::thread::sleep(pause);
    }
    Ok((best, all))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running: perfdhcp -4 -l 10.88.0.2 -r 500 -p 5 10.88.0.1
***Rate statistics***
Rate: 499.7 4-way exchanges/second, expected rate: 500

***Statistics for: DISCOVER-OFFER***
sent packets: 2500
received packets: 2499
drops: 1
drops ratio: 0.04 %
orphans: 0
rejected leases: 0
non unique addresses: 0

min delay: 0.110 ms
avg delay: 0.189 ms
max delay: 1.276 ms
std deviation: 0.061 ms
collected packets: 0

***Statistics for: REQUEST-ACK***
sent packets: 2499
received packets: 2490
drops: 9
drops ratio: 0.36 %
orphans: 0
rejected leases: 0
non unique addresses: 0

min delay: 0.210 ms
avg delay: 0.450 ms
max delay: 3.100 ms
std deviation: 0.100 ms
collected packets: 0
";

    #[test]
    fn parses_perfdhcp_2_2() {
        let r = parse(SAMPLE, 500, 5).unwrap();
        assert_eq!(r.perfdhcp_rate, 499.7);
        assert_eq!(r.rate, 498.0);
        assert_eq!(
            (
                r.discovers_sent,
                r.offers_received,
                r.requests_sent,
                r.acks_received
            ),
            (2500, 2499, 2499, 2490)
        );
        assert_eq!((r.do_avg_ms, r.ra_avg_ms, r.ra_max_ms), (0.189, 0.45, 3.1));
        assert!((r.unfinished() - 0.004).abs() < 1e-9);
        assert!(parse("nothing useful", 1, 1).is_err());
    }
}
