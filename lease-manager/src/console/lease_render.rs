//! Human rendering of leases and of audit events as lines (`lease list|show|watch`, `events`).
//! Pure: the current time is an argument.

use std::fmt::Write;

use lm_api::{AuditEntry, LeaseState, LeaseView};

use super::render::{table, timestamp};
use super::text::{esc, esc_or_dash, offset, until};

/// `lease list`; `now_ms` for the ENDS IN column.
pub fn lease_list(leases: &[LeaseView], now_ms: u64) -> String {
    if leases.is_empty() {
        return "no leases\n".into();
    }
    let rows: Vec<Vec<String>> = leases
        .iter()
        .map(|l| {
            vec![
                l.id.to_string(),
                l.tenant.to_string(),
                l.state.as_str().into(),
                format!("{}/{}", l.servers.len(), l.count),
                l.waiting.to_string(),
                l.tunnel.as_str().into(),
                ends_in(l, now_ms),
                l.reason.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "ID", "TENANT", "STATE", "SERVERS", "WAITING", "TUNNEL", "ENDS IN", "REASON",
        ],
        &rows,
    )
}

fn ends_in(l: &LeaseView, now_ms: u64) -> String {
    match l.state {
        LeaseState::Ended | LeaseState::Failed => "-".into(),
        LeaseState::Releasing => "releasing".into(),
        _ => until(l.ends_ms, now_ms),
    }
}

/// `lease show`: the lease, its servers, and its events with times since its creation.
pub fn lease_show(l: &LeaseView, events: &[AuditEntry], now_ms: u64) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Lease     {} (tenant {})", l.id, l.tenant);
    let _ = writeln!(o, "State     {}", l.state.as_str());
    if let Some(r) = &l.reason {
        let _ = writeln!(o, "Reason    {}", esc(r));
    }
    let _ = writeln!(
        o,
        "Servers   {} of {} assigned, {} waiting",
        l.servers.len(),
        l.count,
        l.waiting
    );
    let _ = writeln!(o, "Tunnel    {}", l.tunnel.as_str());
    let _ = writeln!(o, "Role      {}", esc_or_dash(l.role.as_deref()));
    let _ = writeln!(o, "Image     {}", esc_or_dash(l.image.as_deref()));
    let _ = writeln!(o, "Created   {}", timestamp(l.created_ms));
    let _ = writeln!(o, "Starts    {}", timestamp(l.starts_ms));
    let ends = match l.ended_ms {
        Some(e) => format!("{} (over at {})", timestamp(l.ends_ms), timestamp(e)),
        None => format!("{} (in {})", timestamp(l.ends_ms), ends_in(l, now_ms)),
    };
    let _ = writeln!(o, "Ends      {ends}");
    let _ = writeln!(o, "Renewals  {}", l.renewals);
    if !l.servers.is_empty() {
        let rows: Vec<Vec<String>> = l
            .servers
            .iter()
            .map(|s| {
                vec![
                    format!("  {}", s.name),
                    s.mac.to_string(),
                    s.state.clone(),
                    s.cert_serial.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        o.push_str(&table(&["  SERVER", "MAC", "STATE", "CERT SERIAL"], &rows));
    }
    let _ = writeln!(o, "Events (time since the lease was created)");
    o.push_str(&lease_timeline(events, l.created_ms));
    o
}

/// A lease's events with times relative to `since_ms`.
pub fn lease_timeline(events: &[AuditEntry], since_ms: u64) -> String {
    if events.is_empty() {
        return "  (no events)\n".into();
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                format!("  {}", offset(e.at_ms, since_ms)),
                e.actor.clone(),
                e.action.clone(),
                e.server.clone().unwrap_or_else(|| "-".into()),
                e.detail.clone(),
            ]
        })
        .collect();
    table(&["  TIME", "ACTOR", "ACTION", "SERVER", "DETAIL"], &rows)
}

/// One event as one line (`lease watch`, `events`): time, actor, action, lease, server, detail.
/// Always exactly one line, whatever the entry holds.
pub fn event_line(e: &AuditEntry) -> String {
    let lease = e.lease.map(|l| l.to_string());
    let server = esc_or_dash(e.server.as_deref());
    // Tenant events (tenant.added, ...) name no lease and no server; show the tenant there.
    let server = match (&e.server, &e.tenant, &e.lease) {
        (None, Some(t), None) => format!("tenant:{t}"),
        _ => server,
    };
    format!(
        "{}  #{:<5} {:<18} {:<22} {:<18} {:<10} {}",
        timestamp(e.at_ms),
        e.seq,
        esc(&e.actor),
        esc(&e.action),
        lease.as_deref().unwrap_or("-"),
        server,
        esc(&e.detail)
    )
    .trim_end()
    .to_string()
}

#[cfg(test)]
mod tests {
    use lm_api::{LeaseId, LeaseServer, MacAddr, Tunnel};

    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn lease(state: LeaseState) -> LeaseView {
        LeaseView {
            id: LeaseId::from_random(0xabc),
            tenant: "acme".parse().unwrap(),
            state,
            reason: None,
            count: 2,
            waiting: 1,
            servers: vec![LeaseServer {
                name: "rack1-07".into(),
                mac: MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
                state: "enrolling".into(),
                cert_serial: Some("5f3a9c".into()),
            }],
            tunnel: Tunnel::Wireguard,
            role: Some("ci".into()),
            image: None,
            gateway: None,
            created_ms: T0,
            starts_ms: T0,
            ends_ms: T0 + 2 * 3_600_000,
            ended_ms: None,
            renewals: 0,
        }
    }

    pub(crate) fn entry(seq: u64, at_ms: u64, action: &str, detail: &str) -> AuditEntry {
        AuditEntry {
            seq,
            at_ms,
            actor: "tenant:acme".into(),
            action: action.into(),
            lease: Some(LeaseId::from_random(0xabc)),
            server: (action == "server.state").then(|| "rack1-07".into()),
            tenant: Some("acme".parse().unwrap()),
            detail: detail.into(),
            prev: "00".repeat(32),
            hash: "11".repeat(32),
        }
    }

    #[test]
    fn lease_list_golden() {
        let mut failed = lease(LeaseState::Failed);
        failed.id = LeaseId::from_random(0xdef);
        failed.servers.clear();
        failed.reason = Some("no idle servers\n\x1b[2Jgotcha".into());
        let out = lease_list(&[lease(LeaseState::Provisioning), failed], T0 + 60_000);
        assert_eq!(
            out,
            "\
ID                  TENANT  STATE         SERVERS  WAITING  TUNNEL     ENDS IN  REASON
l-0000000000000abc  acme    provisioning  1/2      1        wireguard  1h 59m   -
l-0000000000000def  acme    failed        0/2      1        wireguard  -        no idle servers\\n\\x1b[2Jgotcha
"
        );
        assert_eq!(lease_list(&[], 0), "no leases\n");
    }

    #[test]
    fn lease_show_golden() {
        let events = [
            entry(7, T0, "lease.created", "2 servers for 7200 s"),
            entry(9, T0 + 1_500, "server.state", "reserved -> waking"),
            entry(
                12,
                T0 + 95_000,
                "server.state",
                "booting -> enrolling\r\nfake line",
            ),
        ];
        let out = lease_show(&lease(LeaseState::Provisioning), &events, T0 + 30_000);
        assert_eq!(
            out,
            "\
Lease     l-0000000000000abc (tenant acme)
State     provisioning
Servers   1 of 2 assigned, 1 waiting
Tunnel    wireguard
Role      ci
Image     -
Created   2023-11-14T22:13:20Z
Starts    2023-11-14T22:13:20Z
Ends      2023-11-15T00:13:20Z (in 1h 59m)
Renewals  0
  SERVER    MAC                STATE      CERT SERIAL
  rack1-07  52:54:00:12:34:56  enrolling  5f3a9c
Events (time since the lease was created)
  TIME     ACTOR        ACTION         SERVER    DETAIL
  +0.000s  tenant:acme  lease.created  -         2 servers for 7200 s
  +1.500s  tenant:acme  server.state   rack1-07  reserved -> waking
  +1m 35s  tenant:acme  server.state   rack1-07  booting -> enrolling\\r\\nfake line
"
        );
    }

    #[test]
    fn event_lines_are_single_lines() {
        let e = entry(12, T0 + 95_000, "server.state", "booting -> enrolling");
        assert_eq!(
            event_line(&e),
            "2023-11-14T22:14:55Z  #12    tenant:acme        server.state           l-0000000000000abc rack1-07   booting -> enrolling"
        );
        let mut hostile = e.clone();
        hostile.detail = "ok\n2023-11-14T22:14:55Z  #13 lm forged\x1b]0;title\x07".into();
        hostile.actor = "agent:\u{202e}evil".into();
        let line = event_line(&hostile);
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(!line.chars().any(|c| c.is_control()), "{line}");
        assert!(line.contains("agent:\\u{202e}evil"), "{line}");
        assert!(line.ends_with("ok\\n2023-11-14T22:14:55Z  #13 lm forged\\x1b]0;title\\x07"));
        let mut tenant_event = e;
        tenant_event.lease = None;
        tenant_event.server = None;
        tenant_event.action = "tenant.added".into();
        assert!(event_line(&tenant_event).contains(" -                  tenant:acme "));
    }
}
