//! The agent's IPsec tunnel to the tenant gateway (an IPsec lease): agent-ipsec's IKEv2
//! initiator and userspace ESP on a TUN device with the one tunnel address the gateway
//! registered for this server, routes to the networks the gateway's IKE responder narrows
//! TSr to.
//!
//! Does IO (UDP 500/4500, TUN, routes). Trust: the IKE responder must present the gateway
//! certificate the lease pins (`GatewaySpec.tls_cert_sha256`, the same as for registration);
//! the agent authenticates with its LM-signed certificate. Fail closed like WireGuard: every
//! connection to the image store and the key service is bound to the TUN device, which exists
//! only while the child SA is installed; [`IpsecWay::ensure_up`] builds the tunnel (again,
//! after a break or a dead peer) before anything is fetched.

use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use agent_core::tunnel_plan::TunnelPlan;
use agent_esp::LifetimeLimits;
use agent_ike::{
    DhGroup, LocalCredential, PeerTrust, RetransmitPolicy, SystemEntropy, TrafficSelector,
};
use agent_ipsec::{IkeConfig, InnerAddress, LinkState, SystemClock, Tunnel, TunnelConfig};
use anyhow::{Context, anyhow};
use po_api::Ipv4Net;
use zeroize::Zeroizing;

/// The TUN device's name.
pub const DEVICE: &str = "lease-ipsec0";
/// Inner MTU on a 1500-byte segment: 20 (IPv4) + 8 (UDP) + ESP with AES-GCM-16 (8 header,
/// 8 IV, up to 3 padding + 2 trailer, 16 ICV) leave 1443; 1400 keeps a margin.
const MTU: u16 = 1400;

/// What one IKE exchange may take before it is retransmitted, and how often.
fn retransmit() -> RetransmitPolicy {
    RetransmitPolicy {
        initial: Duration::from_millis(500),
        factor_percent: 200,
        max: Duration::from_secs(4),
        tries: 4,
    }
}

/// The traffic selector of a network (all protocols and ports).
pub fn selector(net: &Ipv4Net) -> TrafficSelector {
    let start = u32::from(net.addr());
    let end = start | !net.mask();
    TrafficSelector::v4(start.to_be_bytes(), end.to_be_bytes())
}

/// The IKE configuration for `plan` from `local` (the agent's data-centre address).
fn ike_config(
    plan: &TunnelPlan,
    local: Ipv4Addr,
    credential: LocalCredential,
    pin: [u8; 32],
) -> IkeConfig {
    IkeConfig {
        local,
        peer: *plan.gateway_endpoint.ip(),
        groups: vec![DhGroup::Curve25519, DhGroup::Ecp256],
        credential,
        trust: PeerTrust::Pin(pin),
        peer_id: None,
        inner: InnerAddress::Fixed(plan.address),
        remote_ts: plan.routes.iter().map(selector).collect(),
        retransmit: retransmit(),
    }
}

/// The tunnel, built on demand and again after a break.
pub struct IpsecWay {
    plan: TunnelPlan,
    local: Ipv4Addr,
    pin: [u8; 32],
    credential: Credential,
    tunnel: Mutex<Option<Tunnel>>,
}

impl std::fmt::Debug for IpsecWay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpsecWay")
            .field("gateway", &self.plan.gateway_endpoint)
            .field("inner", &self.plan.address)
            .finish_non_exhaustive()
    }
}

/// The agent certificate and its key as the IKE credential, kept in RAM to build a new IKE
/// SA after a break (each establishment consumes a [`LocalCredential`]); the key's bytes are
/// zeroed on drop.
pub struct Credential {
    cert: Vec<u8>,
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(<agent certificate and key>)")
    }
}

impl Credential {
    /// `cert_der` with its P-256 key `key_pkcs8`; refused unless agent-ike accepts the pair.
    pub fn new(cert_der: Vec<u8>, key_pkcs8: Zeroizing<Vec<u8>>) -> anyhow::Result<Self> {
        let c = Self {
            cert: cert_der,
            key: key_pkcs8,
        };
        c.make()?;
        Ok(c)
    }

    fn make(&self) -> anyhow::Result<LocalCredential> {
        LocalCredential::new(&self.cert, &self.key)
            .context("the agent certificate and key as the IKE credential")
    }
}

impl IpsecWay {
    /// A way for `plan` (an IPsec plan) from `local`, trusting the responder whose certificate
    /// has SHA-256 `pin`. Nothing is sent until [`IpsecWay::ensure_up`].
    pub fn new(plan: TunnelPlan, local: Ipv4Addr, pin: [u8; 32], credential: Credential) -> Self {
        Self {
            plan,
            local,
            pin,
            credential,
            tunnel: Mutex::new(None),
        }
    }

