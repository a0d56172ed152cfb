//! The gateway's admission decisions, pure: who may register a WireGuard peer and who may get
//! an image key. Every input is an argument (the agent's certificate as rustls verified it
//! against the LM CA, the organizer's record, the LM's view of the lease, the CRL and its age,
//! the time), so every refusal is a unit test.
//!
//! Order of checks: the certificate names an agent -> it has not expired -> a fresh enough CRL
//! does not list it -> the organizer asked for the lease and has not released it -> the LM
//! knows the lease as this tenant's -> the lease is live (provisioning or active) -> the
//! certificate names a server of the lease, in a state that builds or uses the tunnel, and is
//! the certificate the LM issued that server. For keys, also: the image is the one the lease
//! names, in the LM and in the record, and the request came from the server's tunnel address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use lm_api::{LeaseId, LeaseState, LeaseView, Name, Tunnel};
use lm_pki::{CheckedCrl, Identity, PeerCert};
use po_api::{ErrorCode, ImageRef};

use crate::record::{NotApproved, Record};

/// Server states (as the LM names them) in which an agent may register and fetch keys.
pub const SERVING_STATES: [&str; 4] = ["enrolling", "tunneling", "transferring", "running"];

/// The agent a certificate speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCert {
    pub lease: LeaseId,
    pub server: Name,
    pub serial_hex: String,
    pub not_after_unix: i64,
}

/// The revocation list and when it was fetched.
#[derive(Debug, Clone)]
pub struct CrlState {
    pub crl: CheckedCrl,
    pub fetched_unix: i64,
}

/// Why a request was refused. `Display` is the log line and the answer's sentence; it never
/// holds key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotAnAgent {
        identity: String,
    },
    Expired {
        not_after_unix: i64,
        now_unix: i64,
    },
    CrlMissing,
    CrlStale {
        age_secs: i64,
        max_secs: i64,
    },
    Revoked {
        serial: String,
    },
    NotApproved {
        lease: LeaseId,
    },
    ReleasedHere {
        lease: LeaseId,
    },
    UnknownToLm {
        lease: LeaseId,
    },
    ForeignTenant {
        lease: LeaseId,
        tenant: String,
    },
    LeaseNotLive {
        lease: LeaseId,
        state: LeaseState,
    },
    NotInLease {
        lease: LeaseId,
        server: Name,
    },
    ServerNotServing {
        server: Name,
        state: String,
    },
    StaleCertificate {
        server: Name,
        serial: String,
    },
    WrongImage {
        asked: String,
        leased: Option<String>,
    },
    NotFromTunnel {
        source: IpAddr,
        expected: Option<Ipv4Addr>,
    },
    LmUnavailable {
        detail: String,
    },
    /// The lease's tunnel choice (in the record and in the LM's view) is not the one this
    /// request or sync builds, or the two disagree.
    WrongTunnel {
        lease: LeaseId,
        requested: Tunnel,
        listed: Tunnel,
        offered: Tunnel,
    },
    /// This gateway runs the other tunnel (`gateway.tunnel`).
    GatewayTunnel {
        runs: Tunnel,
        asked: Tunnel,
    },
}

