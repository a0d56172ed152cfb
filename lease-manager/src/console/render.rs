//! Human rendering of console answers: tables and the server views. Pure. Leases and events
//! are in `lease_render`, tenants and the audit log in `audit_render`.

use std::fmt::Write;

use lm_api::{EventKind, HardwareFacts, ServerState, ServerView, TimelineEntry};

use super::text::{esc, esc_or_dash};

/// Formats Unix ms as a UTC timestamp.
pub fn timestamp(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

pub(crate) fn bytes_h(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// A plain table with aligned columns; every cell is escaped ([`esc`]) so it stays on its line.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| esc(c).into_owned()).collect())
        .collect();
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let s: Vec<String> = cells
            .iter()
            .zip(&w)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", s.join("  ").trim_end());
    };
    line(header.to_vec(), &mut out);
    for r in &rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// `server list`.
pub fn server_list(servers: &[ServerView]) -> String {
    if servers.is_empty() {
        return "no servers in the inventory (add one with `lease-manager server add NAME --mac MAC`)\n".into();
    }
    let rows: Vec<Vec<String>> = servers
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.mac.to_string(),
                s.state.name().to_string(),
                s.lease.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
                timestamp(s.since_ms),
                s.reserved_ip
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "-".into()),
                s.facts
                    .as_ref()
                    .map(facts_short)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "MAC", "STATE", "LEASE", "SINCE", "RESERVED", "HARDWARE",
        ],
        &rows,
    )
}

fn facts_short(f: &HardwareFacts) -> String {
    format!(
        "{} CPU, {}, {} disk(s), {}",
        f.cpu.logical,
        bytes_h(f.memory_bytes),
        f.disks.len(),
        tpm_word(f)
    )
}

/// The server's host root of trust as facts show it.
fn tpm_word(f: &HardwareFacts) -> String {
    match f.tpm_version {
        Some(v) => format!("TPM {v}.0"),
        None => "no TPM (weak root)".into(),
    }
}

fn state_detail(s: &ServerState) -> String {
    match s {
        ServerState::Idle => "idle".into(),
        ServerState::Waking { boot_id, attempt } => {
            format!("waking (boot {boot_id}, attempt {attempt})")
        }
        ServerState::Booting { boot_id } => format!("booting (boot {boot_id})"),
        ServerState::AgentUp { boot_id } => format!("agent-up (boot {boot_id})"),
        ServerState::Unreachable { boot_id, reason } => {
            format!("unreachable (boot {boot_id}): {reason}")
        }
        ServerState::Failed { boot_id, reason } => format!("failed (boot {boot_id}): {reason}"),
        ServerState::Quarantined { reason } => format!("quarantined: {reason}"),
        ServerState::Releasing { boot_id: None } | ServerState::Reserved => s.name().into(),
        ServerState::Releasing {
            boot_id: Some(boot_id),
        }
        | ServerState::Enrolling { boot_id }
        | ServerState::Tunneling { boot_id }
        | ServerState::Transferring { boot_id }
        | ServerState::Running { boot_id }
        | ServerState::Wiping { boot_id } => format!("{} (boot {boot_id})", s.name()),
    }
}

/// One timeline event as text.
pub fn event_text(k: &EventKind) -> (String, String) {
    let (kind, text) = match k {
        EventKind::WakeSent { attempt, methods } => {
            let m: Vec<String> = methods
                .iter()
                .map(|m| {
                    serde_json::to_string(m)
                        .unwrap_or_default()
                        .trim_matches('"')
                        .to_string()
                })
                .collect();
            (
                "wake-sent",
                format!("attempt {attempt} via {}", m.join(", ")),
            )
        }
        EventKind::WakeConfirmed { after_ms } => (
            "wake-confirmed",
            format!("DHCPDISCOVER {after_ms} ms after the first wake"),
        ),
        EventKind::Unreachable { attempts } => (
            "unreachable",
            format!("no DHCPDISCOVER after {attempts} wake attempts"),
        ),
        EventKind::Dhcp {
            message,
            client,
            reply,
            address,
        } => {
            let to = match (reply, address) {
                (Some(r), Some(a)) => format!(" -> {r} {a}"),
                (Some(r), None) => format!(" -> {r}"),
                (None, _) => " -> no answer".into(),
            };
            ("dhcp", format!("{message} from {client}{to}"))
        }
        EventKind::TftpFetch { file, bytes, ok } => (
            "tftp",
            format!(
                "{file} {} {}",
                bytes_h(*bytes),
                if *ok { "ok" } else { "FAILED" }
            ),
        ),
        EventKind::HttpFetch {
            path,
            bytes,
            status,
        } => ("http", format!("{path} {} ({status})", bytes_h(*bytes))),
        EventKind::AgentHello {
            address,
            agent_version,
            uptime_ms,
        } => (
            "agent-hello",
            format!(
                "from {address}, agent {agent_version}, {:.1} s after kernel start",
                *uptime_ms as f64 / 1000.0
            ),
        ),
        EventKind::AgentReport {
            phase,
            ok,
            detail,
            attempt,
        } => (
            "agent-report",
            format!(
                "{} {} (attempt {attempt}) {detail}",
                phase.as_str(),
                if *ok { "ok" } else { "FAILED" }
            ),
        ),
    };
    (kind.to_string(), text)
}

