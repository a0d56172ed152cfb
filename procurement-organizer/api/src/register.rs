//! Peer registration: the agent registers over mutual TLS with its LM-signed certificate (which
//! names its lease and server) - with its WireGuard public key for a WireGuard lease, without
//! one for an IPsec lease (the certificate itself is the IKE credential); the gateway answers
//! with the agent's single tunnel address and everything needed to build the tunnel and use
//! the services behind it.

use std::net::Ipv4Addr;

use lm_api::{LeaseId, Name};
use serde::{Deserialize, Serialize};

use crate::{ImageSigningKey, Ipv4Net, WgPublicKey};

/// Body of `POST /v1/peers` (agent -> registration service on the data-centre segment).
/// Registering again with the same certificate replaces the key and keeps the address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterPeer {
    /// The agent's WireGuard public key (its private key stays in the agent's RAM); absent for
    /// an IPsec lease, where the agent authenticates IKE with its LM certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wg_public_key: Option<WgPublicKey>,
    /// The root the server's start-up key will be bound to; absent (an older agent) counts as
    /// weak. A gateway with `require_tpm` refuses anything but `tpm` (`weak-host-root`). The
    /// agent's word, as trustworthy as the LM-certified agent itself (no attestation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_root: Option<HostRoot>,
}

/// Where a server's host root of trust comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostRoot {
    /// A key sealed to the server's TPM 2.0.
    Tpm,
    /// Derived from the server's identity (SMBIOS, MACs, disk serials): binds the image to the
    /// host, not to a secret.
    Weak,
}

impl HostRoot {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tpm => "tpm",
            Self::Weak => "weak",
        }
    }
}

