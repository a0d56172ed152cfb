//! The running tunnel: after [`establish`], a TUN device with the agent's inner address (/32,
//! fixed or assigned by the responder), routes for the responder's narrowed TSr, and
//! agent-esp's [`Endpoint`] on the same UDP 4500 socket IKE_AUTH used (IKE behind the marker
//! goes to a channel, ESP to the SA pair), run on its own thread until [`Tunnel::stop`] or
//! drop. Does IO, in the calling thread's network namespace.

use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use agent_esp::LifetimeLimits;
use agent_esp::io::{Counters, Endpoint, EndpointConfig, SaStatus, TunDevice};
use agent_ike::{
    ChildIds, DhGroup, Entropy, IkeSa, IkeSaConfig, RetransmitPolicy, TrafficSelector,
};
use wg_tunnel::Ipv4Net;
use wg_tunnel::ifconfig::{Ifconfig, netmask};

use crate::clock::Clock;
use crate::error::TunnelError;
use crate::establish::{Handshake, IkeConfig, IkeSaInfo, establish};
use crate::ike_life::{LifeStats, LinkState, Shared};
use crate::plan;

/// strongSwan's default IKE SA rekey time.
pub const DEFAULT_IKE_REKEY: Duration = Duration::from_secs(4 * 3600);

/// The established IKE SA's timers (see agent-ike's `IkeSa`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifeConfig {
    /// A liveness check after this long without a message from the peer.
    pub dpd_idle: Duration,
    /// Retransmission of our INFORMATIONAL/CREATE_CHILD_SA requests; when spent the peer is
    /// declared dead ([`LinkState::PeerDead`]).
    pub retransmit: RetransmitPolicy,
    /// How long a replaced inbound SA keeps accepting after its Delete.
    pub overlap: Duration,
    /// Rekey our IKE SA this long after it was set up (and after each rekey); `None`: never
    /// (the peer may still rekey it).
    pub ike_rekey: Option<Duration>,
}

impl Default for LifeConfig {
    /// strongSwan-like: a check after 30 s of silence, its retransmission schedule, the IKE
    /// SA rekeyed every 4 hours (strongSwan's default IKE rekey_time).
    fn default() -> Self {
        LifeConfig {
            dpd_idle: Duration::from_secs(30),
            retransmit: RetransmitPolicy::default(),
            overlap: Duration::from_secs(1),
            ike_rekey: Some(DEFAULT_IKE_REKEY),
        }
    }
}

/// A tunnel to set up.
#[derive(Debug)]
pub struct TunnelConfig {
    pub ike: IkeConfig,
    /// The TUN device's name (1..=15 bytes).
    pub tun_name: String,
    /// The TUN device's MTU: the underlay's minus 8 (UDP) + 20 (IPv4) + up to 41 (ESP with
    /// AES-GCM-16: SPI, sequence, IV, padding, trailer, ICV); 1400 on a 1500 underlay.
    pub mtu: u16,
    pub esp_limits: LifetimeLimits,
}

/// What was negotiated and installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelInfo {
    pub ike: IkeSaInfo,
    /// The TUN device's address: the fixed inner address or the one the responder assigned.
    pub inner: Ipv4Addr,
    pub handshake: Handshake,
    /// Our ESP SPI (the peer sends with it) and the peer's (we send with it).
    pub spi_in: u32,
    pub spi_out: u32,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    /// The routes installed into the TUN device.
    pub routes: Vec<Ipv4Net>,
}

/// An established tunnel; dropping it stops the endpoint and deletes the TUN device.
#[derive(Debug)]
pub struct Tunnel {
    info: TunnelInfo,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    status: Arc<Mutex<SaStatus>>,
    shared: Arc<Shared>,
    life: Option<JoinHandle<()>>,
    thread: Option<JoinHandle<Result<(), agent_esp::io::EndpointError>>>,
}

impl Tunnel {
    /// IKE_SA_INIT and IKE_AUTH with the responder, then the TUN device, its address and
    /// routes, the ESP endpoint on its own thread and the IKE SA's life (liveness checks,
    /// rekeying, deletes) on another, with [`LifeConfig::default`].
    pub fn up(
        cfg: TunnelConfig,
        clock: &dyn Clock,
        rng: &mut dyn Entropy,
    ) -> Result<Tunnel, TunnelError> {
        Tunnel::up_with(cfg, LifeConfig::default(), clock, rng)
    }

