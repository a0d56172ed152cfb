//! Human output of the organizer's commands: leases with the organizer's approval, a lease's
//! status with its timeline, images. Pure: the current time is an argument.

use std::fmt::Write;

use lm_api::{AuditEntry, LeaseState, LeaseView};
use serde::Serialize;

use crate::images::ImageEntry;
use crate::record::RequestedLease;
use crate::text::{bytes_h, esc, offset, table, timestamp, until};

/// A lease as `status` shows it: the LM's view and this organizer's record of it.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseStatus {
    pub lease: LeaseView,
    /// `None`: this organizer did not ask for it (the gateway refuses its agents).
    pub record: Option<RequestedLease>,
}

fn approval(r: Option<&RequestedLease>) -> &'static str {
    match r {
        None => "not requested here",
        Some(r) if r.released_ms.is_some() => "released here",
        Some(_) => "approved",
    }
}

fn ends_in(l: &LeaseView, now_ms: u64) -> String {
    match l.state {
        LeaseState::Ended | LeaseState::Failed => "-".into(),
        LeaseState::Releasing => "releasing".into(),
        _ => until(l.ends_ms, now_ms),
    }
}

/// `status` without a lease: every lease of the tenant.
pub fn lease_list(leases: &[LeaseStatus], now_ms: u64) -> String {
    if leases.is_empty() {
        return "no leases\n".into();
    }
    let rows: Vec<Vec<String>> = leases
        .iter()
        .map(|s| {
            let l = &s.lease;
            vec![
                l.id.to_string(),
                l.state.as_str().into(),
                format!("{}/{}", l.servers.len(), l.count),
                l.waiting.to_string(),
                l.role.clone().unwrap_or_else(|| "-".into()),
                l.image.clone().unwrap_or_else(|| "-".into()),
                ends_in(l, now_ms),
                approval(s.record.as_ref()).into(),
            ]
        })
        .collect();
    table(
        &[
            "ID", "STATE", "SERVERS", "WAITING", "ROLE", "IMAGE", "ENDS IN", "APPROVAL",
        ],
        &rows,
    )
}

/// `status LEASE`: the lease, its servers and its timeline.
pub fn lease_status(s: &LeaseStatus, events: &[AuditEntry], now_ms: u64) -> String {
    let l = &s.lease;
    let mut o = String::new();
    let _ = writeln!(o, "Lease     {} (tenant {})", l.id, l.tenant);
    let _ = writeln!(o, "State     {}", l.state.as_str());
    if let Some(r) = &l.reason {
        let _ = writeln!(o, "Reason    {}", esc(r));
    }
    let _ = writeln!(o, "Approval  {}", approval(s.record.as_ref()));
    let _ = writeln!(
        o,
        "Servers   {} of {} assigned, {} waiting",
        l.servers.len(),
        l.count,
        l.waiting
    );
    let _ = writeln!(o, "Tunnel    {}", l.tunnel.as_str());
    let _ = writeln!(o, "Role      {}", esc(l.role.as_deref().unwrap_or("-")));
    let _ = writeln!(o, "Image     {}", esc(l.image.as_deref().unwrap_or("-")));
    if let Some(g) = &l.gateway {
        let _ = writeln!(
            o,
            "Gateway   {} (certificate sha256 {})",
            esc(&g.register_url),
            g.tls_cert_sha256
        );
    }
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
    let _ = writeln!(o, "Timeline (time since the lease was created)");
    if events.is_empty() {
        o.push_str("  (no events)\n");
    } else {
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|e| {
                vec![
                    format!("  {}", offset(e.at_ms, l.created_ms)),
                    e.actor.clone(),
                    e.action.clone(),
                    e.server.clone().unwrap_or_else(|| "-".into()),
                    e.detail.clone(),
                ]
            })
            .collect();
        o.push_str(&table(
            &["  TIME", "ACTOR", "ACTION", "SERVER", "DETAIL"],
            &rows,
        ));
    }
    o
}

/// `gateway peers`.
pub fn peer_list(peers: &[crate::gateway::peers::PeerEntry]) -> String {
    if peers.is_empty() {
        return "no peers\n".into();
    }
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            vec![
                p.lease.to_string(),
                p.server.to_string(),
                p.address.to_string(),
                p.wg_public_key
                    .map_or_else(|| "- (IPsec)".into(), |k| k.to_string()),
                timestamp(p.registered_ms),
            ]
        })
        .collect();
    table(
        &[
            "LEASE",
            "SERVER",
            "TUNNEL ADDRESS",
            "WIREGUARD KEY",
            "REGISTERED",
        ],
        &rows,
    )
}

/// `images list`.
pub fn image_list(images: &[ImageEntry]) -> String {
    if images.is_empty() {
        return "no images (seal one with `procurement-organizer images seal`)\n".into();
    }
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|i| {
            vec![
                i.id.clone(),
                i.epoch.to_string(),
                i.aead.clone(),
                bytes_h(i.plaintext_len),
                i.chunk_count.to_string(),
                timestamp(i.created_ms),
                if i.key {
                    "yes".into()
                } else {
                    "MISSING".into()
                },
                i.verified.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "EPOCH",
            "AEAD",
            "SIZE",
            "CHUNKS",
            "SEALED",
            "KEY",
            "SIGNATURE",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use lm_api::{LeaseId, LeaseServer, MacAddr, Tunnel};

    use super::*;

    fn view() -> LeaseView {
        LeaseView {
            id: LeaseId::from_random(0xaa),
            tenant: "acme".parse().unwrap(),
            state: LeaseState::Active,
            reason: None,
            count: 1,
            waiting: 0,
            servers: vec![LeaseServer {
                name: "vm1".into(),
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                state: "running".into(),
                cert_serial: Some("51".into()),
            }],
            tunnel: Tunnel::Wireguard,
            role: Some("web\x1b[2J".into()),
            image: None,
            gateway: None,
            created_ms: 1_000,
            starts_ms: 1_000,
            ends_ms: 3_601_000,
            ended_ms: None,
            renewals: 0,
        }
    }

    #[test]
    fn list_and_status_golden() {
        let s = LeaseStatus {
            lease: view(),
            record: None,
        };
        assert_eq!(
            lease_list(std::slice::from_ref(&s), 1_000),
            "ID                  STATE   SERVERS  WAITING  ROLE        IMAGE  ENDS IN  APPROVAL\n\
             l-00000000000000aa  active  1/1      0        web\\x1b[2J  -      1h 00m   not requested here\n"
        );
        let e = AuditEntry {
            seq: 1,
            at_ms: 1_250,
            actor: "lm".into(),
            action: "lease.state".into(),
            lease: Some(LeaseId::from_random(0xaa)),
            server: None,
            tenant: None,
            detail: "requested -> provisioning\nforged line".into(),
            prev: String::new(),
            hash: String::new(),
        };
        let out = lease_status(&s, &[e], 2_000);
        assert!(out.contains("Approval  not requested here"), "{out}");
        assert!(
            out.contains(
                "  +0.250s  lm     lease.state  -       requested -> provisioning\\nforged line"
            ),
            "{out}"
        );
        assert!(
            out.contains("  vm1     02:00:00:00:00:01  running  51"),
            "{out}"
        );
        assert_eq!(out.lines().filter(|l| l.contains("forged")).count(), 1);
    }
}
