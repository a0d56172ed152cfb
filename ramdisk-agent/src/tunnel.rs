//! The agent's WireGuard tunnel to the tenant gateway: a TUN device with the one tunnel address
//! the gateway gave, routes to the tenant's networks through it, and a [`wg_tunnel`] node with
//! the gateway as its single peer.
//!
//! Does IO (TUN device, routes, UDP). Fail closed: [`AgentTunnel::ensure_up`] waits for a
//! completed handshake with the gateway's key before anything goes to the image store or the
//! key service, and every such connection is bound to the TUN device (see
//! [`crate::sys::tcp_connect_on_device`]), so with the tunnel down there is no path at all.

use std::time::{Duration, Instant};

use agent_core::tunnel_plan::TunnelPlan;
use anyhow::Context;
use wg_tunnel::{Node, NodeConfig, NodeHandle, PeerConfig, PrivateKey, PublicKey, Tun};

/// The TUN device's name.
pub const DEVICE: &str = "lease-wg0";
/// WireGuard's inner MTU on a 1500-byte segment (IPv4 outer header).
const MTU: u16 = 1420;

/// The running tunnel; dropping it stops the node and removes the device.
pub struct AgentTunnel {
    node: Option<NodeHandle>,
    peer: PeerConfig,
    gateway: PublicKey,
}

impl std::fmt::Debug for AgentTunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentTunnel")
            .field("gateway", &self.gateway.to_base64())
            .field("endpoint", &self.peer.endpoint)
            .finish_non_exhaustive()
    }
}

impl AgentTunnel {
    /// Creates the device, its address and routes, and starts the node (it begins the
    /// handshake with the gateway at once). `key` is the private half of the key the agent
    /// registered.
    pub fn build(plan: &TunnelPlan, key: PrivateKey) -> anyhow::Result<Self> {
        let gateway = plan
            .gateway_key
            .context("the plan names no WireGuard key for the gateway (not a WireGuard lease)")?;
        let tun = Tun::create(DEVICE).with_context(|| format!("creating TUN device {DEVICE}"))?;
        tun.set_ipv4(plan.address, plan.network.prefix())
            .with_context(|| {
                format!(
                    "setting {}/{} on {DEVICE}",
                    plan.address,
                    plan.network.prefix()
                )
            })?;
        tun.set_mtu(MTU).context("setting the tunnel MTU")?;
        tun.up().with_context(|| format!("bringing {DEVICE} up"))?;
        for net in plan.routes.iter().filter(|n| **n != plan.network) {
            tun.add_route(net.addr(), net.prefix())
                .with_context(|| format!("routing {net} into the tunnel"))?;
        }
        let gateway = PublicKey::from_bytes(gateway.0);
        let peer = PeerConfig {
            public_key: gateway,
            endpoint: Some((*plan.gateway_endpoint.ip(), plan.gateway_endpoint.port()).into()),
            allowed_ips: plan.routes.iter().map(|n| (n.addr(), n.prefix())).collect(),
            persistent_keepalive: (plan.keepalive_secs > 0).then_some(plan.keepalive_secs),
        };
        let node = Node::spawn(NodeConfig {
            private_key: key,
            listen: "0.0.0.0:0".parse().context("the listen address")?,
            tun,
            peers: vec![peer.clone()],
        })
        .context("starting the WireGuard node")?;
        Ok(Self {
            node: Some(node),
            peer,
            gateway,
        })
    }

    fn node(&self) -> anyhow::Result<&NodeHandle> {
        self.node.as_ref().context("the tunnel was shut down")
    }

    /// Waits up to `timeout` for a completed handshake with the gateway; returns how long it
    /// took. An error means the tunnel is not up: nothing may be fetched.
    pub fn ensure_up(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.node()?
            .wait_handshake(&self.gateway, timeout)
            .with_context(|| {
                format!(
                    "no WireGuard handshake with the gateway at {} within {} s",
                    self.peer.endpoint.map_or("?".into(), |e| e.to_string()),
                    timeout.as_secs()
                )
            })?;
        Ok(started.elapsed())
    }

    /// Starts a fresh session with the gateway (after a broken transfer: a gateway that
    /// restarted has forgotten the old one, and waiting for WireGuard's own rekey timers
    /// would cost 15 s or more).
    pub fn restart_session(&self) -> anyhow::Result<()> {
        let node = self.node()?;
        node.remove_peer(&self.gateway)
            .context("removing the gateway peer")?;
        node.add_peer(self.peer.clone())
            .context("adding the gateway peer again")?;
        Ok(())
    }

    /// Stops the node; the TUN device goes with it.
    pub fn shutdown(mut self) {
        if let Some(node) = self.node.take()
            && let Err(e) = node.shutdown()
        {
            tracing::warn!("stopping the WireGuard node: {e}");
        }
    }
}

impl Drop for AgentTunnel {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            let _ = node.shutdown();
        }
    }
}

impl crate::transfer::Way for AgentTunnel {
    fn ensure_up(&self, timeout: Duration) -> anyhow::Result<Duration> {
        AgentTunnel::ensure_up(self, timeout)
    }

    fn restart(&self) -> anyhow::Result<()> {
        self.restart_session()
    }

    fn device(&self) -> Option<&str> {
        Some(DEVICE)
    }
}
