//! `gateway run`: wires the gateway together and serves until SIGINT/SIGTERM.
//!
//! ```text
//!  data-centre address (gateway.dc_address)      tunnel / private side
//!  :7443 registration (mTLS)  POST /v1/peers     <tunnel address>:7444 key service (mTLS) POST /v1/keys
//!  :51820/udp WireGuard ──── TUN po-wg0 ────────  <tunnel address>:8080 image store (HTTP, Range)
//!  watcher: polls GET /v1/leases every lm_poll_secs, the CRL every crl_refresh_secs
//! ```
//!
//! Start order: identity and pinned CA, first CRL, TUN device and WireGuard node, peers
//! restored from `peers.json`, then the listeners (the private ones bind the tunnel address,
//! which exists only once the TUN device has it, and the TUN device itself), then
//! `gateway ready`. IO.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lm_api::Name;
use lm_pki::Identity;
use tokio::net::TcpListener;

use super::http::{Store, key_router, register_router, store_router};
use super::identity::{GatewayIdentity, gateway_dir};
use super::ipsec::{Charon, IpsecGateway, NoWireGuard};
use super::service::{Gateway, GatewayParts, now_unix};
use super::source::LmSource;
use super::source::WgPeers;
use super::trust::{CrlCache, client_verifier, pin_ca};
use super::tunnel::{NodePeers, start_node};
use crate::config::{Config, TunnelMode};
use crate::images;
use crate::lm::{Lm, load_bundle};

/// The tenant a credential bundle speaks for.
pub fn tenant_of(bundle: &lm_api::CredentialBundle) -> anyhow::Result<Name> {
    match Identity::from_uri(&bundle.identity) {
        Ok(Identity::Tenant(n)) => Ok(n),
        Ok(other) => anyhow::bail!(
            "the credential bundle is for {other}, not for a tenant: use the bundle of `lease-manager tenant add`"
        ),
        Err(e) => anyhow::bail!("the credential bundle's identity: {e}"),
    }
}

async fn bind(addr: std::net::SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({key})"))
}

/// A listener for the private services: bound to `addr` and to the TUN device `device`
/// (SO_BINDTODEVICE), so it accepts only connections that came in through the tunnel. Linux
/// delivers a packet for any local address whatever interface it arrived on (the weak host
/// model): without the device binding, a host in the data centre with a route to the tunnel
/// network via the gateway's data-centre address would reach the image store and key service
/// in the clear.
fn bind_private(
    addr: std::net::SocketAddr,
    device: &str,
    key: &str,
) -> anyhow::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let listen = || -> std::io::Result<std::net::TcpListener> {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.bind_device(Some(device.as_bytes()))?;
        s.bind(&addr.into())?;
        s.listen(1024)?;
        s.set_nonblocking(true)?;
        Ok(s.into())
    };
    listen().and_then(TcpListener::from_std).with_context(|| {
        format!("cannot listen on {addr} bound to the TUN device {device} ({key})")
    })
}

/// A started gateway: its state and the tasks serving it (aborted on drop).
#[derive(Debug)]
pub struct Started {
    pub gw: Arc<Gateway>,
    pub cert_sha256: String,
    /// IPsec mode: the strongSwan side.
    pub ipsec: Option<Arc<IpsecGateway>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// IPsec mode: charon, when the gateway started it (stopped by PID on drop, after the tasks).
    charon: Option<Charon>,
}

