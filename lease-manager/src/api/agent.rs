//! `/v1/agent/*`: the ramdisk agent says hello, enrolls with its token, reports phases and
//! sends heartbeats. Before enrollment an agent has no certificate and is checked by its boot
//! attempt; once its server holds an agent certificate, reports and heartbeats must come with
//! it (the certificate names the lease and the server).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use lm_api::{
    AgentAction, AgentPhase, AgentReport, BootId, EnrollRequest, EnrollResponse, EventKind,
    Heartbeat, HeartbeatResponse, HelloRequest, HelloResponse, MacAddr, ServerState,
};
use lm_pki::{Identity, Serial};

use super::{Api, JsonBody, Principal, blocking, inv_err};
use crate::fsm::Input;
use crate::http_util::HttpError;
use crate::inventory::InventoryError;
use crate::ledger::{ServerRecord, enroll, leases};

/// Checks that the caller may speak for `mac`'s boot `boot_id`; returns the server.
fn check_agent(
    api: &Api,
    p: &Principal,
    mac: MacAddr,
    boot_id: BootId,
) -> Result<ServerRecord, HttpError> {
    let rec = api.inventory.get(mac).ok_or_else(|| {
        HttpError::new(
            StatusCode::NOT_FOUND,
            format!("{mac} is not in the inventory"),
        )
    })?;
    if rec.state.boot_id() != Some(boot_id) {
        return Err(HttpError::new(
            StatusCode::CONFLICT,
            format!(
                "boot id {boot_id} is not the current boot attempt of {}",
                rec.name
            ),
        ));
    }
    match p {
        Principal::Agent { lease, server }
            if server.as_str() != rec.name || rec.lease != Some(*lease) =>
        {
            return Err(HttpError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "the certificate is for {server} in lease {lease}, not for {} ({})",
                    rec.name,
                    rec.lease
                        .map(|l| l.to_string())
                        .unwrap_or("no lease".into())
                ),
            ));
        }
        Principal::Anonymous if rec.cert_serial.is_some() => {
            return Err(HttpError::new(
                StatusCode::UNAUTHORIZED,
                format!(
                    "{} is enrolled: its agent must present its certificate",
                    rec.name
                ),
            ));
        }
        _ => {}
    }
    Ok(rec)
}

pub(super) async fn hello(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<HelloRequest>,
) -> Result<Json<HelloResponse>, HttpError> {
    let inv = api.inventory.clone();
    let mac = req.boot_mac;
    let rec = inv.get(mac).ok_or_else(|| {
        HttpError::new(
            StatusCode::NOT_FOUND,
            format!("{mac} is not in the inventory"),
        )
    })?;
    if rec.cert_serial.is_some() {
        check_agent(&api, &p, mac, req.boot_id)?;
    }
    let actor = format!("agent:{}", rec.name);
    let name = blocking(move || {
        // One transaction: the state change, its lease's reaction and the facts.
        inv.transact(&actor, |w| {
            if w.step_server(
                mac,
                &Input::Hello {
                    boot_id: req.boot_id,
                },
            )?
            .is_some()
            {
                leases::server_changed(w, mac)?;
            }
            let mut r = w
                .server(mac)
                .ok_or_else(|| InventoryError::NotFound(mac.to_string()))?;
            r.facts = Some(req.facts);
            w.put_server(r);
            Ok::<_, InventoryError>(())
        })
        .map_err(|e| {
            tracing::warn!(mac = %mac, error = %e, "agent hello refused");
            inv_err(e)
        })?;
        inv.record(
            mac,
            EventKind::AgentHello {
                address: req.address,
                agent_version: req.agent_version,
                uptime_ms: req.uptime_ms,
            },
        );
        Ok(rec.name)
    })
    .await?;
    tracing::info!(server = %name, mac = %mac, "agent hello");
    Ok(Json(HelloResponse {
        server: name,
        heartbeat_secs: api.settings.heartbeat_secs,
    }))
}

/// A certificate issued for an enrollment.
struct Issued {
    not_after_ms: u64,
    serial: String,
    cert_pem: String,
}

