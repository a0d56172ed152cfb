//! `lease-manager audit ...` and `ca crl`: the hash-chained audit log (list, export as NDJSON,
//! verify online or an export offline with the LM's own chain rules, [`crate::audit::verify`])
//! and the CA's CRL. IO (admin socket, files, stdout/stderr); rendering in
//! [`super::audit_render`].

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use lm_api::{AuditEntry, AuditVerification};

use super::output::{create_new, out, print_json, replace};
use super::{AdminClient, audit_render, crl};

/// Entries per `GET /v1/audit` page of an export (the API's largest page).
const EXPORT_PAGE: usize = 5000;

/// `lease-manager audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// List audit entries.
    List {
        /// First sequence number.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// How many entries (at most 5000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Export every entry as NDJSON (one JSON entry a line), to stdout or a new file.
    Export {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Verify the hash chain: the LM's log, or an export offline (`--file`). Exits 1 if broken.
    Verify {
        /// An NDJSON export (`audit export`) to check without the LM.
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub entries: u64,
    /// Hash of the last entry written (empty when none).
    pub head: String,
}

/// Writes every audit entry to `w` as NDJSON, page by page, from the first until the LM has
/// no more. With `progress`, says how far it got on stderr after every page.
pub async fn export(
    client: &AdminClient,
    w: &mut impl Write,
    progress: bool,
) -> anyhow::Result<ExportSummary> {
    let mut sum = ExportSummary {
        entries: 0,
        head: String::new(),
    };
    let mut from = 1;
    loop {
        let page: Vec<AuditEntry> = client
            .call(
                "GET",
                &format!("/v1/audit?from={from}&limit={EXPORT_PAGE}"),
                None,
            )
            .await?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        sum.head = last.hash.clone();
        for e in &page {
            // Serialized first, so a write error stays an io::Error (a closed pipe is quiet).
            let mut line = serde_json::to_vec(e)?;
            line.push(b'\n');
            w.write_all(&line)?;
        }
        sum.entries += page.len() as u64;
        if progress {
            eprint!(
                "\rexported {} entries (up to seq {})",
                sum.entries, last.seq
            );
        }
    }
    if progress && sum.entries > 0 {
        eprintln!();
    }
    w.flush()?;
    Ok(sum)
}

/// Verifies an NDJSON export offline. A line that is not an audit entry is an error naming it.
pub fn verify_file(path: &Path) -> anyhow::Result<AuditVerification> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut entries = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let e: AuditEntry = serde_json::from_str(&line).with_context(|| {
            format!(
                "{} line {} is not an audit entry (was the export edited?)",
                path.display(),
                i + 1
            )
        })?;
        entries.push(e);
    }
    Ok(crate::audit::verify(&entries))
}

/// Runs one `audit` command.
pub async fn run(client: &AdminClient, cmd: AuditCmd) -> anyhow::Result<()> {
    match cmd {
        AuditCmd::List { from, limit, json } => {
            let v: Vec<AuditEntry> = client
                .call("GET", &format!("/v1/audit?from={from}&limit={limit}"), None)
                .await?;
            if json {
                print_json(&v)
            } else {
                out(&audit_render::audit_list(&v))
            }
        }
        AuditCmd::Export { out: None } => {
            let progress = std::io::stderr().is_terminal();
            let mut w = std::io::BufWriter::new(std::io::stdout());
            let s = export(client, &mut w, progress).await?;
            eprintln!("exported {} entries, head {}", s.entries, head(&s.head));
            Ok(())
        }
        AuditCmd::Export { out: Some(path) } => {
            let mut w = std::io::BufWriter::new(create_new(&path)?);
            let s = export(client, &mut w, std::io::stderr().is_terminal()).await?;
            w.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "exported {} entries to {}, head {} (keep the head elsewhere: `audit verify --file` shows it again)",
                s.entries,
                path.display(),
                head(&s.head)
            );
            Ok(())
        }
        AuditCmd::Verify { file, json } => {
            let (v, source) = match &file {
                Some(p) => (verify_file(p)?, p.display().to_string()),
                None => (
                    client.call("GET", "/v1/audit/verify", None).await?,
                    "the Lease Manager's log".to_string(),
                ),
            };
            if json {
                print_json(&v)?;
            } else {
                out(&audit_render::verification(&v, &source))?;
            }
            if v.broken.is_some() {
                bail!("the audit chain of {source} is broken");
            }
            Ok(())
        }
    }
}

fn head(h: &str) -> &str {
    if h.is_empty() { "-" } else { h }
}

/// `lease-manager ca crl [--out FILE]`: the CA's CRL (DER) to a file, or a summary.
pub async fn ca_crl(client: &AdminClient, out_file: Option<&Path>) -> anyhow::Result<()> {
    let der = client.bytes("GET", "/v1/ca/crl", None).await?;
    let summary = crl::summarize(&der)?;
    match out_file {
        Some(p) => {
            replace(p, &der)?;
            super::output::out_line(&format!(
                "wrote the CRL ({} bytes DER, {} revoked) to {}",
                der.len(),
                summary.revoked.len(),
                p.display()
            ))
        }
        None => out(&audit_render::crl_summary(&summary, der.len())),
    }
    .or_else(|e| super::quiet_if_closed(Err(e)))
}
