//! `request`, `status`, `release`, `renew`: the tenant's lease commands against the Lease
//! Manager. The record (the tenant's approval list) is written before an answer is printed;
//! `release` ends the approval in the record before it asks the LM, so the gateway stops
//! admitting the lease's agents even if the LM cannot be reached. IO.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use lm_api::{CreateLease, LeaseId, Tunnel};
use po_api::ImageRef;
use serde::Serialize;

use crate::config::Config;
use crate::gateway::identity::GatewayIdentity;
use crate::lm::{Lm, load_bundle};
use crate::record::{RecordFile, RequestedLease};
use crate::render::{self, LeaseStatus};
use crate::{files, images};

/// What `request` asks for.
#[derive(Debug, Clone)]
pub struct RequestArgs {
    pub count: u32,
    pub role: Option<String>,
    pub image: ImageRef,
    pub duration_s: u64,
    pub tunnel: Tunnel,
    pub queue: bool,
    pub allow_partial: bool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Parses `1h`, `90m`, `3600s`, `2d` into seconds (at least one).
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 90m, 1h, 2d"))?;
    match d.as_secs() {
        0 => Err(format!("{s:?} is shorter than one second")),
        n => Ok(n),
    }
}

fn lm(cfg: &Config) -> anyhow::Result<(Lm, lm_api::CredentialBundle)> {
    let bundle = load_bundle(&cfg.bundle)?;
    let lm = Lm::new(&bundle, cfg.lm_url.as_deref())?;
    Ok((lm, bundle))
}

/// The answer of `request --json`.
#[derive(Debug, Serialize)]
pub struct Requested {
    pub answer: lm_api::CreateLeaseResponse,
    pub record: RequestedLease,
}

/// `request`.
pub async fn request(cfg: &Config, a: RequestArgs, json: bool) -> anyhow::Result<()> {
    let (lm, _) = lm(cfg)?;
    files::private_dir(&cfg.state_dir)?;
    // The image must be sealed here, with its key, or no agent could open it.
    let entry = images::find(&cfg.state_dir, &a.image)?;
    let identity = GatewayIdentity::load_or_create(&cfg.state_dir, &cfg.gateway)?;
    let spec = identity.spec(&cfg.gateway);
    spec.validate().context("the gateway spec")?;
    let req = CreateLease {
        count: a.count,
        duration_s: a.duration_s,
        allow_partial: a.allow_partial,
        queue: a.queue,
        tunnel: a.tunnel,
        role: a.role.clone(),
        image: Some(entry.id.clone()),
        gateway: Some(spec),
    };
    let answer = lm
        .create(&req)
        .await
        .with_context(|| format!("asking {} for {} servers", lm.url(), a.count))?;
    let record = RequestedLease {
        id: answer.lease.id,
        requested_ms: now_ms(),
        count: answer.lease.count,
        duration_s: a.duration_s,
        tunnel: a.tunnel,
        role: a.role,
        image: Some(entry.id),
        released_ms: None,
    };
    let rf = RecordFile::new(&cfg.state_dir);
    rf.update(|r| r.add(record.clone())).with_context(|| {
        format!(
            "lease {} was granted but could not be recorded in {}: the gateway will refuse its agents; release it (`procurement-organizer release {}`) or fix the state folder",
            answer.lease.id,
            rf.path().display(),
            answer.lease.id
        )
    })?;
    if json {
        return print_json(&Requested { answer, record });
    }
    println!("{}: {}", answer.lease.id, answer.message);
    let status = LeaseStatus {
        lease: answer.lease,
        record: Some(record),
    };
    print!("{}", render::lease_list(&[status], now_ms()));
    Ok(())
}

/// `status [LEASE]`.
pub async fn status(cfg: &Config, lease: Option<LeaseId>, json: bool) -> anyhow::Result<()> {
    let (lm, _) = lm(cfg)?;
    let record = RecordFile::new(&cfg.state_dir).load()?;
    let with_record = |v: lm_api::LeaseView| LeaseStatus {
        record: record.leases.get(&v.id).cloned(),
        lease: v,
    };
    match lease {
        None => {
            let all: Vec<LeaseStatus> = lm
                .leases()
                .await
                .with_context(|| format!("listing the leases at {}", lm.url()))?
                .into_iter()
                .map(with_record)
                .collect();
            if json {
                return print_json(&all);
            }
            print!("{}", render::lease_list(&all, now_ms()));
        }
        Some(id) => {
            let v = lm
                .lease(id)
                .await
                .with_context(|| format!("asking {} for lease {id}", lm.url()))?;
            let events = lm.events(id).await?;
            let s = with_record(v);
            if json {
                #[derive(Serialize)]
                struct Out<'a> {
                    #[serde(flatten)]
                    status: &'a LeaseStatus,
                    events: &'a [lm_api::AuditEntry],
                }
                return print_json(&Out {
                    status: &s,
                    events: &events,
                });
            }
            print!("{}", render::lease_status(&s, &events, now_ms()));
        }
    }
    Ok(())
}

/// `release LEASE`.
pub async fn release(cfg: &Config, id: LeaseId, json: bool) -> anyhow::Result<()> {
    let rf = RecordFile::new(&cfg.state_dir);
    let known = rf.update(|r| r.mark_released(id, now_ms()))?;
    if !known {
        tracing::warn!(lease = %id, "the lease is not in this organizer's record");
    }
    let (lm, _) = lm(cfg)?;
    let v = lm.release(id).await.with_context(|| {
        format!(
            "releasing {id} at {}: the record already says released, so the gateway refuses its agents; run the command again to tell the LM",
            lm.url()
        )
    })?;
    let record = rf.load()?.leases.get(&id).cloned();
    let s = LeaseStatus { lease: v, record };
    if json {
        return print_json(&s);
    }
    print!("{}", render::lease_list(&[s], now_ms()));
    Ok(())
}

/// `renew LEASE --duration D`.
pub async fn renew(cfg: &Config, id: LeaseId, duration_s: u64, json: bool) -> anyhow::Result<()> {
    let (lm, _) = lm(cfg)?;
    let v = lm
        .renew(id, duration_s)
        .await
        .with_context(|| format!("renewing {id} at {}", lm.url()))?;
    let record = RecordFile::new(&cfg.state_dir)
        .load()?
        .leases
        .get(&id)
        .cloned();
    let s = LeaseStatus { lease: v, record };
    if json {
        return print_json(&s);
    }
    print!("{}", render::lease_list(&[s], now_ms()));
    Ok(())
}

/// Pretty JSON on stdout.
pub fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("90m"), Ok(5400));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").unwrap_err().contains("soon"));
    }
}