/// Signs the agent certificate for `server` in `lease` until `not_after_ms`.
fn issue(
    api: &Api,
    csr: &lm_pki::VerifiedCsr,
    identity: Identity,
    now_ms: u64,
    not_after_ms: u64,
    serial_bits: [u64; 2],
) -> Result<Issued, InventoryError> {
    let mut serial = [0u8; 16];
    serial[..8].copy_from_slice(&serial_bits[0].to_be_bytes());
    serial[8..].copy_from_slice(&serial_bits[1].to_be_bytes());
    let serial =
        Serial::from_bytes(&serial).map_err(|e| InventoryError::Internal(e.to_string()))?;
    let cert = api
        .ca
        .authority()
        .issue_for_csr(
            csr,
            &identity,
            UNIX_EPOCH + Duration::from_millis(now_ms),
            UNIX_EPOCH + Duration::from_millis(not_after_ms),
            serial,
        )
        .map_err(|e| InventoryError::Internal(e.to_string()))?;
    Ok(Issued {
        not_after_ms,
        serial: cert.serial_hex,
        cert_pem: cert.cert_pem,
    })
}

/// The image and gateway a lease names: what its agents are told at enrollment.
fn lease_target(
    w: &crate::ledger::Work<'_>,
    lease: lm_api::LeaseId,
) -> (Option<String>, Option<lm_api::GatewaySpec>) {
    w.lease_ref(lease)
        .map(|l| (l.image.clone(), l.gateway.clone()))
        .unwrap_or_default()
}

pub(super) async fn enroll(
    State(api): State<Arc<Api>>,
    JsonBody(req): JsonBody<EnrollRequest>,
) -> Result<Json<EnrollResponse>, HttpError> {
    let api2 = api.clone();
    let out = blocking(move || {
        let csr = lm_pki::verify_csr(req.csr_pem.as_bytes());
        let token = if enroll::well_formed(&req.token) {
            api2.inventory
                .store()
                .token(&enroll::token_key(&req.token))
                .map_err(|e| inv_err(e.into()))?
        } else {
            None
        };
        let max = api2.settings.agent_cert_max_s;
        let csr_key = csr
            .as_ref()
            .map(|c| enroll::key_hash(&c.public_key_der()))
            .map_err(|e| e.to_string());
        let heartbeat_secs = api2.settings.heartbeat_secs;
        let actor = format!("agent:{}", req.boot_mac);
        let api3 = api2.clone();
        // Shared: when many agents enroll at once, their enrollments go to the store in one
        // transaction (the closure runs again alone if its batch fails).
        api2.inventory
            .transact_shared(&actor, move |w| {
                let api2 = &api3;
                let grant = match enroll::decide(w, &req, token.clone(), csr_key.clone(), max) {
                    Ok(enroll::Enrollment::New(g)) => g,
                    Ok(enroll::Enrollment::Replay {
                        server,
                        lease,
                        tunnel,
                        issued,
                    }) => {
                        let (image, gateway) = lease_target(w, lease);
                        return Ok(Ok(EnrollResponse {
                            server,
                            lease,
                            cert_pem: issued.cert_pem,
                            serial: issued.serial,
                            not_after_ms: issued.not_after_ms,
                            tunnel,
                            heartbeat_secs,
                            image,
                            gateway,
                        }));
                    }
                    Err(refusal) => return Ok(Err(refusal)),
                };
                let Ok(csr) = &csr else {
                    return Err(InventoryError::Internal("CSR checked above".into()));
                };
                let identity = Identity::Agent {
                    lease: grant.lease,
                    server: grant
                        .server
                        .parse()
                        .map_err(|e: lm_api::NameError| InventoryError::Internal(e.to_string()))?,
                };
                let not_after_ms = grant.not_after_ms / 1000 * 1000;
                let bits = [w.random(), w.random()];
                let cert = issue(api2, csr, identity, w.now_ms, not_after_ms, bits)?;
                enroll::enrolled(
                    w,
                    &grant,
                    req.boot_id,
                    &cert.serial,
                    &cert.cert_pem,
                    cert.not_after_ms,
                )?;
                leases::server_changed(w, grant.mac)?;
                let (image, gateway) = lease_target(w, grant.lease);
                Ok(Ok(EnrollResponse {
                    server: grant.server.clone(),
                    lease: grant.lease,
                    cert_pem: cert.cert_pem,
                    serial: cert.serial,
                    not_after_ms: cert.not_after_ms,
                    tunnel: grant.tunnel,
                    heartbeat_secs,
                    image,
                    gateway,
                }))
            })
            .map_err(inv_err)
    })
    .await?;
    match out {
        Ok(resp) => {
            tracing::info!(server = %resp.server, lease = %resp.lease, serial = %resp.serial, "agent enrolled");
            Ok(Json(resp))
        }
        Err(refusal) => {
            tracing::warn!(error = %refusal, "enrollment refused (security event)");
            Err(HttpError::new(
                StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::FORBIDDEN),
                format!("enrollment refused: {refusal}"),
            ))
        }
    }
}

