//! `lease-manager serve`: wires the inventory, the PXE services, the APIs and the wake
//! supervisor together, and runs until SIGINT/SIGTERM. Prints `lease-manager ready` (with the
//! addresses) once every listener is bound, which the lab and operators' scripts wait for.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use pxe::dhcp::{DhcpConfig, DhcpServer};
use pxe::http_boot::{BootHttp, BootHttpConfig};
use pxe::tftp::{TftpOptions, TftpService};
use pxe::{BootDirectory, EventSink};
use tokio::net::{TcpListener, UnixListener};

use crate::api::{self, Api, LocalOperator, Settings};
use crate::ca::Ca;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::dhcp_store::SledLeaseStore;
use crate::events::{self, EventQueue};
use crate::inventory::{Inventory, InventoryError};
use crate::ledger::{Effect, leases};
use crate::power::{self, PowerDriver, WakeOnLan};
use crate::store::Store;
use crate::{boot_http, tls_server, wake};

/// Runs the daemon until a termination signal.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    raise_nofile();
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("creating state_dir {}", cfg.state_dir.display()))?;
    std::fs::set_permissions(&cfg.state_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting state_dir {}", cfg.state_dir.display()))?;
    let store = Store::open(&cfg.state_dir.join("db"))?;
    let inventory = Arc::new(Inventory::load(store.clone(), Arc::new(SystemClock))?);
    inventory.set_token_ttl(cfg.leases.token_ttl_s);

    let (ca, created) =
        Ca::load_or_create(&cfg.state_dir.join("ca"), SystemTime::now(), rand::random())?;
    if created {
        tracing::info!(path = %ca.cert_path().display(), "created the Lease Manager CA");
    }
    let leaf = ca.issue_server(
        std::slice::from_ref(&cfg.api_host),
        SystemTime::now(),
        rand::random(),
    )?;
    let ca = Arc::new(ca);
    let tls = tls_server::server_config(leaf, ca.cert_der())?;

    power::check_interface(&cfg.interface)?;
    let power: Arc<dyn PowerDriver> = Arc::new(WakeOnLan::new(
        cfg.interface.clone(),
        cfg.wake.methods.clone(),
    ));

    let (queue, rx) = EventQueue::new();
    tokio::spawn(events::run(inventory.clone(), rx));
    let sink: Arc<dyn EventSink> = Arc::new(queue);
    let directory: Arc<dyn BootDirectory> = inventory.clone();

    // DHCP
    let dhcp_cfg = DhcpConfig::from_section(&cfg.dhcp)?;
    let dhcp = DhcpServer::bind(
        dhcp_cfg,
        Arc::new(SledLeaseStore::new(store.clone())),
        directory.clone(),
        sink.clone(),
    )?;
    let lookup = dhcp.lookup();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut dhcp_stop = stop_rx.clone();
    let dhcp_task = tokio::spawn(dhcp.run(async move {
        let _ = dhcp_stop.changed().await;
    }));

    // TFTP
    let tftp = TftpService::bind(
        cfg.tftp_listen,
        &cfg.tftp_root,
        TftpOptions::default(),
        sink.clone(),
        Arc::new(move |ip| lookup.mac_for(ip)),
    )
    .await?;
    let tftp_thread = tftp.serve_on_thread().context("starting the TFTP thread")?;
    std::thread::spawn(move || {
        if let Ok(Err(e)) = tftp_thread.join() {
            tracing::error!(error = %e, "TFTP server stopped");
        }
    });

    // HTTP boot
    let boot = BootHttp::new(
        BootHttpConfig {
            kernel: cfg.kernel.clone(),
            initrd: cfg.initrd.clone(),
            http_host: format!("{}:{}", cfg.address, cfg.http_listen.port()),
            api_url: cfg.api_url.clone(),
            cmdline_base: cfg.cmdline.clone(),
        },
        directory.clone(),
        sink.clone(),
    )?;
    let (klen, ilen) = boot.check_artifacts()?;
    tracing::info!(kernel = %cfg.kernel.display(), kernel_bytes = klen, initrd = %cfg.initrd.display(), initrd_bytes = ilen, "boot artifacts");
    let http = listen(cfg.http_listen)
        .with_context(|| format!("binding HTTP boot on {}", cfg.http_listen))?;
    let http_router = boot_http::router(Arc::new(boot));
    tokio::spawn(async move {
        let svc = http_router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(http, svc).await {
            tracing::error!(error = %e, "HTTP boot server stopped");
        }
    });

    // The API: HTTPS with mutual TLS for agents, tenants and operators, and the local admin
    // socket (mode 0600) for the operator on this machine. One router, one set of rules.
    let api_state = Arc::new(Api {
        inventory: inventory.clone(),
        power: power.clone(),
        wake: cfg.wake.clone(),
        ca: ca.clone(),
        settings: Settings {
            api_url: cfg.api_url.clone(),
            heartbeat_secs: cfg.heartbeat_secs,
            limits: cfg.leases.limits,
            agent_cert_max_s: cfg.leases.agent_cert_max_s,
            tenant_cert_days: cfg.leases.tenant_cert_days,
        },
    });
    let router = api::router(api_state);
    let listener =
        listen(cfg.api_listen).with_context(|| format!("binding the API on {}", cfg.api_listen))?;
    tokio::spawn(tls_server::serve(listener, tls, router.clone()));

    let sock_path = cfg.admin_socket();
    let _ = std::fs::remove_file(&sock_path);
    let admin = UnixListener::bind(&sock_path)
        .with_context(|| format!("binding the admin socket {}", sock_path.display()))?;
    std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o600))?;
    let local = router.layer(axum::Extension(LocalOperator));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(admin, local).await {
            tracing::error!(error = %e, "admin socket stopped");
        }
    });

    // Effects of committed transactions: wakes for lease servers; a power cycle for a released
    // server whose agent started the tenant OS (no agent hears that release).
    let mut effects = inventory.take_effects();
    let (inv_e, power_e, policy_e) = (inventory.clone(), power.clone(), cfg.wake.clone());
    let cycle = Arc::new(power::PowerCycle::new(cfg.cycle_command.clone()));
    tokio::spawn(async move {
        while let Some(eff) = effects.recv().await {
            match eff {
                Effect::Wake { mac, boot_id } => {
                    tokio::spawn(wake::supervise(
                        inv_e.clone(),
                        power_e.clone(),
                        policy_e.clone(),
                        mac,
                        boot_id,
                        1,
                    ));
                }
                Effect::ServerChanged {
                    mac,
                    state: lm_api::ServerState::Releasing { boot_id: Some(_) },
                } => {
                    let Some(target) = inv_e.needs_power_cycle(mac) else {
                        continue;
                    };
                    let (inv, cycle) = (inv_e.clone(), cycle.clone());
                    tokio::task::spawn_blocking(move || {
                        let r = cycle.cycle(&target).map_err(|e| e.to_string());
                        match &r {
                            Ok(()) => {
                                tracing::info!(server = %target.name, mac = %target.mac, "power-cycled a released server running its tenant OS")
                            }
                            Err(e) => {
                                tracing::error!(server = %target.name, mac = %target.mac, error = %e, "power cycle failed")
                            }
                        }
                        if let Err(e) = inv.audit_power_cycle(target.mac, r) {
                            tracing::error!(error = %e, "cannot audit the power cycle");
                        }
                    });
                }
                _ => {}
            }
        }
    });

    // Lease clock: expiries and release time-outs, once a second.
    let (inv_t, release_timeout_s) = (inventory.clone(), cfg.leases.release_timeout_s);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let inv = inv_t.clone();
            let r = tokio::task::spawn_blocking(move || {
                inv.transact("lm", |w| -> Result<(), InventoryError> {
                    leases::expire_due(w)?;
                    leases::release_timeouts(w, release_timeout_s)?;
                    Ok(())
                })
            })
            .await;
            if let Ok(Err(e)) = r {
                tracing::error!(error = %e, "lease clock");
            }
        }
    });

    wake::resume(&inventory, &power, &cfg.wake);

    // The timeline is appended without a flush per event; make it durable every second.
    let flusher = inventory.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let inv = flusher.clone();
            let _ = tokio::task::spawn_blocking(move || inv.flush()).await;
        }
    });

    tracing::info!(
        api = %cfg.api_url, http = %cfg.http_listen, tftp = %cfg.tftp_listen,
        admin = %sock_path.display(), interface = %cfg.interface,
        "lease-manager ready"
    );

    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), dhcp_task).await;
    inventory.flush()?;
    let _ = std::fs::remove_file(&sock_path);
    Ok(())
}

