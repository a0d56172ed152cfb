//! The Markdown tables of `lab bench ipsec`: throughput and handshake per path, the ratios
//! against strongSwan-to-strongSwan and the WireGuard figures of the same run. Pure.

use std::fmt::Write as _;

use super::{Rate, Results, Stack};
use crate::bench::ratio;
use crate::bench::tunnel::{self, median};

fn spread(v: &[f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let lo = v.iter().copied().fold(f64::MAX, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    format!(
        "{:.2} ms ({lo:.2}-{hi:.2}, {})",
        median(v.to_vec()),
        v.len()
    )
}

/// The Markdown tables of `lab bench ipsec`, with the ratios against strongSwan.
pub fn report(res: &Results) -> String {
    let mut o = String::new();
    let rates = |stack: Stack, upload: bool| -> Vec<f64> {
        res.rates
            .iter()
            .filter(|r| r.stack == stack && r.upload == upload)
            .map(|r| r.mbit_s)
            .collect()
    };
    let losses = |stack: Stack, upload: bool| -> String {
        let of = |f: fn(&Rate) -> u64| {
            median(
                res.rates
                    .iter()
                    .filter(|r| r.stack == stack && r.upload == upload)
                    .map(|r| f(r) as f64)
                    .collect(),
            )
        };
        format!("{:.0} / {:.0}", of(|r| r.retransmits), of(|r| r.udp_drops))
    };
    let list = |v: &[f64]| {
        v.iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        o,
        "| path (iperf3 TCP, 1 stream, {} s, MTU 1400 / 1420) | upload Mbit/s median (runs) | download Mbit/s median (runs) | TCP retransmits / UDP receive drops, medians, up; down | handshake on the wire, median (min-max, n) |",
        res.secs
    );
    let _ = writeln!(o, "|---|---|---|---|---|");
    for stack in [Stack::StrongSwan, Stack::Agent, Stack::AgentEsp] {
        let (up, down) = (rates(stack, true), rates(stack, false));
        let no_hs = Vec::new();
        let hs = match stack {
            Stack::StrongSwan => &res.strongswan_hs,
            Stack::Agent => &res.agent_hs,
            Stack::AgentEsp => &no_hs,
        };
        let _ = writeln!(
            o,
            "| {} | **{:.0}** ({}) | **{:.0}** ({}) | {}; {} | {} |",
            stack.name(),
            median(up.clone()),
            list(&up),
            median(down.clone()),
            list(&down),
            losses(stack, true),
            losses(stack, false),
            spread(hs)
        );
    }
    for imp in [tunnel::Impl::Ours, tunnel::Impl::BoringtunCli] {
        let runs: Vec<&tunnel::Run> = res.wireguard.iter().filter(|r| r.imp == imp).collect();
        let up: Vec<f64> = runs.iter().filter_map(|r| r.mbit_s).collect();
        let hs: Vec<f64> = runs.iter().filter_map(|r| r.handshake_ms).collect();
        let retr = median(
            runs.iter()
                .filter(|r| r.mbit_s.is_some())
                .map(|r| r.retransmits as f64)
                .collect(),
        );
        let _ = writeln!(
            o,
            "| WireGuard: {} | **{:.0}** ({}) | - | {retr:.0} / -; - | {} |",
            imp.name(),
            median(up.clone()),
            list(&up),
            spread(&hs)
        );
    }
    let m = |v: Vec<f64>| median(v);
    let _ = writeln!(
        o,
        "\nagent / strongSwan: upload {}, download {} (goal: at least 1x); handshake {} (goal: at most 1x)",
        ratio(
            m(rates(Stack::Agent, true)),
            m(rates(Stack::StrongSwan, true))
        ),
        ratio(
            m(rates(Stack::Agent, false)),
            m(rates(Stack::StrongSwan, false))
        ),
        ratio(m(res.agent_hs.clone()), m(res.strongswan_hs.clone())),
    );
    let wg = |imp| {
        m(res
            .wireguard
            .iter()
            .filter(|r| r.imp == imp)
            .filter_map(|r| r.mbit_s)
            .collect())
    };
    let _ = writeln!(
        o,
        "agent IPsec upload / wg-tunnel: {}; the agent's own handshake timing (first request sent to IKE_AUTH response accepted): {}",
        ratio(m(rates(Stack::Agent, true)), wg(tunnel::Impl::Ours)),
        spread(&res.agent_self_hs)
    );
    let _ = writeln!(
        o,
        "agent-esp alone (no charon) / strongSwan: upload {}, download {}",
        ratio(
            m(rates(Stack::AgentEsp, true)),
            m(rates(Stack::StrongSwan, true))
        ),
        ratio(
            m(rates(Stack::AgentEsp, false)),
            m(rates(Stack::StrongSwan, false))
        ),
    );
    o
}
