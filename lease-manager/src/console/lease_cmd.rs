//! `lease-manager lease ...` and `lease-manager events`: leases and the event stream. IO
//! (admin socket, stdout); rendering in [`super::lease_render`].
//!
//! The event streams are NDJSON bodies that stay open while followed. When the LM ends one
//! (the lease is over, the LM stops, or the reader fell too far behind), a followed stream
//! resumes after the last sequence number it printed, unless the lease is over.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use lm_api::{AuditEntry, LeaseId, LeaseState, LeaseView, Name};

use super::output::{out, out_line, print_json};
use super::{AdminClient, lease_render, now_ms};

/// `lease-manager lease ...`
#[derive(Debug, Subcommand)]
pub enum LeaseCmd {
    /// List leases, newest first.
    List {
        /// Only this tenant's leases.
        #[arg(long)]
        tenant: Option<Name>,
        /// Only leases in this state (requested, provisioning, active, releasing, ended, failed).
        #[arg(long, value_parser = parse_state)]
        state: Option<LeaseState>,
        #[arg(long)]
        json: bool,
    },
    /// Show a lease: its servers and its event timeline.
    Show {
        id: LeaseId,
        /// The lease as the API shows it (without the timeline; see `lease watch --json`).
        #[arg(long)]
        json: bool,
    },
    /// Release a lease (any tenant's): its servers are wiped and returned.
    Release {
        id: LeaseId,
        #[arg(long)]
        json: bool,
    },
    /// Follow events live: of one lease (its history first, until the lease is over), or of
    /// every lease (new events only) until Ctrl-C.
    Watch {
        id: Option<LeaseId>,
        /// Print the raw NDJSON lines.
        #[arg(long)]
        json: bool,
    },
}

/// `lease-manager events`
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Start at this sequence number (1: the whole log).
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// Keep following new events until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// Print the raw NDJSON lines.
    #[arg(long)]
    pub json: bool,
}

fn parse_state(s: &str) -> Result<LeaseState, String> {
    serde_json::from_value(serde_json::Value::String(s.into())).map_err(|_| {
        format!("{s:?} is not a lease state: requested, provisioning, active, releasing, ended or failed")
    })
}

fn lease_path(id: LeaseId) -> String {
    format!("/v1/leases/{id}")
}

/// Every lease the LM has (newest first).
pub async fn leases(client: &AdminClient) -> anyhow::Result<Vec<LeaseView>> {
    client.call("GET", "/v1/leases", None).await
}

/// A lease's events so far (the stream, not followed).
pub async fn lease_events(client: &AdminClient, id: LeaseId) -> anyhow::Result<Vec<AuditEntry>> {
    let mut s = client.stream(&format!("{}/events", lease_path(id))).await?;
    let mut v = Vec::new();
    while let Some(line) = s.next_line().await? {
        v.push(parse(&line)?);
    }
    Ok(v)
}

fn parse(line: &[u8]) -> anyhow::Result<AuditEntry> {
    serde_json::from_slice(line).context("unexpected line in the event stream of the Lease Manager")
}

/// Runs one `lease` command.
pub async fn run(client: &AdminClient, cmd: LeaseCmd) -> anyhow::Result<()> {
    match cmd {
        LeaseCmd::List {
            tenant,
            state,
            json,
        } => {
            let mut v = leases(client).await?;
            v.retain(|l| {
                tenant.as_ref().is_none_or(|t| &l.tenant == t) && state.is_none_or(|s| l.state == s)
            });
            if json {
                print_json(&v)
            } else {
                out(&lease_render::lease_list(&v, now_ms()))
            }
        }
        LeaseCmd::Show { id, json } => {
            let v: LeaseView = client
                .call("GET", &lease_path(id), None)
                .await
                .with_context(|| format!("cannot show lease {id}"))?;
            if json {
                return print_json(&v);
            }
            let events = lease_events(client, id).await?;
            out(&lease_render::lease_show(&v, &events, now_ms()))
        }
        LeaseCmd::Release { id, json } => {
            let v: LeaseView = client
                .call("POST", &format!("{}/release", lease_path(id)), None)
                .await
                .with_context(|| format!("cannot release lease {id}"))?;
            if json {
                print_json(&v)
            } else {
                out_line(&format!(
                    "lease {id} of {} is {}: its servers are wiped and returned (`lease watch {id}` follows it)",
                    v.tenant,
                    v.state.as_str()
                ))
            }
        }
        LeaseCmd::Watch { id, json } => {
            let from = match id {
                Some(_) => 1,
                None => last_seq(client).await? + 1,
            };
            follow(
                client,
                Stream {
                    lease: id,
                    from,
                    follow: true,
                    json,
                    only_leases: id.is_none(),
                },
            )
            .await
        }
    }
}