/// The state-machine input of a report, if it moves the server: a finished (or failed) wipe,
/// or a finished phase of the lease pipeline. Other reports, and failures outside the wipe
/// (the agent retries, or gives up with a report of its own), only go to the timeline.
fn report_input(rep: &AgentReport) -> Option<Input> {
    let boot_id = rep.boot_id;
    match (rep.phase, rep.ok) {
        (AgentPhase::Wipe, true) => Some(Input::Wiped { boot_id }),
        (AgentPhase::Wipe, false) => Some(Input::AgentGaveUp {
            boot_id,
            reason: format!("wipe failed: {}", rep.detail),
        }),
        (phase @ (AgentPhase::Tunnel | AgentPhase::Transfer), true) => {
            Some(Input::PhaseDone { boot_id, phase })
        }
        _ => None,
    }
}

pub(super) async fn report(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    JsonBody(rep): JsonBody<AgentReport>,
) -> Result<StatusCode, HttpError> {
    if rep.detail.len() > 4096 {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "detail: longer than 4096 bytes",
        ));
    }
    let rec = check_agent(&api, &p, rep.boot_mac, rep.boot_id)?;
    let inv = api.inventory.clone();
    blocking(move || {
        let actor = format!("agent:{}", rec.name);
        if let Some(input) = report_input(&rep) {
            // Persisted (with the lease's reaction) before the answer; a refusal is a 409
            // naming the server's state.
            let moved = inv
                .apply_as(&actor, rep.boot_mac, &input)
                .map_err(|e| {
                    tracing::warn!(server = %rec.name, phase = rep.phase.as_str(), error = %e, "agent report refused");
                    inv_err(e)
                })?;
            if let Some(state) = moved {
                tracing::info!(server = %rec.name, phase = rep.phase.as_str(), state = state.name(), "agent phase done");
            }
        }
        // The agent is about to kexec into the tenant OS: from now on only a power cycle
        // brings an agent back to this server (at release).
        if rep.ok && rep.phase == AgentPhase::Start && rep.detail.contains("kexec=loaded") {
            inv.record_started(rep.boot_mac, rep.boot_id).map_err(inv_err)?;
        }
        // Heartbeats of the ready phase are not timeline material; everything else is.
        if !(rep.ok && rep.phase == AgentPhase::Ready) {
            inv.record(
                rep.boot_mac,
                EventKind::AgentReport {
                    phase: rep.phase,
                    ok: rep.ok,
                    detail: rep.detail,
                    attempt: rep.attempt,
                },
            );
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn heartbeat(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    JsonBody(hb): JsonBody<Heartbeat>,
) -> Result<Json<HeartbeatResponse>, HttpError> {
    let rec = check_agent(&api, &p, hb.boot_mac, hb.boot_id)?;
    let lease_ends_ms = rec.lease.and_then(|id| {
        api.inventory
            .with_ledger(|l| l.leases.get(&id).map(|x| x.ends_ms))
    });
    let action = match rec.state {
        ServerState::Releasing { .. } => {
            // The agent hears about the release now: it is wiping from here on.
            let inv = api.inventory.clone();
            let name = rec.name.clone();
            blocking(move || {
                inv.apply_as(
                    &format!("agent:{name}"),
                    hb.boot_mac,
                    &Input::WipeStarted {
                        boot_id: hb.boot_id,
                    },
                )
                .map_err(inv_err)
            })
            .await?;
            AgentAction::Release
        }
        ServerState::Wiping { .. } => AgentAction::Release,
        _ => AgentAction::Continue,
    };
    Ok(Json(HeartbeatResponse {
        action,
        lease_ends_ms,
    }))
}
