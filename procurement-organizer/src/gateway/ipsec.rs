//! The gateway in IPsec mode, IO: the strongSwan folder `<state>/gateway/ipsec/`, charon
//! (started by the gateway, or run by the operator), and the sync that keeps charon's
//! connections equal to the admitted agents.
//!
//! ```text
//! <state>/gateway/ipsec/
//!   swanctl.conf          rendered by swanctl.rs, replaced atomically
//!   x509/gateway.pem      the gateway's TLS certificate (agents pin its SHA-256)
//!   private/gateway.key   its key (0600)
//!   x509ca/lm-ca.pem      the pinned LM CA
//!   x509crl/lm.crl        the LM's CRL (DER), checked against the CA before it is written
//!   strongswan.conf       charon's settings, when the gateway starts charon
//!   charon.vici           charon's VICI socket, when the gateway starts charon
//! ```
//!
//! A sync: the LM's leases and the record give the admitted peers, the CRL is refreshed when
//! due, the text is rendered; when text or CRL changed, `swanctl --load-all` loads folder and
//! file (swanctl unloads connections no longer in the file), then the IKE SAs of every dropped
//! connection are terminated (`swanctl --terminate --ike <conn> --force`): unloading a
//! connection does not end its SAs. charon checks the CRL only at authentication, so when a new
//! CRL revokes a certificate the LM issued for a loaded connection's server, that connection's
//! IKE SAs are terminated too (after the CRL is loaded; [`super::revoked_sas`] decides).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::Mutex;

use super::identity::gateway_dir;
use super::revoked_sas::{self, SeenSerials};
use super::service::{Gateway, now_unix};
use super::swanctl::{self, CONN_PREFIX, SwanctlPlan};
use super::trust::PinnedCa;
use crate::config::{DEFAULT_VICI, GatewayConfig};
use crate::files;

/// The gateway certificate's subject (identity.rs makes it with this common name).
pub const GATEWAY_DN: &str = "CN=tenant gateway";
const CERT_FILE: &str = "gateway.pem";
const KEY_FILE: &str = "gateway.key";
const CA_FILE: &str = "lm-ca.pem";
const CRL_FILE: &str = "lm.crl";
/// Longest a swanctl call may take.
const SWANCTL_TIMEOUT: Duration = Duration::from_secs(20);

/// The strongSwan folder.
pub fn ipsec_dir(state_dir: &Path) -> PathBuf {
    gateway_dir(state_dir).join("ipsec")
}

/// The VICI URI the gateway talks to.
pub fn vici_uri(state_dir: &Path, cfg: &GatewayConfig) -> String {
    match (&cfg.ipsec.vici, &cfg.ipsec.charon) {
        (Some(v), _) => v.clone(),
        (None, Some(_)) => format!(
            "unix://{}",
            ipsec_dir(state_dir).join("charon.vici").display()
        ),
        (None, None) => DEFAULT_VICI.to_string(),
    }
}

/// The swanctl program and charon's socket.
#[derive(Debug, Clone)]
pub struct Swanctl {
    pub program: PathBuf,
    pub uri: String,
}