/// `lease-manager events`.
pub async fn events(client: &AdminClient, a: EventsArgs) -> anyhow::Result<()> {
    let s = Stream {
        lease: None,
        from: a.from.max(1),
        follow: a.follow,
        json: a.json,
        only_leases: false,
    };
    follow(client, s).await
}

/// What to read from which stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stream {
    pub lease: Option<LeaseId>,
    pub from: u64,
    pub follow: bool,
    pub json: bool,
    /// Skip entries that belong to no lease.
    pub only_leases: bool,
}

/// Prints a stream's events until it ends (not followed), the lease is over, or Ctrl-C.
async fn follow(client: &AdminClient, s: Stream) -> anyhow::Result<()> {
    let ctrl_c = tokio::signal::ctrl_c();
    let end = follow_into(client, s, &mut |l| out_line(&l), ctrl_c).await?;
    if let (Some(id), Some(state), false) = (s.lease, end, s.json) {
        eprintln!("lease {id} is {}", state.as_str());
    }
    Ok(())
}

/// Hands each event's line (rendered, or the raw NDJSON with `json`) to `sink` until the
/// stream ends (not followed), the followed lease is over (its final state is returned), or
/// `stop` completes.
pub(crate) async fn follow_into(
    client: &AdminClient,
    s: Stream,
    sink: &mut impl FnMut(String) -> anyhow::Result<()>,
    stop: impl Future,
) -> anyhow::Result<Option<LeaseState>> {
    tokio::pin!(stop);
    let base = match s.lease {
        Some(id) => format!("{}/events", lease_path(id)),
        None => "/v1/events".into(),
    };
    let (mut next, mut following, mut over) = (s.from, s.follow, None);
    let mut empty_ends = 0;
    loop {
        let query = if following { "&follow=true" } else { "" };
        let mut stream = client.stream(&format!("{base}?from={next}{query}")).await?;
        let mut got = false;
        loop {
            let line = tokio::select! {
                _ = &mut stop => return Ok(None),
                l = stream.next_line() => l?,
            };
            let Some(line) = line else { break };
            let e = parse(&line)?;
            next = e.seq + 1;
            got = true;
            if s.only_leases && e.lease.is_none() {
                continue;
            }
            sink(if s.json {
                String::from_utf8_lossy(&line).into_owned()
            } else {
                lease_render::event_line(&e)
            })?;
        }
        if !following {
            return Ok(over);
        }
        if let Some(id) = s.lease {
            let v: LeaseView = client.call("GET", &lease_path(id), None).await?;
            if v.state.is_final() {
                // The LM ends the stream at the first entry after which the lease is over;
                // entries committed in the same transaction (the last server and lease
                // changes) follow it: read them without following, then stop.
                (following, over) = (false, Some(v.state));
                continue;
            }
        }
        empty_ends = if got { 0 } else { empty_ends + 1 };
        if empty_ends >= 3 {
            bail!(
                "the Lease Manager keeps ending the event stream; resume with `lease-manager events --follow --from {next}`"
            );
        }
        tokio::select! {
            _ = &mut stop => return Ok(None),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// The sequence number of the newest audit entry (0: none), found with `GET /v1/audit`
/// pages of one entry: sequence numbers have no gaps, so a doubling search then a bisection
/// takes about 2 log2(n) small requests.
async fn last_seq(client: &AdminClient) -> anyhow::Result<u64> {
    async fn exists(client: &AdminClient, seq: u64) -> anyhow::Result<bool> {
        let v: Vec<AuditEntry> = client
            .call("GET", &format!("/v1/audit?from={seq}&limit=1"), None)
            .await?;
        Ok(!v.is_empty())
    }
    if !exists(client, 1).await? {
        return Ok(0);
    }
    let (mut lo, mut hi) = (1u64, 2u64);
    while exists(client, hi).await? {
        lo = hi;
        hi = hi.saturating_mul(2);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if exists(client, mid).await? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}