impl Refusal {
    /// The wire code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotAnAgent { .. } => ErrorCode::NotAnAgent,
            Self::Expired { .. } => ErrorCode::Expired,
            Self::CrlMissing | Self::CrlStale { .. } | Self::LmUnavailable { .. } => {
                ErrorCode::Unavailable
            }
            Self::Revoked { .. } | Self::StaleCertificate { .. } => ErrorCode::Revoked,
            Self::NotApproved { .. } | Self::ReleasedHere { .. } => ErrorCode::NotApproved,
            Self::UnknownToLm { .. } | Self::ForeignTenant { .. } => ErrorCode::UnknownLease,
            Self::LeaseNotLive { .. } => ErrorCode::LeaseNotLive,
            Self::NotInLease { .. } | Self::ServerNotServing { .. } => ErrorCode::WrongServer,
            Self::WrongImage { .. } => ErrorCode::WrongImage,
            Self::NotFromTunnel { .. } => ErrorCode::NotFromTunnel,
            Self::WrongTunnel { .. } | Self::GatewayTunnel { .. } => ErrorCode::WrongTunnel,
        }
    }

    /// A short word for log fields (`reason=`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotAnAgent { .. } => "not-an-agent",
            Self::Expired { .. } => "expired-certificate",
            Self::CrlMissing => "no-crl",
            Self::CrlStale { .. } => "stale-crl",
            Self::Revoked { .. } => "revoked-certificate",
            Self::NotApproved { .. } => "unapproved-lease",
            Self::ReleasedHere { .. } => "released-lease",
            Self::UnknownToLm { .. } => "unknown-lease",
            Self::ForeignTenant { .. } => "foreign-lease",
            Self::LeaseNotLive { .. } => "lease-not-live",
            Self::NotInLease { .. } => "server-not-in-lease",
            Self::ServerNotServing { .. } => "server-not-serving",
            Self::StaleCertificate { .. } => "stale-certificate",
            Self::WrongImage { .. } => "wrong-image",
            Self::NotFromTunnel { .. } => "not-from-tunnel",
            Self::LmUnavailable { .. } => "lm-unavailable",
            Self::WrongTunnel { .. } => "wrong-tunnel",
            Self::GatewayTunnel { .. } => "gateway-tunnel",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnAgent { identity } => {
                write!(
                    f,
                    "the certificate names {identity}, not a lease server's agent"
                )
            }
            Self::Expired {
                not_after_unix,
                now_unix,
            } => write!(
                f,
                "the certificate expired {} s ago",
                now_unix.saturating_sub(*not_after_unix)
            ),
            Self::CrlMissing => write!(
                f,
                "the Lease Manager's revocation list could not be fetched yet; try again"
            ),
            Self::CrlStale { age_secs, max_secs } => write!(
                f,
                "the Lease Manager's revocation list is {age_secs} s old (at most {max_secs}) and could not be refreshed; try again"
            ),
            Self::Revoked { serial } => {
                write!(
                    f,
                    "the certificate (serial {serial}) is revoked by the Lease Manager"
                )
            }
            Self::NotApproved { lease } => {
                write!(f, "lease {lease} was not requested by this organizer")
            }
            Self::ReleasedHere { lease } => {
                write!(f, "lease {lease} was released by this organizer")
            }
            Self::UnknownToLm { lease } => {
                write!(
                    f,
                    "the Lease Manager does not know lease {lease} for this tenant"
                )
            }
            Self::ForeignTenant { lease, tenant } => write!(
                f,
                "lease {lease} belongs to tenant {tenant}, not to this organizer's tenant"
            ),
            Self::LeaseNotLive { lease, state } => {
                write!(f, "lease {lease} is {}", state.as_str())
            }
            Self::NotInLease { lease, server } => {
                write!(f, "server {server} is not a server of lease {lease}")
            }
            Self::ServerNotServing { server, state } => {
                write!(
                    f,
                    "server {server} is {state}, not building or using its tunnel"
                )
            }
            Self::StaleCertificate { server, serial } => write!(
                f,
                "the certificate (serial {serial}) is not the one the Lease Manager issued to server {server} for this lease"
            ),
            Self::WrongImage { asked, leased } => match leased {
                Some(l) => write!(f, "image {asked} asked for, but the lease names image {l}"),
                None => write!(f, "image {asked} asked for, but the lease names no image"),
            },
            Self::NotFromTunnel { source, expected } => match expected {
                Some(e) => write!(
                    f,
                    "the request came from {source}, not from the server's tunnel address {e}"
                ),
                None => write!(
                    f,
                    "the request came from {source}; the server has not registered a tunnel"
                ),
            },
            Self::LmUnavailable { detail } => {
                write!(
                    f,
                    "the Lease Manager could not be asked: {detail}; try again"
                )
            }
            Self::WrongTunnel {
                lease,
                requested,
                listed,
                offered,
            } => {
                if requested != listed {
                    write!(
                        f,
                        "lease {lease} was requested here with tunnel {} but the Lease Manager lists it with {}",
                        requested.as_str(),
                        listed.as_str()
                    )
                } else {
                    write!(
                        f,
                        "lease {lease} asked for tunnel {}, not {}: {}",
                        requested.as_str(),
                        offered.as_str(),
                        tunnel_hint(*requested)
                    )
                }
            }
            Self::GatewayTunnel { runs, asked } => write!(
                f,
                "this gateway runs tunnel {} (gateway.tunnel = \"{}\"), not {}: {}",
                runs.as_str(),
                runs.as_str(),
                asked.as_str(),
                tunnel_hint(*runs)
            ),
        }
    }
}

