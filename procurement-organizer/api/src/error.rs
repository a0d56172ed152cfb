//! The error body of every gateway service: a machine-readable code the agent acts on, and a
//! sentence for the logs.

use serde::{Deserialize, Serialize};

/// Why the gateway refused a request. The agent decides from the code whether to try again
/// ([`ErrorCode::is_transient`]) or to report the failure and stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The body did not parse (the message names the field).
    BadRequest,
    /// The certificate names no agent (a tenant or operator certificate, or no identity).
    NotAnAgent,
    /// The tenant never asked for this lease (not in the organizer's record).
    NotApproved,
    /// The Lease Manager does not know the lease, or it is another tenant's.
    UnknownLease,
    /// The lease is releasing, ended or failed (or not started yet).
    LeaseNotLive,
    /// The certificate names a server that is not in the lease.
    WrongServer,
    /// The certificate is on the Lease Manager's revocation list.
    Revoked,
    /// The certificate has expired.
    Expired,
    /// The key request names an image other than the one the lease names.
    WrongImage,
    /// No key for that image and epoch.
    NoSuchKey,
    /// The request did not come from the tunnel address registered for this certificate.
    NotFromTunnel,
    /// The tenant's policy requires a TPM-rooted start-up key and the server has none.
    WeakHostRoot,
    /// The lease asked for another tunnel than the request builds (a WireGuard registration
    /// for a lease that chose IPsec, or a gateway that runs the other tunnel), or the tenant's
    /// record and the Lease Manager disagree about the lease's tunnel.
    WrongTunnel,
    /// The tunnel network has no free address.
    NoAddress,
    /// The gateway cannot decide now (the Lease Manager or its revocation list is not
    /// reachable or too old); try again later.
    Unavailable,
    /// Something failed inside the gateway.
    Internal,
}

impl ErrorCode {
    /// The code as it is written on the wire and in logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::NotAnAgent => "not-an-agent",
            Self::NotApproved => "not-approved",
            Self::UnknownLease => "unknown-lease",
            Self::LeaseNotLive => "lease-not-live",
            Self::WrongServer => "wrong-server",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::WrongImage => "wrong-image",
            Self::NoSuchKey => "no-such-key",
            Self::NotFromTunnel => "not-from-tunnel",
            Self::WeakHostRoot => "weak-host-root",
            Self::WrongTunnel => "wrong-tunnel",
            Self::NoAddress => "no-address",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// Whether the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable | Self::Internal | Self::NoAddress)
    }

    /// The HTTP status the gateway answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::NotAnAgent
            | Self::NotApproved
            | Self::LeaseNotLive
            | Self::WrongServer
            | Self::Revoked
            | Self::Expired
            | Self::WrongImage
            | Self::NotFromTunnel
            | Self::WeakHostRoot
            | Self::WrongTunnel => 403,
            Self::UnknownLease | Self::NoSuchKey => 404,
            Self::NoAddress | Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

/// Body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// One sentence: what was refused and why.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_json() {
        let e = ErrorBody {
            code: ErrorCode::LeaseNotLive,
            error: "lease l-00000000000000aa is releasing".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"code":"lease-not-live","error":"lease l-00000000000000aa is releasing"}"#
        );
        for c in [
            ErrorCode::BadRequest,
            ErrorCode::NotAnAgent,
            ErrorCode::NotApproved,
            ErrorCode::UnknownLease,
            ErrorCode::LeaseNotLive,
            ErrorCode::WrongServer,
            ErrorCode::Revoked,
            ErrorCode::Expired,
            ErrorCode::WrongImage,
            ErrorCode::NoSuchKey,
            ErrorCode::NotFromTunnel,
            ErrorCode::WeakHostRoot,
            ErrorCode::WrongTunnel,
            ErrorCode::NoAddress,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ] {
            let j = serde_json::to_string(&c).unwrap();
            assert_eq!(j, format!("\"{}\"", c.as_str()));
            assert!((400..600).contains(&c.http_status()));
        }
        assert!(serde_json::from_str::<ErrorCode>("\"teapot\"").is_err());
        assert_eq!(
            serde_json::from_str::<ErrorCode>("\"wrong-tunnel\"").unwrap(),
            ErrorCode::WrongTunnel
        );
        assert_eq!(ErrorCode::WrongTunnel.http_status(), 403);
        assert!(!ErrorCode::WrongTunnel.is_transient());
    }
}
