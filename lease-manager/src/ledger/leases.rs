//! Lease rules, pure: create (allocation, partial grants, queueing), release, renew, expiry,
//! release time-outs, and how server changes move their lease. One writer runs these at a
//! time (the inventory's writer lock), so two leases can never take the same server.

use lm_api::{CreateLease, LeaseId, LeaseState, MAX_COUNT, MacAddr, Name, ServerState};

use super::{LeaseRecord, StepError, Work};
use crate::fsm::Input;

/// Bounds of lease durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub min_duration_s: u64,
    /// Longest total lease (first grant to end, renewals included).
    pub max_duration_s: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            min_duration_s: 60,
            max_duration_s: 90 * 24 * 3600,
        }
    }
}

/// Why a lease operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseRefusal {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(
        "only {idle} of the {asked} servers asked for are idle; ask again with allow_partial (take what is idle) or queue (wait for the rest)"
    )]
    NoCapacity { idle: u32, asked: u32 },
    #[error("no lease {0} (see the lease list)")]
    NotFound(String),
    #[error("lease {id} is {state}: {what}")]
    WrongState {
        id: LeaseId,
        state: &'static str,
        what: &'static str,
    },
    #[error("tenant {0} is not known or was removed")]
    UnknownTenant(String),
    #[error(transparent)]
    Step(#[from] StepError),
}

/// What a create request got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: LeaseId,
    pub granted: u32,
    pub queued: u32,
    pub declined: u32,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> LeaseRefusal {
    LeaseRefusal::Invalid {
        field,
        reason: reason.into(),
    }
}