fn tunnel_hint(t: Tunnel) -> &'static str {
    match t {
        Tunnel::Wireguard => "agents register a WireGuard peer here",
        Tunnel::Ipsec => {
            "agents build an IKEv2 tunnel with their LM certificate, not a WireGuard peer"
        }
    }
}

/// Whether `lease` may have a tunnel of kind `offered`: the tenant requested it with that
/// tunnel (`requested`, the record) and the Lease Manager lists it so (`listed`). A
/// disagreement is refused too: neither side is taken over the other.
pub fn check_tunnel(
    lease: LeaseId,
    requested: Tunnel,
    listed: Tunnel,
    offered: Tunnel,
) -> Result<(), Refusal> {
    if requested == offered && listed == offered {
        Ok(())
    } else {
        Err(Refusal::WrongTunnel {
            lease,
            requested,
            listed,
            offered,
        })
    }
}

/// Whether a gateway running `runs` (`gateway.tunnel`) serves requests for tunnel `asked`.
pub fn check_gateway_tunnel(runs: Tunnel, asked: Tunnel) -> Result<(), Refusal> {
    if runs == asked {
        Ok(())
    } else {
        Err(Refusal::GatewayTunnel { runs, asked })
    }
}

/// Whether the agent of `cert` may register a WireGuard peer at a gateway running `runs`:
/// [`admit_registration`] for WireGuard.
pub fn admit_wireguard<'a>(
    cert: &AgentCert,
    runs: Tunnel,
    f: &Facts<'a>,
) -> Result<&'a LeaseView, Refusal> {
    admit_registration(cert, runs, Tunnel::Wireguard, f)
}

/// Whether the agent of `cert` may register for a tunnel of kind `asked` (a WireGuard key, or
/// none for IPsec) at a gateway running `runs`: the gateway runs that tunnel, then [`admit`],
/// then the lease asked for it (record and LM). Returns the LM's view of the lease.
pub fn admit_registration<'a>(
    cert: &AgentCert,
    runs: Tunnel,
    asked: Tunnel,
    f: &Facts<'a>,
) -> Result<&'a LeaseView, Refusal> {
    check_gateway_tunnel(runs, asked)?;
    let lease = admit(cert, f)?;
    let requested = f
        .record
        .approved(cert.lease)
        .map(|r| r.tunnel)
        .map_err(|_| Refusal::NotApproved { lease: cert.lease })?;
    check_tunnel(lease.id, requested, lease.tunnel, asked)?;
    Ok(lease)
}

/// The agent a verified client certificate speaks for.
pub fn agent_of(peer: &PeerCert) -> Result<AgentCert, Refusal> {
    match &peer.identity {
        Identity::Agent { lease, server } => Ok(AgentCert {
            lease: *lease,
            server: server.clone(),
            serial_hex: peer.serial_hex.clone(),
            not_after_unix: peer.not_after_unix,
        }),
        other => Err(Refusal::NotAnAgent {
            identity: other.to_string(),
        }),
    }
}

/// What a decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub record: &'a Record,
    /// The LM's view of the certificate's lease; `None` when the LM answered 404.
    pub lease: Option<&'a LeaseView>,
    /// This organizer's tenant (from its credential bundle).
    pub tenant: &'a Name,
    pub crl: Option<&'a CrlState>,
    pub crl_max_age_secs: i64,
    pub now_unix: i64,
}