impl Started {
    /// IPsec mode: the PID of the charon the gateway started.
    pub fn charon_pid(&self) -> Option<u32> {
        self.charon.as_ref().map(Charon::pid)
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Runs the gateway until a signal.
pub async fn run(cfg: &Config) -> anyhow::Result<()> {
    let bundle = load_bundle(&cfg.bundle)?;
    let tenant = tenant_of(&bundle)?;
    let lm: Arc<dyn LmSource> = Arc::new(Lm::new(&bundle, cfg.lm_url.as_deref())?);
    let started = start(cfg, lm, tenant, &bundle.ca_pem).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("gateway stopping");
    drop(started);
    Ok(())
}

/// Starts every part of the gateway for `tenant`, asking `lm`, trusting the LM CA `ca_pem`
/// (pinned on first use), in the calling thread's network namespace.
pub async fn start(
    cfg: &Config,
    lm: Arc<dyn LmSource>,
    tenant: Name,
    ca_pem: &str,
) -> anyhow::Result<Started> {
    let g = &cfg.gateway;
    let identity = GatewayIdentity::load_or_create(&cfg.state_dir, g)?;
    let signing = images::signing_key(&cfg.state_dir)?;
    let ca = pin_ca(&gateway_dir(&cfg.state_dir), ca_pem)?;
    let crl = CrlCache::new(&ca);
    if let Err(e) = crl.refresh(&*lm, now_unix()).await {
        tracing::warn!(error = %format!("{e:#}"), "no CRL yet: registrations and key requests are refused until one is fetched");
    }
    let tls = super::tls::server_config(
        identity.cert_der.clone(),
        identity.tls_key()?,
        client_verifier(&ca.der)?,
    )?;
    let wg_public = identity.wg_public_api();
    let cert_sha256 = identity.cert_sha256.clone();
    let GatewayIdentity { wg_private, .. } = identity;
    let (wg, ipsec, charon): (Arc<dyn WgPeers>, _, _) = match g.tunnel {
        TunnelMode::Wireguard => (
            Arc::new(NodePeers {
                handle: start_node(g, wg_private)?,
            }),
            None,
            None,
        ),
        TunnelMode::Ipsec => {
            drop(wg_private);
            let ipsec = IpsecGateway::prepare(&cfg.state_dir, g, &ca)?;
            let charon = match &g.ipsec.charon {
                Some(path) => {
                    let socket = ipsec.dir.join("charon.vici");
                    let expected = format!("unix://{}", socket.display());
                    if ipsec.swanctl.uri != expected {
                        anyhow::bail!(
                            "gateway.ipsec_vici names {} but the gateway starts charon with its socket at {expected}: leave ipsec_vici out, or set ipsec_charon = \"\" if you run charon yourself",
                            ipsec.swanctl.uri
                        );
                    }
                    Some(Charon::start(path, &ipsec.dir, &socket)?)
                }
                None => None,
            };
            super::ipsec::add_tunnel_address(&g.tun_name, g.tunnel_address)?;
            super::ipsec::warn_uncovered_networks(g);
            (
                Arc::new(NoWireGuard) as Arc<dyn WgPeers>,
                Some(Arc::new(ipsec)),
                charon,
            )
        }
    };
    let gw = Arc::new(Gateway::start(GatewayParts {
        cfg: g.clone(),
        tenant,
        lm,
        wg,
        wg_public,
        signing_key: images::signing_public(&signing),
        state_dir: cfg.state_dir.clone(),
        crl,
    })?);
    drop(signing);
    if let Some(ipsec) = &ipsec
        && let Err(e) = ipsec.sync(&gw).await
    {
        tracing::warn!(error = %e, "strongSwan not loaded yet; retried every lm_poll_secs");
    }
    let reg = bind(
        g.register_listen,
        "gateway.dc_address / gateway.register_port",
    )
    .await?;
    let keys = bind_private(
        g.key_service_listen,
        &g.tun_name,
        "gateway.key_service_listen",
    )?;
    let store = bind_private(
        g.image_store_listen,
        &g.tun_name,
        "gateway.image_store_listen",
    )?;
    let store_app = store_router(Store {
        dir: images::store_dir(&cfg.state_dir),
        gw: gw.clone(),
    })
    .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let mut tasks = vec![
        tokio::spawn(super::tls::serve(
            reg,
            tls.clone(),
            register_router(gw.clone()),
            "register",
        )),
        tokio::spawn(super::tls::serve(keys, tls, key_router(gw.clone()), "keys")),
        tokio::spawn(async move {
            if let Err(e) = axum::serve(store, store_app).await {
                tracing::error!(error = %e, "the image store stopped");
            }
        }),
        tokio::spawn(watch(gw.clone())),
    ];
    if let Some(ipsec) = &ipsec {
        tasks.push(tokio::spawn(super::ipsec::watch(ipsec.clone(), gw.clone())));
    }
    tracing::info!(
        register = %g.register_listen, wireguard = %g.wg_listen, tun = %g.tun_name,
        tunnel_address = %g.tunnel_address, key_service = %g.key_service_listen,
        image_store = %g.image_store_listen, tls_cert_sha256 = %cert_sha256,
        wg_public_key = %wg_public, "gateway ready"
    );
    Ok(Started {
        gw,
        cert_sha256,
        ipsec,
        tasks,
        charon,
    })
}

/// The watcher: removes the peers of leases that are over, and keeps the CRL fresh.
pub async fn watch(gw: Arc<Gateway>) {
    let poll = Duration::from_secs(gw.cfg.lm_poll_secs);
    let crl_every = gw.cfg.crl_refresh_secs as i64;
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = gw.sweep().await {
            tracing::warn!(error = %e, "cannot follow the Lease Manager's leases");
        }
        let now = now_unix();
        let stale = gw
            .crl
            .current()
            .is_none_or(|c| now.saturating_sub(c.fetched_unix) >= crl_every);
        if stale && let Err(e) = gw.crl.refresh(&*gw.lm, now).await {
            tracing::warn!(error = %format!("{e:#}"), "CRL refresh failed");
        }
    }
}
