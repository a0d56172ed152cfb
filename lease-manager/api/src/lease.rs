//! Leases: what a tenant asks for, what it gets, and how a lease looks on the wire.

use serde::{Deserialize, Serialize};

use crate::{GatewaySpec, LeaseId, MacAddr, Name};

/// Most servers one lease request may ask for.
pub const MAX_COUNT: u32 = 1000;

/// The tunnel the agent builds to the tenant's firewall.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tunnel {
    #[default]
    Wireguard,
    Ipsec,
}

impl Tunnel {
    /// Short name for tables.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Wireguard => "wireguard",
            Self::Ipsec => "ipsec",
        }
    }
}

/// Body of `POST /v1/leases` (tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLease {
    /// How many servers, 1 to [`MAX_COUNT`].
    pub count: u32,
    /// How long the lease lasts from the moment it is granted, in seconds.
    pub duration_s: u64,
    /// Take fewer servers than `count` when not enough are idle (the answer says how many).
    #[serde(default)]
    pub allow_partial: bool,
    /// Wait for servers that are not idle yet (the answer says how many are queued).
    #[serde(default)]
    pub queue: bool,
    #[serde(default)]
    pub tunnel: Tunnel,
    /// Free label for the tenant's own bookkeeping (at most 64 bytes).
    #[serde(default)]
    pub role: Option<String>,
    /// The sealed image the servers will start (at most 128 bytes).
    #[serde(default)]
    pub image: Option<String>,
    /// The tenant's gateway: handed to the lease's agents in their enrollment answer.
    #[serde(default)]
    pub gateway: Option<GatewaySpec>,
}

/// Body of `POST /v1/leases/{id}/renew` (tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewLease {
    /// Seconds added to the lease's end.
    pub duration_s: u64,
}

/// Life cycle of a lease.
///
/// ```text
/// requested --servers assigned--> provisioning --all servers running--> active
///     |                               |                                   |
///     +----------- release / expiry --+-----------------------------------+--> releasing --> ended
///     +-- a server fails / nothing can be granted ------------------------------------------> failed
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseState {
    /// Accepted, waiting for servers (queued).
    Requested,
    /// Servers assigned and booting, enrolling, building tunnels, pulling the image.
    Provisioning,
    /// Every server runs the tenant's image.
    Active,
    /// Released or expired: servers are being wiped.
    Releasing,
    /// Over; every server was wiped and returned.
    Ended,
    /// Could not be fulfilled or a server failed; servers were returned.
    Failed,
}

impl LeaseState {
    /// Short name for tables and audit lines.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Provisioning => "provisioning",
            Self::Active => "active",
            Self::Releasing => "releasing",
            Self::Ended => "ended",
            Self::Failed => "failed",
        }
    }

    /// Whether the lease is over (nothing will change any more).
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Ended | Self::Failed)
    }
}

/// A server of a lease, as the lease shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseServer {
    pub name: String,
    pub mac: MacAddr,
    /// The server's state name (`waking`, `enrolling`, ...).
    pub state: String,
    /// Serial (hex) of the agent certificate issued for this lease, once enrolled.
    pub cert_serial: Option<String>,
}

/// A lease as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseView {
    pub id: LeaseId,
    pub tenant: Name,
    pub state: LeaseState,
    /// Why it ended or failed.
    pub reason: Option<String>,
    /// Servers asked for (after a partial grant: granted).
    pub count: u32,
    /// Servers still to be assigned (queued).
    pub waiting: u32,
    pub servers: Vec<LeaseServer>,
    pub tunnel: Tunnel,
    pub role: Option<String>,
    pub image: Option<String>,
    #[serde(default)]
    pub gateway: Option<GatewaySpec>,
    /// Unix ms: created, granted (start), end (expiry), and when it was over.
    pub created_ms: u64,
    pub starts_ms: u64,
    pub ends_ms: u64,
    pub ended_ms: Option<u64>,
    pub renewals: u32,
}

/// Answer to `POST /v1/leases`: the lease, and explicitly what was granted and what waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateLeaseResponse {
    pub lease: LeaseView,
    /// Servers assigned now.
    pub granted: u32,
    /// Servers queued (assigned as they become idle).
    pub queued: u32,
    /// Servers asked for but neither granted nor queued (partial grant without queueing).
    pub declined: u32,
    /// One sentence saying the above.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_lease_defaults_and_refusals() {
        let c: CreateLease = serde_json::from_str(r#"{"count":2,"duration_s":3600}"#).unwrap();
        assert_eq!(c.tunnel, Tunnel::Wireguard);
        assert!(!c.allow_partial && !c.queue && c.role.is_none());
        let err = serde_json::from_str::<CreateLease>(r#"{"count":2}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("duration_s"), "{err}");
        let err = serde_json::from_str::<CreateLease>(r#"{"count":2,"duration_s":1,"x":1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`x`"), "{err}");
        let err =
            serde_json::from_str::<CreateLease>(r#"{"count":-1,"duration_s":1}"#).unwrap_err();
        assert!(err.to_string().contains("-1"), "{err}");
    }

    #[test]
    fn lease_view_golden_json() {
        let v = LeaseView {
            id: LeaseId::from_random(1),
            tenant: "acme".parse().unwrap(),
            state: LeaseState::Provisioning,
            reason: None,
            count: 1,
            waiting: 0,
            servers: vec![LeaseServer {
                name: "vm1".into(),
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                state: "waking".into(),
                cert_serial: None,
            }],
            tunnel: Tunnel::Ipsec,
            role: None,
            image: None,
            gateway: None,
            created_ms: 1,
            starts_ms: 1,
            ends_ms: 3601,
            ended_ms: None,
            renewals: 0,
        };
        let j = serde_json::to_string(&v).unwrap();
        assert_eq!(
            j,
            r#"{"id":"l-0000000000000001","tenant":"acme","state":"provisioning","reason":null,"count":1,"waiting":0,"servers":[{"name":"vm1","mac":"02:00:00:00:00:01","state":"waking","cert_serial":null}],"tunnel":"ipsec","role":null,"image":null,"gateway":null,"created_ms":1,"starts_ms":1,"ends_ms":3601,"ended_ms":null,"renewals":0}"#
        );
        assert_eq!(serde_json::from_str::<LeaseView>(&j).unwrap(), v);
    }
}