fn check_label(field: &'static str, v: &Option<String>, max: usize) -> Result<(), LeaseRefusal> {
    if let Some(s) = v {
        if s.is_empty() || s.len() > max {
            return Err(invalid(field, format!("must be 1 to {max} bytes")));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@+".contains(&b))
        {
            return Err(invalid(field, "use letters, digits and - _ . : / @ + only"));
        }
    }
    Ok(())
}

/// Idle servers no lease holds, in name order.
fn idle_servers(w: &Work<'_>) -> Vec<MacAddr> {
    w.server_macs_by_name()
        .into_iter()
        .filter(|m| {
            w.server_ref(*m)
                .is_some_and(|s| s.state == ServerState::Idle && s.lease.is_none())
        })
        .collect()
}

/// Binds `mac` to `lease`, reserves it and starts its wake.
fn take_server(w: &mut Work<'_>, lease: &mut LeaseRecord, mac: MacAddr) -> Result<(), StepError> {
    let mut rec = w.server(mac).ok_or(StepError::NoServer(mac))?;
    rec.lease = Some(lease.id);
    rec.cert_serial = None;
    w.put_server(rec);
    w.step_server(mac, &Input::Reserve)?;
    let boot_id = lm_api::BootId::from_random(w.random());
    w.step_server(mac, &Input::Wake { boot_id })?;
    w.tx.effects.push(super::Effect::Wake { mac, boot_id });
    lease.servers.push(mac);
    Ok(())
}

fn set_state(w: &mut Work<'_>, lease: &mut LeaseRecord, to: LeaseState, why: Option<&str>) {
    if lease.state == to {
        return;
    }
    let detail = match why {
        Some(why) => format!("{} -> {} ({why})", lease.state.as_str(), to.as_str()),
        None => format!("{} -> {}", lease.state.as_str(), to.as_str()),
    };
    w.audit(
        "lease.state",
        Some(lease.id),
        None,
        Some(&lease.tenant.clone()),
        detail,
    );
    lease.state = to;
}

/// A tenant asks for servers.
pub fn create(
    w: &mut Work<'_>,
    tenant: &Name,
    req: &CreateLease,
    limits: Limits,
) -> Result<Grant, LeaseRefusal> {
    if w.tenant(tenant).is_none_or(|t| t.removed) {
        return Err(LeaseRefusal::UnknownTenant(tenant.to_string()));
    }
    if req.count == 0 || req.count > MAX_COUNT {
        return Err(invalid("count", format!("must be 1 to {MAX_COUNT}")));
    }
    if req.duration_s < limits.min_duration_s || req.duration_s > limits.max_duration_s {
        return Err(invalid(
            "duration_s",
            format!(
                "must be {} to {} seconds",
                limits.min_duration_s, limits.max_duration_s
            ),
        ));
    }
    check_label("role", &req.role, 64)?;
    check_label("image", &req.image, 128)?;
    if let Some(g) = &req.gateway {
        g.validate()
            .map_err(|e| invalid("gateway", e.to_string()))?;
    }
    let idle = idle_servers(w);
    let available = u32::try_from(idle.len()).unwrap_or(u32::MAX);
    let granted = available.min(req.count);
    let (queued, declined) = match (granted < req.count, req.queue, req.allow_partial) {
        (false, _, _) => (0, 0),
        (true, true, _) => (req.count - granted, 0),
        (true, false, true) if granted > 0 => (0, req.count - granted),
        (true, false, _) => {
            return Err(LeaseRefusal::NoCapacity {
                idle: available,
                asked: req.count,
            });
        }
    };
    let id = LeaseId::from_random(w.random());
    let now = w.now_ms;
    let mut lease = LeaseRecord {
        id,
        tenant: tenant.clone(),
        state: LeaseState::Requested,
        reason: None,
        failing: false,
        count: req.count - declined,
        waiting: queued,
        servers: Vec::new(),
        tunnel: req.tunnel,
        role: req.role.clone(),
        image: req.image.clone(),
        gateway: req.gateway.clone(),
        created_ms: now,
        starts_ms: now,
        ends_ms: now.saturating_add(req.duration_s.saturating_mul(1000)),
        ended_ms: None,
        renewals: 0,
    };
    w.audit(
        "lease.created",
        Some(id),
        None,
        Some(tenant),
        format!(
            "asked {} for {} s ({}): granted {granted}, queued {queued}, declined {declined}",
            req.count,
            req.duration_s,
            req.tunnel.as_str()
        ),
    );
    for mac in idle.into_iter().take(granted as usize) {
        take_server(w, &mut lease, mac)?;
    }
    if granted > 0 {
        set_state(w, &mut lease, LeaseState::Provisioning, None);
    }
    w.put_lease(lease);
    Ok(Grant {
        id,
        granted,
        queued,
        declined,
    })
}

/// Ends a lease (tenant release, operator, expiry, or a failure): every server is released
/// and its certificate revoked. Releasing a lease that is already releasing is a no-op.
pub fn release(
    w: &mut Work<'_>,
    id: LeaseId,
    reason: &str,
    failing: bool,
) -> Result<(), LeaseRefusal> {
    let mut lease = w
        .lease(id)
        .ok_or_else(|| LeaseRefusal::NotFound(id.to_string()))?;
    match lease.state {
        LeaseState::Releasing => return Ok(()),
        s if s.is_final() => {
            return Err(LeaseRefusal::WrongState {
                id,
                state: s.as_str(),
                what: "it is over already",
            });
        }
        _ => {}
    }
    lease.reason = Some(reason.to_string());
    lease.failing = failing;
    lease.waiting = 0;
    set_state(w, &mut lease, LeaseState::Releasing, Some(reason));
    for mac in lease.servers.clone() {
        w.step_server(mac, &Input::Release)?;
        unbind_if_done(w, &mut lease, mac);
    }
    settle(w, &mut lease);
    w.put_lease(lease);
    // Servers that were not booted yet are idle again: queued leases may take them.
    assign_waiting(w)
}

/// Removes `mac` from `lease` when the server no longer needs it (idle, or out of service).
fn unbind_if_done(w: &mut Work<'_>, lease: &mut LeaseRecord, mac: MacAddr) {
    let Some(mut rec) = w.server(mac) else { return };
    let done = matches!(
        rec.state,
        ServerState::Idle
            | ServerState::Quarantined { .. }
            | ServerState::Unreachable { .. }
            | ServerState::Failed { .. }
    );
    if !done || rec.lease != Some(lease.id) {
        return;
    }
    // The agent keeps its certificate while it wipes (it must still be told, and report);
    // it is revoked when the server leaves the lease.
    if let Some(serial) = rec.cert_serial.take() {
        w.revoke(&serial, &format!("server left lease {}", lease.id));
        w.audit(
            "cert.revoked",
            Some(lease.id),
            Some(&rec.name),
            Some(&lease.tenant.clone()),
            format!("agent certificate {serial}: server {}", rec.state.name()),
        );
    }
    rec.lease = None;
    w.put_server(rec);
    lease.servers.retain(|m| *m != mac);
}

/// Moves the lease along when its servers allow it.
fn settle(w: &mut Work<'_>, lease: &mut LeaseRecord) {
    match lease.state {
        LeaseState::Releasing if lease.servers.is_empty() => {
            let to = if lease.failing {
                LeaseState::Failed
            } else {
                LeaseState::Ended
            };
            set_state(w, lease, to, None);
            lease.ended_ms = Some(w.now_ms);
        }
        LeaseState::Requested if !lease.servers.is_empty() => {
            set_state(w, lease, LeaseState::Provisioning, None);
        }
        LeaseState::Provisioning
            if lease.waiting == 0
                && !lease.servers.is_empty()
                && lease.servers.iter().all(|m| {
                    w.server_ref(*m)
                        .is_some_and(|s| matches!(s.state, ServerState::Running { .. }))
                }) =>
        {
            set_state(w, lease, LeaseState::Active, None);
        }
        _ => {}
    }
}

/// Call after a server's state changed: fails its lease if it broke, returns it when done,
/// and hands idle servers to queued leases.
pub fn server_changed(w: &mut Work<'_>, mac: MacAddr) -> Result<(), LeaseRefusal> {
    let Some(rec) = w.server_ref(mac) else {
        return Ok(());
    };
    let (lease_id, state) = (rec.lease, rec.state.clone());
    let name = rec.name.clone();
    if let Some(id) = lease_id
        && let Some(mut lease) = w.lease(id)
    {
        let broken = match &state {
            ServerState::Unreachable { reason, .. } | ServerState::Failed { reason, .. } => {
                Some(format!("server {name} {}: {reason}", state.name()))
            }
            _ => None,
        };
        let before = lease.clone();
        unbind_if_done(w, &mut lease, mac);
        settle(w, &mut lease);
        // Leases can be large (a thousand servers): write them only when they change.
        if lease != before {
            w.put_lease(lease.clone());
        }
        if let Some(why) = broken
            && !matches!(lease.state, LeaseState::Releasing)
            && !lease.state.is_final()
        {
            release(w, id, &why, true)?;
        }
    }
    if w.server_ref(mac)
        .is_some_and(|s| s.state == ServerState::Idle && s.lease.is_none())
    {
        assign_waiting(w)?;
    }
    Ok(())
}

/// Gives idle servers to queued leases, oldest lease first.
pub fn assign_waiting(w: &mut Work<'_>) -> Result<(), LeaseRefusal> {
    for id in w.lease_ids() {
        let Some(mut lease) = w.lease(id) else {
            continue;
        };
        if lease.waiting == 0
            || !matches!(
                lease.state,
                LeaseState::Requested | LeaseState::Provisioning
            )
        {
            continue;
        }
        let idle = idle_servers(w);
        if idle.is_empty() {
            break;
        }
        let mut took = false;
        for mac in idle.into_iter().take(lease.waiting as usize) {
            take_server(w, &mut lease, mac)?;
            lease.waiting -= 1;
            took = true;
        }
        if took {
            w.audit(
                "lease.assigned",
                Some(id),
                None,
                Some(&lease.tenant.clone()),
                format!(
                    "{} servers now, {} still queued",
                    lease.servers.len(),
                    lease.waiting
                ),
            );
            settle(w, &mut lease);
            w.put_lease(lease);
        }
    }
    Ok(())
}

/// Extends a lease.
pub fn renew(
    w: &mut Work<'_>,
    id: LeaseId,
    duration_s: u64,
    limits: Limits,
) -> Result<u64, LeaseRefusal> {
    let mut lease = w
        .lease(id)
        .ok_or_else(|| LeaseRefusal::NotFound(id.to_string()))?;
    if !matches!(
        lease.state,
        LeaseState::Requested | LeaseState::Provisioning | LeaseState::Active
    ) {
        return Err(LeaseRefusal::WrongState {
            id,
            state: lease.state.as_str(),
            what: "only a lease that has not ended can be renewed",
        });
    }
    if duration_s == 0 {
        return Err(invalid("duration_s", "must be at least 1 second"));
    }
    let ends = lease
        .ends_ms
        .saturating_add(duration_s.saturating_mul(1000));
    let total_s = ends.saturating_sub(lease.starts_ms) / 1000;
    if total_s > limits.max_duration_s {
        return Err(invalid(
            "duration_s",
            format!(
                "the lease would last {total_s} s in all; the most is {} s",
                limits.max_duration_s
            ),
        ));
    }
    lease.ends_ms = ends;
    lease.renewals += 1;
    w.audit(
        "lease.renewed",
        Some(id),
        None,
        Some(&lease.tenant.clone()),
        format!("+{duration_s} s, now ends at {ends} ms"),
    );
    w.put_lease(lease);
    Ok(ends)
}

/// Releases every lease whose end has passed.
pub fn expire_due(w: &mut Work<'_>) -> Result<Vec<LeaseId>, LeaseRefusal> {
    let now = w.now_ms;
    let due: Vec<LeaseId> = w
        .lease_ids()
        .into_iter()
        .filter(|id| {
            w.lease_ref(*id).is_some_and(|l| {
                !l.state.is_final() && l.state != LeaseState::Releasing && l.ends_ms <= now
            })
        })
        .collect();
    for id in &due {
        release(w, *id, "expired", false)?;
    }
    Ok(due)
}

/// Quarantines released servers whose agents never confirmed the wipe.
pub fn release_timeouts(w: &mut Work<'_>, timeout_s: u64) -> Result<(), LeaseRefusal> {
    let now = w.now_ms;
    for mac in w.server_macs_by_name() {
        let Some(rec) = w.server_ref(mac) else {
            continue;
        };
        let waiting = matches!(
            rec.state,
            ServerState::Releasing { .. } | ServerState::Wiping { .. }
        );
        if waiting && rec.since_ms.saturating_add(timeout_s * 1000) <= now {
            w.step_server(mac, &Input::ReleaseTimedOut { after_s: timeout_s })?;
            server_changed(w, mac)?;
        }
    }
    Ok(())
}