/// Checks the certificate itself: expiry and revocation.
pub fn check_certificate(cert: &AgentCert, f: &Facts<'_>) -> Result<(), Refusal> {
    if cert.not_after_unix <= f.now_unix {
        return Err(Refusal::Expired {
            not_after_unix: cert.not_after_unix,
            now_unix: f.now_unix,
        });
    }
    let crl = f.crl.ok_or(Refusal::CrlMissing)?;
    let age = f.now_unix.saturating_sub(crl.fetched_unix);
    if age > f.crl_max_age_secs {
        return Err(Refusal::CrlStale {
            age_secs: age,
            max_secs: f.crl_max_age_secs,
        });
    }
    if crl.crl.is_revoked(&cert.serial_hex) {
        return Err(Refusal::Revoked {
            serial: cert.serial_hex.clone(),
        });
    }
    Ok(())
}

/// Checks the organizer's record: the lease was requested here and not released.
pub fn check_record(cert: &AgentCert, record: &Record) -> Result<(), Refusal> {
    match record.approved(cert.lease) {
        Ok(_) => Ok(()),
        Err(NotApproved::Unknown) => Err(Refusal::NotApproved { lease: cert.lease }),
        Err(NotApproved::Released) => Err(Refusal::ReleasedHere { lease: cert.lease }),
    }
}

/// Whether the agent of `cert` may have a tunnel: the checks of the module doc up to the
/// server's certificate. Returns the LM's view of the lease.
pub fn admit<'a>(cert: &AgentCert, f: &Facts<'a>) -> Result<&'a LeaseView, Refusal> {
    check_certificate(cert, f)?;
    check_record(cert, f.record)?;
    let lease = f.lease.ok_or(Refusal::UnknownToLm { lease: cert.lease })?;
    if lease.id != cert.lease {
        return Err(Refusal::UnknownToLm { lease: cert.lease });
    }
    if &lease.tenant != f.tenant {
        return Err(Refusal::ForeignTenant {
            lease: lease.id,
            tenant: lease.tenant.to_string(),
        });
    }
    if !matches!(lease.state, LeaseState::Provisioning | LeaseState::Active) {
        return Err(Refusal::LeaseNotLive {
            lease: lease.id,
            state: lease.state,
        });
    }
    let server = lease
        .servers
        .iter()
        .find(|s| s.name == cert.server.as_str())
        .ok_or_else(|| Refusal::NotInLease {
            lease: lease.id,
            server: cert.server.clone(),
        })?;
    if !SERVING_STATES.contains(&server.state.as_str()) {
        return Err(Refusal::ServerNotServing {
            server: cert.server.clone(),
            state: server.state.clone(),
        });
    }
    if server.cert_serial.as_deref() != Some(cert.serial_hex.as_str()) {
        return Err(Refusal::StaleCertificate {
            server: cert.server.clone(),
            serial: cert.serial_hex.clone(),
        });
    }
    Ok(lease)
}

/// Whether the agent of `cert` may have the key of `image`: [`admit`], then the image is the
/// lease's (in the LM's view and in the record) and the request came from the tunnel address
/// registered for this server.
pub fn admit_key(
    cert: &AgentCert,
    image: &ImageRef,
    source: IpAddr,
    registered: Option<Ipv4Addr>,
    f: &Facts<'_>,
) -> Result<(), Refusal> {
    let lease = admit(cert, f)?;
    let asked = image.to_string();
    let recorded = f
        .record
        .approved(cert.lease)
        .ok()
        .and_then(|l| l.image.clone());
    if lease.image.as_deref() != Some(asked.as_str()) || recorded.as_deref() != Some(asked.as_str())
    {
        return Err(Refusal::WrongImage {
            asked,
            leased: lease.image.clone(),
        });
    }
    let from_tunnel = match (source, registered) {
        (IpAddr::V4(s), Some(r)) => s == r,
        _ => false,
    };
    if !from_tunnel {
        return Err(Refusal::NotFromTunnel {
            source,
            expected: registered,
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "approval_tests.rs"]
mod tests;