impl Swanctl {
    /// Runs swanctl with `args` and `--uri`; stdout on success, a sentence otherwise.
    pub fn run(&self, args: &[OsString]) -> Result<String, String> {
        let mut child = Command::new(&self.program)
            .args(args)
            .arg("--uri")
            .arg(&self.uri)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run {} (gateway.ipsec_swanctl): {e}",
                    self.program.display()
                )
            })?;
        let until = Instant::now() + SWANCTL_TIMEOUT;
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "swanctl {args:?} took longer than {SWANCTL_TIMEOUT:?}; is charon running at {}?",
                    self.uri
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("swanctl {args:?}: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "swanctl {args:?} failed ({}): {} {}",
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// `--load-all --file <conf>` (connections, credentials from the folders next to it,
    /// authorities, pools; connections not in the file are unloaded).
    pub fn load_all(&self, conf: &Path) -> Result<String, String> {
        self.run(&["--load-all".into(), "--file".into(), conf.into()])
    }

    /// `--flush-certs --type x509_crl`: drops the CRLs charon cached while it checked
    /// certificates. charon's revocation check takes the first valid CRL it finds, and a cached
    /// old one is found before the newer one `--load-all` brought, until it expires.
    pub fn flush_crls(&self) -> Result<String, String> {
        self.run(&["--flush-certs".into(), "--type".into(), "x509_crl".into()])
    }

    /// `--terminate --ike <conn> --force`.
    pub fn terminate(&self, conn: &str) -> Result<String, String> {
        self.run(&[
            "--terminate".into(),
            "--ike".into(),
            conn.into(),
            "--force".into(),
        ])
    }

    /// The names of the loaded connections (`--list-conns`).
    pub fn loaded_conns(&self) -> Result<BTreeSet<String>, String> {
        let out = self.run(&["--list-conns".into()])?;
        Ok(conn_names_of_listing(&out))
    }
}

/// The connection names in `swanctl --list-conns` output (lines that start in column 0).
pub fn conn_names_of_listing(out: &str) -> BTreeSet<String> {
    out.lines()
        .filter(|l| !l.starts_with(char::is_whitespace))
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_string()))
        .filter(|n| !n.is_empty())
        .collect()
}

/// charon started by the gateway: in a private mount namespace with its own `/run` (its PID
/// file is fixed at `/run/charon.pid`), with `STRONGSWAN_CONF` pointing into the strongSwan
/// folder; stopped by its PID on drop.
#[derive(Debug)]
pub struct Charon {
    child: Child,
}

