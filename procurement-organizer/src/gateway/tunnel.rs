//! The gateway's WireGuard node (`wg-tunnel`: boringtun over a TUN device) and its peer list
//! behind [`WgPeers`]. Creating the TUN device needs CAP_NET_ADMIN. IO.

use std::net::Ipv4Addr;

use anyhow::Context;
use po_api::WgPublicKey;
use wg_tunnel::{Node, NodeConfig, NodeHandle, PeerConfig, PrivateKey, PublicKey, Tun};

use super::source::WgPeers;
use crate::config::GatewayConfig;

/// MTU of the tunnel device (1500 minus WireGuard's 80 bytes of IPv6-sized overhead).
pub const TUNNEL_MTU: u16 = 1420;

/// The running node as the gateway's peer list.
#[derive(Debug)]
pub struct NodePeers {
    pub handle: NodeHandle,
}

impl WgPeers for NodePeers {
    fn add_peer(&self, key: &WgPublicKey, address: Ipv4Addr) -> Result<(), String> {
        self.handle
            .add_peer(PeerConfig {
                public_key: PublicKey::from_bytes(key.0),
                endpoint: None,
                allowed_ips: vec![(address, 32)],
                persistent_keepalive: None,
            })
            .map_err(|e| e.to_string())
    }

    fn remove_peer(&self, key: &WgPublicKey) -> Result<(), String> {
        self.handle
            .remove_peer(&PublicKey::from_bytes(key.0))
            .map_err(|e| e.to_string())
    }
}

/// Creates the TUN device (the gateway's tunnel address, the tunnel network routed to it),
/// and starts the node on the data-centre address with no peers.
pub fn start_node(cfg: &GatewayConfig, key: PrivateKey) -> anyhow::Result<NodeHandle> {
    let tun = Tun::create(&cfg.tun_name).with_context(|| {
        format!(
            "cannot create the TUN device {} (gateway.tun_name): the gateway needs CAP_NET_ADMIN and /dev/net/tun",
            cfg.tun_name
        )
    })?;
    tun.set_ipv4(cfg.tunnel_address, cfg.tunnel_network.prefix())
        .and_then(|()| tun.set_mtu(TUNNEL_MTU))
        .and_then(|()| tun.up())
        .with_context(|| format!("cannot configure the TUN device {}", cfg.tun_name))?;
    Node::spawn(NodeConfig {
        private_key: key,
        listen: cfg.wg_listen,
        tun,
        peers: Vec::new(),
    })
    .with_context(|| {
        format!(
            "cannot start WireGuard on {} (gateway.dc_address / gateway.wg_port)",
            cfg.wg_listen
        )
    })
}
