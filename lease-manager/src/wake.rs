//! The wake supervisor: sends Wake-on-LAN, waits for the server's DHCPDISCOVER to confirm it,
//! retries with backoff, and marks the server unreachable when the budget is spent.
//! The policy ([`WakePolicy`]) is pure; [`supervise`] is the async shell.

use std::sync::Arc;
use std::time::Duration;

use lm_api::{BootId, EventKind, MacAddr, ServerState};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::fsm::Input;
use crate::inventory::{Inventory, InventoryError};
use crate::power::{PowerDriver, PowerTarget};

/// How hard to try.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WakePolicy {
    /// How to deliver magic packets (default both: `udp-broadcast`, `ethertype-0842`).
    #[serde(default = "default_methods")]
    pub methods: Vec<lm_api::WakeMethod>,
    /// Magic packets to send before giving up (default 3).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// How long to wait for the DHCPDISCOVER after the first packet, in ms (default 30000;
    /// a server takes seconds to POST). Each retry waits 1.5x longer.
    #[serde(default = "default_confirm_ms")]
    pub confirm_timeout_ms: u64,
}

fn default_methods() -> Vec<lm_api::WakeMethod> {
    vec![
        lm_api::WakeMethod::UdpBroadcast,
        lm_api::WakeMethod::Ethertype0842,
    ]
}
fn default_attempts() -> u32 {
    3
}
fn default_confirm_ms() -> u64 {
    30_000
}

impl Default for WakePolicy {
    fn default() -> Self {
        Self {
            methods: default_methods(),
            attempts: default_attempts(),
            confirm_timeout_ms: default_confirm_ms(),
        }
    }
}

impl WakePolicy {
    /// The wait after attempt `n` (1-based).
    pub fn wait_after(&self, attempt: u32) -> Duration {
        let factor = 1.5f64.powi(attempt.saturating_sub(1).min(16) as i32);
        Duration::from_millis((self.confirm_timeout_ms as f64 * factor) as u64)
    }

    /// Checks the values once at start.
    pub fn validate(&self) -> Result<(), String> {
        if self.methods.is_empty() {
            return Err(
                "wake.methods is empty: name at least one of udp-broadcast, ethertype-0842".into(),
            );
        }
        if self.attempts == 0 || self.attempts > 20 {
            return Err(format!(
                "wake.attempts = {} must be between 1 and 20",
                self.attempts
            ));
        }
        if self.confirm_timeout_ms < 100 {
            return Err(format!(
                "wake.confirm_timeout_ms = {} is too short (at least 100)",
                self.confirm_timeout_ms
            ));
        }
        Ok(())
    }
}

/// Starts a boot attempt for `key` (name or MAC): persists `waking` and spawns the supervisor.
pub fn start(
    inv: &Arc<Inventory>,
    power: &Arc<dyn PowerDriver>,
    policy: &WakePolicy,
    actor: &str,
    key: &str,
    boot_id: BootId,
) -> Result<BootId, InventoryError> {
    let rec = inv.find(key)?;
    inv.apply_as(actor, rec.mac, &Input::Wake { boot_id })?;
    tokio::spawn(supervise(
        inv.clone(),
        power.clone(),
        policy.clone(),
        rec.mac,
        boot_id,
        1,
    ));
    Ok(boot_id)
}

/// Resumes supervisors of servers that were waking when the LM stopped.
pub fn resume(inv: &Arc<Inventory>, power: &Arc<dyn PowerDriver>, policy: &WakePolicy) {
    for v in inv.list() {
        if let ServerState::Waking { boot_id, attempt } = v.state {
            tracing::info!(server = %v.name, attempt, "resuming the wake after a restart");
            tokio::spawn(supervise(
                inv.clone(),
                power.clone(),
                policy.clone(),
                v.mac,
                boot_id,
                attempt.max(1),
            ));
        }
    }
}

/// Sends attempts `first..=policy.attempts` until the server's state leaves `waking`.
pub async fn supervise(
    inv: Arc<Inventory>,
    power: Arc<dyn PowerDriver>,
    policy: WakePolicy,
    mac: MacAddr,
    boot_id: BootId,
    first: u32,
) {
    let mut changes = inv.subscribe();
    let started = inv.now_ms();
    for attempt in first..=policy.attempts {
        let Some(rec) = inv.get(mac) else { return };
        if !matches!(rec.state, ServerState::Waking { boot_id: b, .. } if b == boot_id) {
            return;
        }
        if let Err(e) = inv.apply(mac, &Input::WakeAttempt { boot_id, attempt }) {
            tracing::warn!(mac = %mac, error = %e, "wake attempt not recorded");
        }
        let target = PowerTarget {
            name: rec.name.clone(),
            mac,
            wol_password: rec.wol_password,
        };
        let p = power.clone();
        let sent = tokio::task::spawn_blocking(move || p.power_on(&target)).await;
        match sent {
            Ok(Ok(methods)) => {
                tracing::info!(server = %rec.name, mac = %mac, attempt, ?methods, "wake sent");
                inv.record(mac, EventKind::WakeSent { attempt, methods });
            }
            Ok(Err(e)) => {
                tracing::error!(server = %rec.name, mac = %mac, attempt, error = %e, "wake failed")
            }
            Err(e) => tracing::error!(mac = %mac, error = %e, "wake task failed"),
        }
        let deadline = tokio::time::Instant::now() + policy.wait_after(attempt);
        loop {
            let state = match tokio::time::timeout_at(deadline, changes.recv()).await {
                Err(_) => break, // this attempt timed out
                Ok(Ok(c)) if c.mac == mac => c.state,
                Ok(Ok(_)) => continue,
                // Missed changes: read the stored state instead.
                Ok(Err(RecvError::Lagged(_))) => match inv.get(mac) {
                    Some(r) => r.state,
                    None => return,
                },
                Ok(Err(RecvError::Closed)) => return,
            };
            match state {
                ServerState::Waking { .. } => continue,
                ServerState::Booting { boot_id: b } if b == boot_id => {
                    let after_ms = inv.now_ms().saturating_sub(started);
                    tracing::info!(mac = %mac, after_ms, "wake confirmed by DHCPDISCOVER");
                    inv.record(mac, EventKind::WakeConfirmed { after_ms });
                    return;
                }
                _ => return, // reset or superseded
            }
        }
    }
    let attempts = policy.attempts;
    match inv.apply(mac, &Input::WakeExhausted { boot_id, attempts }) {
        Ok(Some(_)) => {
            tracing::warn!(mac = %mac, attempts, "server unreachable: no DHCPDISCOVER after the wake budget");
            inv.record(mac, EventKind::Unreachable { attempts });
        }
        Ok(None) => {}
        Err(e) => tracing::error!(mac = %mac, error = %e, "cannot mark the server unreachable"),
    }
}