/// One timeline entry as one escaped line, its time relative to `first_ms` (`server watch`).
pub fn timeline_line(e: &TimelineEntry, first_ms: u64) -> String {
    let (k, t) = event_text(&e.kind);
    format!(
        "  +{:>7.3}s  {k:<15} {}",
        e.at_ms.saturating_sub(first_ms) as f64 / 1000.0,
        esc(&t)
    )
}

/// The timeline with times relative to its first entry.
pub fn timeline(entries: &[TimelineEntry]) -> String {
    let Some(first) = entries.first() else {
        return "  (no events)\n".into();
    };
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let (k, t) = event_text(&e.kind);
            vec![
                format!(
                    "+{:.3}s",
                    (e.at_ms.saturating_sub(first.at_ms)) as f64 / 1000.0
                ),
                k,
                t,
            ]
        })
        .collect();
    table(
        &["  TIME", "EVENT", "DETAIL"],
        &rows
            .into_iter()
            .map(|mut r| {
                r[0] = format!("  {}", r[0]);
                r
            })
            .collect::<Vec<_>>(),
    )
}

/// `server show`. Facts and reasons come from the agent: every string is escaped.
pub fn server_show(s: &ServerView) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Server    {} ({})", esc(&s.name), s.mac);
    let _ = writeln!(
        o,
        "State     {} since {}",
        esc(&state_detail(&s.state)),
        timestamp(s.since_ms)
    );
    let _ = writeln!(
        o,
        "Lease     {}",
        s.lease
            .map(|l| l.to_string())
            .unwrap_or_else(|| "- (not leased)".into())
    );
    let _ = writeln!(
        o,
        "Reserved  {}",
        s.reserved_ip
            .map(|i| i.to_string())
            .unwrap_or_else(|| "- (dynamic pool)".into())
    );
    match &s.facts {
        None => {
            let _ = writeln!(
                o,
                "Facts     none yet (the agent reports them in its hello)"
            );
        }
        Some(f) => {
            let _ = writeln!(o, "Facts");
            let sm = &f.smbios;
            let opt = |x: &Option<String>| esc_or_dash(x.as_deref());
            let _ = writeln!(
                o,
                "  SMBIOS  uuid {}  serial {}",
                opt(&sm.uuid),
                opt(&sm.serial)
            );
            let _ = writeln!(o, "          {} / {}", opt(&sm.vendor), opt(&sm.product));
            let _ = writeln!(o, "  CPU     {} x {}", f.cpu.logical, esc(&f.cpu.model));
            let _ = writeln!(o, "  Memory  {}", bytes_h(f.memory_bytes));
            let _ = writeln!(o, "  Root    {}", tpm_word(f));
            for n in &f.nics {
                let _ = writeln!(
                    o,
                    "  NIC     {} {} {}{}",
                    esc(&n.name),
                    n.mac,
                    opt(&n.driver),
                    n.speed_mbps
                        .map(|s| format!(" {s} Mbit/s"))
                        .unwrap_or_default()
                );
            }
            if f.disks.is_empty() {
                let _ = writeln!(o, "  Disks   none");
            }
            for d in &f.disks {
                let line = format!(
                    "  Disk    {} {} {} {}",
                    esc(&d.name),
                    bytes_h(d.size_bytes),
                    esc(d.model.as_deref().unwrap_or_default()),
                    d.serial
                        .as_deref()
                        .map(|s| format!("serial {}", esc(s)))
                        .unwrap_or_default()
                );
                let _ = writeln!(o, "{}", line.trim_end());
            }
        }
    }
    let boot = s
        .timeline
        .iter()
        .find_map(|e| e.boot_id)
        .map(|b| format!(" (boot {b})"))
        .unwrap_or_default();
    let _ = writeln!(o, "Boot timeline{boot}");
    o.push_str(&timeline(&s.timeline));
    o
}
