//! Human rendering of tenants, the audit log, its verification and the CRL summary. Pure.

use std::fmt::Write;

use lm_api::{AuditEntry, AuditVerification, TenantView};

use super::crl::CrlSummary;
use super::render::{table, timestamp};

fn tenant_status(t: &TenantView) -> &'static str {
    if t.removed { "removed" } else { "active" }
}

/// `tenant list`.
pub fn tenant_list(tenants: &[TenantView]) -> String {
    if tenants.is_empty() {
        return "no tenants (add one with `lease-manager tenant add NAME --out NAME.json`)\n"
            .into();
    }
    let rows: Vec<Vec<String>> = tenants
        .iter()
        .map(|t| {
            vec![
                t.name.to_string(),
                tenant_status(t).into(),
                t.open_leases.to_string(),
                timestamp(t.created_ms),
                t.cert_serial.clone(),
                timestamp(t.cert_not_after_ms),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "STATUS",
            "OPEN LEASES",
            "CREATED",
            "CERT SERIAL",
            "CERT EXPIRES",
        ],
        &rows,
    )
}

/// `tenant show`.
pub fn tenant_show(t: &TenantView) -> String {
    let cert = if t.removed { " (revoked)" } else { "" };
    format!(
        "Tenant       {}\nStatus       {}\nCreated      {}\nOpen leases  {}\nCertificate  {}{cert}, expires {}\n",
        t.name,
        tenant_status(t),
        timestamp(t.created_ms),
        t.open_leases,
        t.cert_serial,
        timestamp(t.cert_not_after_ms),
    )
}

/// `audit list`.
pub fn audit_list(entries: &[AuditEntry]) -> String {
    if entries.is_empty() {
        return "no audit entries in this range\n".into();
    }
    let dash = || "-".to_string();
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                timestamp(e.at_ms),
                e.actor.clone(),
                e.action.clone(),
                e.lease.map(|l| l.to_string()).unwrap_or_else(dash),
                e.server.clone().unwrap_or_else(dash),
                e.tenant
                    .as_ref()
                    .map(|t| t.to_string())
                    .unwrap_or_else(dash),
                e.detail.clone(),
            ]
        })
        .collect();
    table(
        &[
            "SEQ", "TIME", "ACTOR", "ACTION", "LEASE", "SERVER", "TENANT", "DETAIL",
        ],
        &rows,
    )
}

/// `audit verify`: entries, head, and where the chain breaks. `source` names what was checked.
pub fn verification(v: &AuditVerification, source: &str) -> String {
    let status = match &v.broken {
        None => "intact: every entry chains to the one before".to_string(),
        Some(b) => format!("BROKEN at {}", super::text::esc(b)),
    };
    format!(
        "Source   {source}\nEntries  {}\nHead     {}\nChain    {status}\n",
        v.entries, v.head
    )
}

/// `ca crl` without `--out`.
pub fn crl_summary(c: &CrlSummary, bytes: usize) -> String {
    let mut o = format!(
        "CRL of the Lease Manager CA ({bytes} bytes DER)\nThis update  {}\nNext update  {}\nRevoked      {} certificate(s)\n",
        c.this_update,
        c.next_update.as_deref().unwrap_or("-"),
        c.revoked.len()
    );
    for s in &c.revoked {
        let _ = writeln!(o, "  {s}");
    }
    o
}

#[cfg(test)]
mod tests {
    use lm_api::LeaseId;

    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn tenant(name: &str, removed: bool) -> TenantView {
        TenantView {
            name: name.parse().unwrap(),
            created_ms: T0,
            cert_serial: "4be1d2".into(),
            cert_not_after_ms: T0 + 365 * 86_400_000,
            removed,
            open_leases: u32::from(!removed),
        }
    }

    #[test]
    fn tenants_golden() {
        assert_eq!(
            tenant_list(&[tenant("acme", false), tenant("globex", true)]),
            "\
NAME    STATUS   OPEN LEASES  CREATED               CERT SERIAL  CERT EXPIRES
acme    active   1            2023-11-14T22:13:20Z  4be1d2       2024-11-13T22:13:20Z
globex  removed  0            2023-11-14T22:13:20Z  4be1d2       2024-11-13T22:13:20Z
"
        );
        assert_eq!(
            tenant_show(&tenant("globex", true)),
            "\
Tenant       globex
Status       removed
Created      2023-11-14T22:13:20Z
Open leases  0
Certificate  4be1d2 (revoked), expires 2024-11-13T22:13:20Z
"
        );
    }

    #[test]
    fn audit_list_golden_with_hostile_detail() {
        let e = |seq, detail: &str| AuditEntry {
            seq,
            at_ms: T0 + seq * 1000,
            actor: "anonymous".into(),
            action: "security.enroll-refused".into(),
            lease: (seq == 2).then(|| LeaseId::from_random(5)),
            server: None,
            tenant: None,
            detail: detail.into(),
            prev: String::new(),
            hash: String::new(),
        };
        assert_eq!(
            audit_list(&[e(1, "token unknown"), e(2, "bad\ttoken\n\x1b[1Aoverwrite")]),
            "\
SEQ  TIME                  ACTOR      ACTION                   LEASE               SERVER  TENANT  DETAIL
1    2023-11-14T22:13:21Z  anonymous  security.enroll-refused  -                   -       -       token unknown
2    2023-11-14T22:13:22Z  anonymous  security.enroll-refused  l-0000000000000005  -       -       bad\\ttoken\\n\\x1b[1Aoverwrite
"
        );
    }

    #[test]
    fn verification_golden() {
        let ok = AuditVerification {
            entries: 3,
            head: "ab".repeat(32),
            broken: None,
        };
        assert_eq!(
            verification(&ok, "the Lease Manager"),
            format!(
                "Source   the Lease Manager\nEntries  3\nHead     {}\nChain    intact: every entry chains to the one before\n",
                "ab".repeat(32)
            )
        );
        let bad = AuditVerification {
            broken: Some("entry 2: its contents do not match its hash".into()),
            ..ok
        };
        assert!(
            verification(&bad, "audit.ndjson")
                .ends_with("Chain    BROKEN at entry 2: its contents do not match its hash\n")
        );
    }

    #[test]
    fn crl_summary_golden() {
        let c = CrlSummary {
            this_update: "2023-11-14T22:13:20Z".into(),
            next_update: Some("2023-11-14T23:13:20Z".into()),
            revoked: vec!["4be1d2".into(), "01ff".into()],
        };
        assert_eq!(
            crl_summary(&c, 412),
            "\
CRL of the Lease Manager CA (412 bytes DER)
This update  2023-11-14T22:13:20Z
Next update  2023-11-14T23:13:20Z
Revoked      2 certificate(s)
  4be1d2
  01ff
"
        );
    }
}