/// Connections a listener queues before it accepts them. `TcpListener::bind` asks for 128
/// (mio copies std): when a fleet wakes or enrolls at once, the 129th SYN overflows the accept
/// queue, the kernel drops it and that agent's connect waits for its SYN retransmission, one
/// second later (the fleet benchmark's 1,000 agents saw ~1,100 of them and a p99 of 1.1 s).
/// The kernel caps this at `net.core.somaxconn` (4096 by default).
const ACCEPT_BACKLOG: u32 = 4096;

/// A TCP listener on `addr` with [`ACCEPT_BACKLOG`] (and `SO_REUSEADDR`, as `bind` sets).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// One socket per connected agent, tenant and operator: lift the soft descriptor limit to the
/// hard one (the default soft limit of 1024 would cap the fleet well below a rack room).
fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            let soft = r.rlim_cur;
            r.rlim_cur = r.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) == 0 {
                tracing::debug!(from = soft, to = r.rlim_max, "raised the open-file limit");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 600 clients connect at once to a listener that accepts none of them yet: each is
    /// queued at once. With `TcpListener::bind`'s backlog of 128 the others' SYNs are dropped
    /// and their connects wait for a retransmission a second later.
    #[tokio::test]
    async fn a_burst_of_connects_is_queued_without_retransmissions() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let connects: Vec<_> = (0..600)
            .map(|_| tokio::spawn(tokio::net::TcpStream::connect(addr)))
            .collect();
        let all = async {
            let mut streams = Vec::new();
            for c in connects {
                streams.push(c.await.unwrap().unwrap());
            }
            streams
        };
        let streams = tokio::time::timeout(Duration::from_millis(800), all)
            .await
            .expect("every connect queued without a SYN retransmission");
        assert_eq!(streams.len(), 600);
        drop(listener);
    }
}
