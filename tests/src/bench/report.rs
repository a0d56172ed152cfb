//! The benchmark report: markdown tables with the reference side by side and ratios. Pure.

use std::fmt::Write;

use super::dhcp::{DhcpResult, Server};
use super::ratio;
use super::tftp::{Mode, TftpResult};

/// DHCP table.
pub fn dhcp(results: &[DhcpResult]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "| DHCP server | max DORA/s (<=1% unfinished) | vs ours | probe rate | DISCOVER->OFFER p50 / p99 | REQUEST->ACK p50 / p99 | probe completed |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|");
    let ours = results
        .iter()
        .find(|r| r.server == Server::Ours)
        .and_then(|r| r.best.as_ref())
        .map(|b| b.rate)
        .unwrap_or(0.0);
    for r in results {
        let best = r.best.as_ref().map(|b| b.rate).unwrap_or(0.0);
        let vs = if r.server == Server::Ours {
            "-".to_string()
        } else {
            ratio(ours, best)
        };
        let _ = writeln!(
            o,
            "| {} | {:.0} | {} | {}/s | {:.3} / {:.3} ms | {:.3} / {:.3} ms | {:.1}% |",
            r.server.name(),
            best,
            vs,
            r.probe_rate,
            r.do_p50,
            r.do_p99,
            r.ra_p50,
            r.ra_p99,
            r.probe_completed * 100.0
        );
    }
    let _ = writeln!(
        o,
        "\nEach step of the rate search (asked -> achieved, unfinished):\n"
    );
    for r in results {
        let steps: Vec<String> = r
            .runs
            .iter()
            .map(|x| {
                format!(
                    "{} -> {:.0} ({:.2}%)",
                    x.asked,
                    x.rate,
                    x.unfinished() * 100.0
                )
            })
            .collect();
        let _ = writeln!(o, "- {}: {}", r.server.name(), steps.join(", "));
    }
    o
}

/// TFTP table.
pub fn tftp(results: &[TftpResult]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "| TFTP, 30 MB, blksize 1468 | ours MB/s | reference | reference MB/s | ours / reference |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|");
    for r in results {
        let mode = match r.mode {
            Mode::Lockstep => "lock-step (curl)",
            Mode::Window16 => "windowsize 16 (atftp)",
        };
        let _ = writeln!(
            o,
            "| {mode} | {:.1} | {} | {:.1} | {} |",
            r.ours_mbs,
            r.reference,
            r.reference_mbs,
            ratio(r.ours_mbs, r.reference_mbs)
        );
    }
    o
}