/// Answer to a registration: the peer is added on the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerRegistered {
    /// From the agent's certificate, echoed.
    pub lease: LeaseId,
    pub server: Name,
    /// The agent's one address inside the tunnel (a /32: the gateway admits nothing else
    /// from this peer).
    pub tunnel_address: Ipv4Addr,
    /// The tunnel network (the gateway's and every agent's tunnel address are in it).
    pub tunnel_network: Ipv4Net,
    /// The gateway's own address in the tunnel.
    pub gateway_tunnel_address: Ipv4Addr,
    /// The gateway's WireGuard public key: must equal `GatewaySpec.wg_public_key` from the
    /// enrollment answer (WireGuard gateways).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_wg_public_key: Option<WgPublicKey>,
    /// Where the gateway's WireGuard listens, `host:port` (WireGuard gateways).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_wg_endpoint: Option<String>,
    /// Where the gateway's IKEv2 responder listens, `A.B.C.D:500` (IPsec gateways). The agent
    /// authenticates it by the same pinned certificate as this TLS service, and must propose
    /// exactly `tunnel_address` as its inner address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_ike_endpoint: Option<String>,
    /// Networks the agent routes into the tunnel (allowed IPs of the gateway peer): the
    /// tunnel network and the tenant's private networks.
    pub routes: Vec<Ipv4Net>,
    /// The image store, reachable through the tunnel only (`http://addr:port`); paths in
    /// [`crate::paths`].
    pub image_store_url: String,
    /// The key service, reachable through the tunnel only (`https://addr:port`, mutual TLS
    /// with the agent certificate, the gateway certificate pinned as for registration).
    pub key_service_url: String,
    /// Seconds between WireGuard keepalives the agent should send (0: none).
    pub keepalive_secs: u16,
    /// The tenant's image-signing public key: the agent refuses any manifest that does not
    /// verify under it. It reaches the agent over this pinned TLS connection.
    pub image_signing_key: ImageSigningKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> PeerRegistered {
        PeerRegistered {
            lease: LeaseId::from_random(0xaa),
            server: "vm1".parse().unwrap(),
            tunnel_address: Ipv4Addr::new(10, 99, 0, 2),
            tunnel_network: "10.99.0.0/24".parse().unwrap(),
            gateway_tunnel_address: Ipv4Addr::new(10, 99, 0, 1),
            gateway_wg_public_key: Some(WgPublicKey([1; 32])),
            gateway_wg_endpoint: Some("10.77.0.2:51820".into()),
            gateway_ike_endpoint: None,
            routes: vec![
                "10.99.0.0/24".parse().unwrap(),
                "172.30.0.0/24".parse().unwrap(),
            ],
            image_store_url: "http://10.99.0.1:8080".into(),
            key_service_url: "https://10.99.0.1:7444".into(),
            keepalive_secs: 15,
            image_signing_key: ImageSigningKey([0xc3; 32]),
        }
    }

    #[test]
    fn register_golden_json() {
        let r = RegisterPeer {
            wg_public_key: Some(WgPublicKey([0; 32])),
            host_root: None,
        };
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(
            j,
            r#"{"wg_public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#
        );
        assert_eq!(serde_json::from_str::<RegisterPeer>(&j).unwrap(), r);
        let t = RegisterPeer {
            host_root: Some(HostRoot::Tpm),
            ..r
        };
        let j = serde_json::to_string(&t).unwrap();
        assert!(j.ends_with(r#","host_root":"tpm"}"#), "{j}");
        assert_eq!(serde_json::from_str::<RegisterPeer>(&j).unwrap(), t);
        assert!(serde_json::from_str::<RegisterPeer>(&j.replace("\"tpm\"", "\"tmp\"")).is_err());
        // An IPsec registration: no key at all.
        let ipsec = RegisterPeer {
            wg_public_key: None,
            host_root: Some(HostRoot::Weak),
        };
        let j = serde_json::to_string(&ipsec).unwrap();
        assert_eq!(j, r#"{"host_root":"weak"}"#);
        assert_eq!(serde_json::from_str::<RegisterPeer>(&j).unwrap(), ipsec);
    }

    #[test]
    fn registered_ipsec_golden_json() {
        let r = PeerRegistered {
            gateway_wg_public_key: None,
            gateway_wg_endpoint: None,
            gateway_ike_endpoint: Some("10.77.0.2:500".into()),
            keepalive_secs: 0,
            ..sample()
        };
        let j = serde_json::to_string(&r).unwrap();
        assert!(!j.contains("gateway_wg"), "{j}");
        assert!(
            j.contains(r#""gateway_ike_endpoint":"10.77.0.2:500""#),
            "{j}"
        );
        assert_eq!(
            crate::parse_body::<PeerRegistered>(j.as_bytes()).unwrap(),
            r
        );
    }

    #[test]
    fn registered_golden_json() {
        let j = serde_json::to_string(&sample()).unwrap();
        assert_eq!(
            j,
            r#"{"lease":"l-00000000000000aa","server":"vm1","tunnel_address":"10.99.0.2","tunnel_network":"10.99.0.0/24","gateway_tunnel_address":"10.99.0.1","gateway_wg_public_key":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=","gateway_wg_endpoint":"10.77.0.2:51820","routes":["10.99.0.0/24","172.30.0.0/24"],"image_store_url":"http://10.99.0.1:8080","key_service_url":"https://10.99.0.1:7444","keepalive_secs":15,"image_signing_key":"c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"}"#
        );
        assert_eq!(
            crate::parse_body::<PeerRegistered>(j.as_bytes()).unwrap(),
            sample()
        );
        let bad = j.replace("10.99.0.0/24\",\"gateway", "10.99.0.1/24\",\"gateway");
        let e = crate::parse_body::<PeerRegistered>(bad.as_bytes()).unwrap_err();
        assert!(e.message.contains("tunnel_network"), "{e}");
        let bad = j.replace("\"vm1\"", "\"vm 1\"");
        let e = crate::parse_body::<PeerRegistered>(bad.as_bytes()).unwrap_err();
        assert!(e.message.contains("server"), "{e}");
    }
}