    fn establish(&self) -> anyhow::Result<(Tunnel, Duration)> {
        let credential = self.credential.make()?;
        let cfg = TunnelConfig {
            ike: ike_config(&self.plan, self.local, credential, self.pin),
            tun_name: DEVICE.into(),
            mtu: MTU,
            esp_limits: LifetimeLimits::default(),
        };
        let started = Instant::now();
        let t = Tunnel::up(cfg, &SystemClock, &mut SystemEntropy::default())?;
        Ok((t, started.elapsed()))
    }

    /// Builds the tunnel unless it is up; returns how long that took (zero when it was up).
    pub fn ensure_up(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let mut slot = self
            .tunnel
            .lock()
            .map_err(|_| anyhow!("the IPsec tunnel's lock was poisoned"))?;
        if let Some(t) = slot.as_ref() {
            let sas = t.sa_status();
            match t.state() {
                // An IKE SA whose child SA expired or was deleted with no successor carries
                // nothing: it counts as down too (an SPI of 0: the endpoint has not published
                // its first status yet).
                LinkState::Up
                    if sas.outbound_spi == 0 || (!sas.expired && !sas.inbound.is_empty()) =>
                {
                    return Ok(Duration::ZERO);
                }
                gone => {
                    tracing::warn!(
                        ?gone,
                        expired = sas.expired,
                        inbound_sas = sas.inbound.len(),
                        "the IPsec tunnel is down; building it again"
                    );
                    *slot = None;
                }
            }
        }
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            match self.establish() {
                Ok((t, took)) => {
                    let info = t.info();
                    tracing::info!(
                        inner = %info.inner, spi_in = format_args!("{:08x}", info.spi_in),
                        spi_out = format_args!("{:08x}", info.spi_out),
                        sa_init_ms = info.handshake.sa_init.as_millis() as u64,
                        auth_ms = info.handshake.auth.as_millis() as u64,
                        "IPsec tunnel to the gateway up"
                    );
                    *slot = Some(t);
                    return Ok(took);
                }
                Err(e) => {
                    tracing::warn!("IPsec tunnel to {}: {e:#}", self.plan.gateway_endpoint);
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        Err(last
            .unwrap_or_else(|| anyhow!("no time left"))
            .context(format!(
                "no IPsec tunnel to the gateway at {} within {} s",
                self.plan.gateway_endpoint,
                timeout.as_secs()
            )))
    }

    /// One line for the phase report: SPIs, handshake times, the narrowed routes.
    pub fn describe(&self) -> String {
        let Ok(slot) = self.tunnel.lock() else {
            return "tunnel=?".into();
        };
        match slot.as_ref() {
            Some(t) => {
                let i = t.info();
                format!(
                    "ike_sa_init_ms={} ike_auth_ms={} spi_in={:08x} spi_out={:08x} routes={}",
                    i.handshake.sa_init.as_millis(),
                    i.handshake.auth.as_millis(),
                    i.spi_in,
                    i.spi_out,
                    i.routes
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                )
            }
            None => "tunnel=down".into(),
        }
    }

    /// Stops the tunnel (its IKE SA is not deleted: the gateway's dead-peer detection or
    /// the release clears it).
    pub fn shutdown(self) {
        if let Ok(mut slot) = self.tunnel.lock()
            && let Some(mut t) = slot.take()
            && let Err(e) = t.stop()
        {
            tracing::warn!("stopping the IPsec tunnel: {e}");
        }
    }
}

impl crate::transfer::Way for IpsecWay {
    fn ensure_up(&self, timeout: Duration) -> anyhow::Result<Duration> {
        IpsecWay::ensure_up(self, timeout)
    }

    /// After a break: a new IKE SA (a gateway that restarted has forgotten the old one).
    fn restart(&self) -> anyhow::Result<()> {
        let mut slot = self
            .tunnel
            .lock()
            .map_err(|_| anyhow!("the IPsec tunnel's lock was poisoned"))?;
        if let Some(mut t) = slot.take() {
            let _ = t.stop();
        }
        Ok(())
    }

    fn device(&self) -> Option<&str> {
        Some(DEVICE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_cover_exactly_the_network() {
        let s = selector(&"10.64.0.0/24".parse().unwrap());
        assert_eq!(s, TrafficSelector::v4([10, 64, 0, 0], [10, 64, 0, 255]));
        let s = selector(&"172.30.0.9/32".parse().unwrap());
        assert_eq!(s, TrafficSelector::v4([172, 30, 0, 9], [172, 30, 0, 9]));
        let s = selector(&"0.0.0.0/0".parse().unwrap());
        assert_eq!(s, TrafficSelector::v4([0; 4], [255; 4]));
    }
}