    /// [`Tunnel::up`] with the IKE SA's timers given.
    pub fn up_with(
        cfg: TunnelConfig,
        life: LifeConfig,
        clock: &dyn Clock,
        rng: &mut dyn Entropy,
    ) -> Result<Tunnel, TunnelError> {
        // Our IKE SA rekey's KE: the group we prefer (a peer that wants another says so).
        let group = cfg
            .ike
            .groups
            .first()
            .copied()
            .unwrap_or(DhGroup::Curve25519);
        let est = establish(cfg.ike, clock, rng)?;
        let inner = est.inner;
        let routes = plan::routes(&est.child.remote_ts)?;
        let (outbound, inbound) = plan::esp_sas(&est.child, cfg.esp_limits, clock.now())?;
        let tun = TunDevice::create(&cfg.tun_name)?;
        let ifc = Ifconfig::open()?;
        ifc.set_ipv4(&cfg.tun_name, inner, netmask(32))?;
        ifc.set_mtu(&cfg.tun_name, cfg.mtu)?;
        ifc.set_up(&cfg.tun_name)?;
        for r in &routes {
            ifc.add_route(&cfg.tun_name, *r, None)?;
        }
        let peer = est.transport.peer();
        let (ike_tx, ike_rx) = mpsc::channel();
        let sock = est.transport.into_nat_t_socket();
        let ike_sock = sock
            .try_clone()
            .map_err(|e| TunnelError::Endpoint(agent_esp::io::EndpointError::Socket(e)))?;
        let mut endpoint = Endpoint::new(
            sock,
            tun,
            EndpointConfig {
                peer,
                outbound,
                inbound,
            },
            Some(ike_tx),
        )?;
        let info = TunnelInfo {
            ike: est.ike,
            inner,
            handshake: est.handshake,
            spi_in: est.child.spi_in,
            spi_out: est.child.spi_out,
            local_ts: est.child.local_ts.clone(),
            remote_ts: est.child.remote_ts.clone(),
            routes,
        };
        let mut sa = IkeSa::new(
            info.ike.spi_i,
            info.ike.spi_r,
            est.keys,
            est.next_msg_id,
            ChildIds::of(&est.child),
            IkeSaConfig {
                dpd_idle: life.dpd_idle,
                retransmit: life.retransmit,
                nonce_len: 32,
            },
            clock.now(),
        );
        if let Some(every) = life.ike_rekey {
            sa = sa.with_ike_rekey(every, group);
        }
        // est.child (and its ChildKeys) drops here: zeroized; the SAs hold ring's keys.
        drop(est.child);
        tracing::info!(
            spi_in = format_args!("{:08x}", info.spi_in),
            spi_out = format_args!("{:08x}", info.spi_out),
            %peer,
            %inner,
            routes = ?info.routes,
            "IPsec tunnel up"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let counters = endpoint.counters();
        let status = endpoint.status();
        let shared = Arc::new(Shared {
            state: Mutex::new(LinkState::Up),
            stats: Mutex::new(LifeStats::default()),
        });
        let life = crate::ike_life::Life {
            sa,
            sock: ike_sock,
            peer,
            ike_rx,
            control: endpoint.control(),
            status: Arc::clone(&status),
            limits: cfg.esp_limits,
            overlap: life.overlap,
            shared: Arc::clone(&shared),
            stop: Arc::clone(&stop),
        };
        let flag = Arc::clone(&stop);
        let spawn_err = |e| TunnelError::Endpoint(agent_esp::io::EndpointError::Socket(e));
        let thread = std::thread::Builder::new()
            .name("agent-ipsec-esp".into())
            .spawn(move || endpoint.run(&flag))
            .map_err(spawn_err)?;
        let life = std::thread::Builder::new()
            .name("agent-ipsec-ike".into())
            .spawn(move || life.run())
            .map_err(spawn_err)?;
        Ok(Tunnel {
            info,
            stop,
            counters,
            status,
            shared,
            life: Some(life),
            thread: Some(thread),
        })
    }

    pub fn info(&self) -> &TunnelInfo {
        &self.info
    }

    /// The ESP endpoint's counters (live).
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// The SAs the ESP endpoint uses now (SPIs and packet counts).
    pub fn sa_status(&self) -> SaStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Up, or why the IKE SA ended (the endpoint stops then).
    pub fn state(&self) -> LinkState {
        self.shared
            .state
            .lock()
            .map(|s| s.clone())
            .unwrap_or(LinkState::Up)
    }

    /// What the IKE SA did since the tunnel came up (rekeys, answers, deletes).
    pub fn life_stats(&self) -> LifeStats {
        self.shared
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Stops the endpoint thread; its result (an IO error that ended it early, if any).
    pub fn stop(&mut self) -> Result<(), TunnelError> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(Err(_)) = self.life.take().map(JoinHandle::join) {
            tracing::error!("the IKE thread panicked");
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r.map_err(TunnelError::Endpoint),
            Some(Err(_)) => {
                tracing::error!("the ESP endpoint thread panicked");
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("ESP endpoint ended with: {e}");
        }
    }
}