impl Charon {
    /// Writes `strongswan.conf` (kernel-libipsec: ESP in userspace over the `ipsec0` TUN device,
    /// UDP-encapsulated) and starts `charon`, waiting until its VICI socket `socket` exists.
    pub fn start(charon: &Path, dir: &Path, socket: &Path) -> anyhow::Result<Self> {
        files::private_dir(dir)?;
        let conf = format!(
            "# Written by procurement-organizer's gateway (IPsec mode).\n\
             charon {{\n  load_modular = no\n  load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey \
             revocation constraints aes sha1 sha2 hmac gcm kdf kernel-libipsec kernel-netlink \
             socket-default vici\n  install_routes = yes\n  filelog {{ f {{ path = {log}\n    \
             time_format = %T\n    flush_line = yes\n    default = 1\n    ike = 1\n    cfg = 1\n  }} }}\n  \
             plugins {{ vici {{ socket = unix://{socket} }}\n    revocation {{ enable_ocsp = no }} }}\n}}\n",
            log = dir.join("charon.log").display(),
            socket = socket.display()
        );
        files::replace_private(&dir.join("strongswan.conf"), conf.as_bytes())?;
        let _ = std::fs::remove_file(socket);
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs none /run && exec \"$0\"")
            .arg(charon)
            .env("STRONGSWAN_CONF", dir.join("strongswan.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} (gateway.ipsec_charon) under unshare",
                    charon.display()
                )
            })?;
        let mut me = Self { child };
        let until = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if let Ok(Some(status)) = me.child.try_wait() {
                anyhow::bail!(
                    "charon ({}) stopped at start ({status}); see {}",
                    charon.display(),
                    dir.join("charon.log").display()
                );
            }
            if Instant::now() > until {
                anyhow::bail!(
                    "charon ({}) did not open {} within 10 s; see {}",
                    charon.display(),
                    socket.display(),
                    dir.join("charon.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::info!(pid = me.child.id(), socket = %socket.display(), "charon started");
        Ok(me)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Charon {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: signalling our own child by its PID.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let until = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every IPv4 address on this host's interfaces (in the gateway's network namespace).
pub fn local_ipv4_addresses() -> std::io::Result<Vec<std::net::Ipv4Addr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head that is freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, valid until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points at a sockaddr.
        if i32::from(unsafe { (*ifa.ifa_addr).sa_family }) != libc::AF_INET {
            continue;
        }
        // SAFETY: family AF_INET means the storage is a sockaddr_in.
        let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
        out.push(std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
    }
    // SAFETY: the list head from getifaddrs above, freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// Warns for each private network in which this host has no address (see
/// [`swanctl::networks_without_local_address`]).
pub fn warn_uncovered_networks(cfg: &GatewayConfig) {
    match local_ipv4_addresses() {
        Ok(local) => {
            for net in swanctl::networks_without_local_address(&cfg.private_networks, &local) {
                tracing::warn!(
                    network = %net,
                    "no address of this host is in private network {net}: kernel-libipsec cannot install the route to an agent for it, and charon will refuse every child SA that includes it (TS_UNACCEPTABLE); put an address of {net} on this host (the firewall's own address there)"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list this host's addresses"),
    }
}

/// Puts the gateway's tunnel address on `device` (kernel-libipsec's TUN device, `ipsec0`) as a
/// /32, so the private services can bind it (`ip -4 addr replace`).
pub fn add_tunnel_address(device: &str, addr: std::net::Ipv4Addr) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args([
            "-4",
            "addr",
            "replace",
            &format!("{addr}/32"),
            "dev",
            device,
        ])
        .output()
        .context("cannot run ip (iproute2)")?;
    if !out.status.success() {
        anyhow::bail!(
            "cannot put the tunnel address {addr} on {device} (gateway.tun_name; in IPsec mode kernel-libipsec's device, normally ipsec0): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The WireGuard side of a gateway in IPsec mode: there is none, registrations of WireGuard
/// peers are refused with this sentence.
#[derive(Debug)]
pub struct NoWireGuard;

impl super::source::WgPeers for NoWireGuard {
    fn add_peer(&self, _: &po_api::WgPublicKey, _: std::net::Ipv4Addr) -> Result<(), String> {
        Err("this gateway runs IPsec (gateway.tunnel = \"ipsec\"): agents build an IKEv2 tunnel with their LM certificate, not a WireGuard peer".into())
    }

    fn remove_peer(&self, _: &po_api::WgPublicKey) -> Result<(), String> {
        Ok(())
    }
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// The configuration (or CRL) changed and was loaded.
    pub loaded: bool,
    /// The connections now loaded.
    pub conns: BTreeSet<String>,
    /// Connections dropped (their IKE SAs terminated).
    pub dropped: Vec<String>,
    /// Peers left out because a name could not go into the file.
    pub refused: Vec<String>,
    /// Connections whose IKE SAs were terminated because the new CRL revokes a certificate
    /// the LM issued for their server.
    pub revoked: Vec<String>,
}

struct Loaded {
    text: String,
    conns: BTreeSet<String>,
    crl_fetched_unix: Option<i64>,
    crl: Option<Vec<u8>>,
    checked: Option<lm_pki::CheckedCrl>,
    seen: SeenSerials,
}

/// The gateway's strongSwan side.
pub struct IpsecGateway {
    pub swanctl: Swanctl,
    pub dir: PathBuf,
    base: SwanctlPlan,
    ca_der: Vec<u8>,
    loaded: Mutex<Option<Loaded>>,
}

impl std::fmt::Debug for IpsecGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpsecGateway")
            .field("dir", &self.dir)
            .field("uri", &self.swanctl.uri)
            .finish_non_exhaustive()
    }
}

impl IpsecGateway {
    /// Makes the strongSwan folder and writes the credential files: the gateway's certificate
    /// and key (copied from `<state>/gateway/tls-*.pem`) and the pinned LM CA.
    pub fn prepare(state_dir: &Path, cfg: &GatewayConfig, ca: &PinnedCa) -> anyhow::Result<Self> {
        let dir = ipsec_dir(state_dir);
        files::private_dir(&dir)?;
        for sub in ["x509", "private", "x509ca", "x509crl"] {
            files::private_dir(&dir.join(sub))?;
        }
        let gw = gateway_dir(state_dir);
        let copy = |from: &str, to: PathBuf| -> anyhow::Result<()> {
            let bytes = std::fs::read(gw.join(from))
                .with_context(|| format!("cannot read {}", gw.join(from).display()))?;
            files::replace_private(&to, &bytes)
        };
        copy("tls-cert.pem", dir.join("x509").join(CERT_FILE))?;
        copy("tls-key.pem", dir.join("private").join(KEY_FILE))?;
        files::replace_private(&dir.join("x509ca").join(CA_FILE), ca.pem.as_bytes())?;
        Ok(Self {
            swanctl: Swanctl {
                program: cfg.ipsec.swanctl.clone(),
                uri: vici_uri(state_dir, cfg),
            },
            dir,
            base: SwanctlPlan {
                local_id: GATEWAY_DN.into(),
                local_cert: CERT_FILE.into(),
                ca_cert: CA_FILE.into(),
                dc_address: cfg.dc_address,
                tunnel_network: cfg.tunnel_network,
                tunnel_address: cfg.tunnel_address,
                private_networks: cfg.private_networks.clone(),
                dpd_delay_secs: cfg.ipsec.dpd_secs,
                ike_rekey_secs: cfg.ipsec.ike_rekey_secs,
                child_rekey_secs: cfg.ipsec.child_rekey_secs,
                peers: Vec::new(),
            },
            ca_der: ca.der.to_vec(),
            loaded: Mutex::new(None),
        })
    }

    /// The rendered file's path.
    pub fn conf_path(&self) -> PathBuf {
        self.dir.join("swanctl.conf")
    }

    /// One sync for `gw`'s tenant, record and Lease Manager.
    pub async fn sync(&self, gw: &Gateway) -> Result<SyncReport, String> {
        let leases = gw.lm.leases().await?;
        let record = gw.record.load().map_err(|e| format!("{e:#}"))?;
        let now = now_unix();
        let mut plan = self.base.clone();
        let mut report = SyncReport::default();
        let registered = gw.peer_table().await;
        for mut p in swanctl::admitted_peers(&record, &leases, &gw.tenant) {
            // Only a registered agent gets a connection, with exactly its tunnel address: the
            // registration is where the tenant's policy (`require_tpm`) is applied, and an
            // agent without one could reach the private networks without being checked.
            p.address = registered
                .peers()
                .iter()
                .find(|r| r.lease.to_string() == p.lease && r.server.as_str() == p.server)
                .map(|r| r.address);
            if p.address.is_none() {
                continue;
            }
            match swanctl::check_peer(&plan, &p) {
                Ok(()) => plan.peers.push(p),
                Err(e) => {
                    tracing::error!(lease = %p.lease, error = %e, "agent left out of the strongSwan configuration");
                    report.refused.push(e.to_string());
                }
            }
        }
        let text = swanctl::render(&plan).map_err(|e| e.to_string())?;
        let conns = swanctl::conn_names(&plan);
        let mut loaded = self.loaded.lock().await;
        let first = loaded.is_none();
        let (crl_due, old_crl) = match loaded.as_ref() {
            None => (true, None),
            Some(l) => (
                l.crl_fetched_unix
                    .is_none_or(|t| now.saturating_sub(t) >= gw.cfg.crl_refresh_secs as i64),
                l.crl.clone(),
            ),
        };
        let mut crl = old_crl.clone();
        let old_checked = loaded.as_ref().and_then(|l| l.checked.clone());
        let mut checked = old_checked.clone();
        let mut crl_fetched = loaded.as_ref().and_then(|l| l.crl_fetched_unix);
        if crl_due {
            match gw.lm.crl().await {
                Ok(der) => match lm_pki::check_crl(&der, &self.ca_der) {
                    Ok(c) => {
                        crl = Some(der);
                        checked = Some(c);
                        crl_fetched = Some(now);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the LM's CRL was refused; strongSwan keeps the last one")
                    }
                },
                Err(e) => tracing::warn!(error = %e, "cannot fetch the LM's CRL for strongSwan"),
            }
        }
        let crl_changed = crl != old_crl;
        let text_changed = loaded.as_ref().is_none_or(|l| l.text != text);
        // Connections charon may still hold from before a restart of the gateway.
        let before: BTreeSet<String> = match loaded.as_ref() {
            Some(l) => l.conns.clone(),
            None => self
                .blocking(|s| s.loaded_conns())
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|n| n.starts_with(CONN_PREFIX))
                .collect(),
        };
        if text_changed || crl_changed || first {
            if crl_changed && let Some(der) = &crl {
                files::replace_private(&self.dir.join("x509crl").join(CRL_FILE), der)
                    .map_err(|e| format!("{e:#}"))?;
            }
            files::replace_private(&self.conf_path(), text.as_bytes())
                .map_err(|e| format!("{e:#}"))?;
            let conf = self.conf_path();
            self.blocking(move |s| s.load_all(&conf)).await?;
            if crl_changed && let Err(e) = self.blocking(|s| s.flush_crls()).await {
                tracing::warn!(error = %e, "cannot flush charon's cached CRLs: it may check certificates against the previous CRL until that expires");
            }
            report.loaded = true;
            tracing::info!(
                connections = conns.len(),
                crl_changed,
                "strongSwan configuration loaded"
            );
        }
        for gone in before.difference(&conns) {
            let name = gone.clone();
            match self.blocking(move |s| s.terminate(&name)).await {
                Ok(_) => {
                    tracing::info!(connection = %gone, "IPsec connection dropped, its SAs terminated")
                }
                Err(e) => {
                    tracing::info!(connection = %gone, detail = %e, "IPsec connection dropped (no SA to terminate)")
                }
            }
            report.dropped.push(gone.clone());
        }
        let mut seen = loaded.as_ref().map(|l| l.seen.clone()).unwrap_or_default();
        revoked_sas::remember(&mut seen, &conns, &leases);
        if crl_changed && let Some(new) = &checked {
            for conn in revoked_sas::to_terminate(&seen, old_checked.as_ref(), new) {
                let name = conn.clone();
                match self.blocking(move |s| s.terminate(&name)).await {
                    Ok(_) => tracing::warn!(
                        connection = %conn,
                        "the LM revoked a certificate of this IPsec connection's agent: its SAs terminated"
                    ),
                    Err(e) => tracing::info!(
                        connection = %conn, detail = %e,
                        "the LM revoked a certificate of this IPsec connection's agent (no SA to terminate)"
                    ),
                }
                report.revoked.push(conn);
            }
        }
        report.conns = conns.clone();
        *loaded = Some(Loaded {
            text,
            conns,
            crl_fetched_unix: crl_fetched,
            crl,
            checked,
            seen,
        });
        Ok(report)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Swanctl) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let s = self.swanctl.clone();
        tokio::task::spawn_blocking(move || f(&s))
            .await
            .map_err(|e| format!("swanctl task: {e}"))?
    }
}

/// The IPsec watcher: a sync every `lm_poll_secs`, and at once when a registration asks
/// (`Gateway::config_sync`), which it answers after the sync loaded.
pub async fn watch(ipsec: Arc<IpsecGateway>, gw: Arc<Gateway>) {
    let every = Duration::from_secs(gw.cfg.lm_poll_secs);
    loop {
        let upto = gw.config_sync.next(every).await;
        match ipsec.sync(&gw).await {
            Ok(_) => gw.config_sync.loaded(upto),
            Err(e) => tracing::warn!(error = %e, "cannot bring strongSwan up to date"),
        }
    }
}
