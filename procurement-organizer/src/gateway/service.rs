//! The gateway's decisions with their effects, independent of HTTP: gather the facts (record,
//! CRL, the LM's view of the lease), decide ([`super::approval`]), then act in the order
//! persist -> WireGuard -> answer. Every release and refusal is logged with the lease, server,
//! image and reason; key material never is.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use lm_api::{LeaseState, LeaseView, Name, Tunnel};
use lm_pki::PeerCert;
use po_api::{
    ErrorCode, ImageKeyB64, ImageRef, ImageSigningKey, KeyAnswer, KeyRequest, PeerRegistered,
    RegisterPeer, WgPublicKey,
};
use tokio::sync::Mutex;

use super::approval::{self, AgentCert, CrlState, Facts, Refusal};
use super::config_sync::ConfigSync;
use super::peers::{PeerError, PeerTable};
use super::source::{LmSource, WgPeers};
use super::trust::CrlCache;
use crate::config::{GatewayConfig, TunnelMode};
use crate::keystore::{KeyStore, KeyStoreError};
use crate::record::{Record, RecordFile};

/// A refused or failed request: the wire code and the sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub code: ErrorCode,
    /// The refusal's reason word for logs (finer than the code).
    pub reason: &'static str,
    pub message: String,
}

impl From<Refusal> for Denial {
    fn from(r: Refusal) -> Self {
        Self {
            code: r.code(),
            reason: r.reason(),
            message: r.to_string(),
        }
    }
}

fn internal(message: String) -> Denial {
    Denial {
        code: ErrorCode::Internal,
        reason: "internal",
        message,
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Everything the services share.
pub struct Gateway {
    pub cfg: GatewayConfig,
    /// This organizer's tenant (from its credential bundle's identity).
    pub tenant: Name,
    pub lm: Arc<dyn LmSource>,
    pub wg: Arc<dyn WgPeers>,
    pub wg_public: WgPublicKey,
    pub signing_key: ImageSigningKey,
    pub record: RecordFile,
    pub keys: KeyStore,
    pub crl: CrlCache,
    peers: Mutex<PeerTable>,
    state_dir: PathBuf,
    /// Registration to the IPsec watcher (unused at a WireGuard gateway).
    pub config_sync: ConfigSync,
}

/// How long an IPsec registration waits for strongSwan to load the agent's connection.
const CONFIG_LOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("tenant", &self.tenant)
            .field("wg_public", &self.wg_public)
            .finish_non_exhaustive()
    }
}

/// The parts a [`Gateway`] is made of.
#[allow(missing_debug_implementations)]
pub struct GatewayParts {
    pub cfg: GatewayConfig,
    pub tenant: Name,
    pub lm: Arc<dyn LmSource>,
    pub wg: Arc<dyn WgPeers>,
    pub wg_public: WgPublicKey,
    pub signing_key: ImageSigningKey,
    pub state_dir: PathBuf,
    pub crl: CrlCache,
}

impl Gateway {
    /// Loads the peer table (`<state>/gateway/peers.json`, or an empty one) and re-adds every
    /// peer to WireGuard.
    pub fn start(p: GatewayParts) -> anyhow::Result<Self> {
        let table = super::peers_file::load(&p.state_dir, &p.cfg)?;
        for peer in table.peers() {
            let Some(key) = &peer.wg_public_key else {
                continue;
            };
            p.wg.add_peer(key, peer.address).map_err(|e| {
                anyhow::anyhow!("re-adding peer {} of {}: {e}", peer.server, peer.lease)
            })?;
            tracing::info!(lease = %peer.lease, server = %peer.server, address = %peer.address, "peer restored");
        }
        Ok(Self {
            cfg: p.cfg,
            tenant: p.tenant,
            lm: p.lm,
            wg: p.wg,
            wg_public: p.wg_public,
            signing_key: p.signing_key,
            record: RecordFile::new(&p.state_dir),
            keys: KeyStore::new(&p.state_dir),
            crl: p.crl,
            peers: Mutex::new(table),
            state_dir: p.state_dir,
            config_sync: ConfigSync::default(),
        })
    }

    /// A copy of the peer table.
    pub async fn peer_table(&self) -> PeerTable {
        self.peers.lock().await.clone()
    }

    fn persist(&self, t: &PeerTable) -> Result<(), Denial> {
        super::peers_file::save(&self.state_dir, t).map_err(|e| internal(format!("{e:#}")))
    }

    /// Gathers the facts about `cert`'s lease and runs `decide` on them.
    async fn decide<T>(
        &self,
        cert: &AgentCert,
        decide: impl FnOnce(&Facts<'_>) -> Result<T, Refusal>,
    ) -> Result<T, Denial> {
        let now = now_unix();
        let record: Record = self.record.load().map_err(|e| internal(format!("{e:#}")))?;
        let crl: Option<CrlState> = self
            .crl
            .for_decision(&*self.lm, self.cfg.crl_refresh_secs as i64, now)
            .await;
        let lease: Option<LeaseView> = match self.lm.lease(cert.lease).await {
            Ok(v) => v,
            Err(detail) => {
                // What does not need the LM still decides (expired, revoked, unapproved).
                let f = Facts {
                    record: &record,
                    lease: None,
                    tenant: &self.tenant,
                    crl: crl.as_ref(),
                    crl_max_age_secs: self.cfg.crl_max_age_secs as i64,
                    now_unix: now,
                };
                approval::check_certificate(cert, &f)?;
                approval::check_record(cert, &record)?;
                return Err(Refusal::LmUnavailable { detail }.into());
            }
        };
        let f = Facts {
            record: &record,
            lease: lease.as_ref(),
            tenant: &self.tenant,
            crl: crl.as_ref(),
            crl_max_age_secs: self.cfg.crl_max_age_secs as i64,
            now_unix: now,
        };
        decide(&f).map_err(Denial::from)
    }

    /// The tunnel this gateway runs (`gateway.tunnel`).
    fn runs(&self) -> Tunnel {
        match self.cfg.tunnel {
            TunnelMode::Wireguard => Tunnel::Wireguard,
            TunnelMode::Ipsec => Tunnel::Ipsec,
        }
    }

    /// `POST /v1/peers`: admits the agent of `peer` (a lease that asked for this gateway's
    /// tunnel) and gives it its tunnel address: with a WireGuard key, adds its WireGuard peer;
    /// without one (IPsec), has strongSwan's configuration reloaded with a connection that
    /// admits exactly that address for this agent's certificate before answering.
    pub async fn register(
        &self,
        peer: &PeerCert,
        req: &RegisterPeer,
    ) -> Result<PeerRegistered, Denial> {
        let cert = approval::agent_of(peer).inspect_err(|r| refused("register", None, r))?;
        let runs = self.runs();
        let asked = match req.wg_public_key {
            Some(_) => Tunnel::Wireguard,
            None => Tunnel::Ipsec,
        };
        let decided = self
            .decide(&cert, |f| {
                approval::admit_registration(&cert, runs, asked, f).map(|_| ())
            })
            .await;
        if let Err(d) = &decided {
            log_denial("register", &cert, None, d);
        }
        decided?;
        if self.cfg.require_tpm && req.host_root != Some(po_api::HostRoot::Tpm) {
            let d = Denial {
                code: ErrorCode::WeakHostRoot,
                reason: "weak-host-root",
                message: format!(
                    "the tenant requires a TPM-rooted start-up key (gateway.require_tpm) and server {} has {}",
                    cert.server,
                    req.host_root
                        .map_or("no stated root (counted as weak)", |r| match r {
                            po_api::HostRoot::Tpm => "a TPM",
                            po_api::HostRoot::Weak => "only the weak root (no TPM)",
                        })
                ),
            };
            log_denial("register", &cert, None, &d);
            return Err(d);
        }
        let mut table = self.peers.lock().await;
        let mut next = table.clone();
        let reg = next
            .register(cert.lease, &cert.server, req.wg_public_key, now_ms())
            .map_err(|e| {
                let (code, reason) = match e {
                    PeerError::Full { .. } => (ErrorCode::NoAddress, "no-address"),
                    PeerError::KeyInUse { .. } => (ErrorCode::BadRequest, "key-in-use"),
                };
                let d = Denial {
                    code,
                    reason,
                    message: e.to_string(),
                };
                log_denial("register", &cert, None, &d);
                d
            })?;
        self.persist(&next)?;
        let applied = (|| {
            let Some(key) = &reg.entry.wg_public_key else {
                return Ok(());
            };
            if reg.unchanged {
                return Ok(());
            }
            if let Some(old) = reg.replaced {
                self.wg.remove_peer(&old)?;
            }
            self.wg.add_peer(key, reg.entry.address)
        })();
        if let Err(e) = applied {
            let _ = self.persist(&table);
            let d = internal(format!("cannot add the WireGuard peer: {e}"));
            log_denial("register", &cert, None, &d);
            return Err(d);
        }
        *table = next;
        drop(table);
        if asked == Tunnel::Ipsec
            && let Err(e) = self.config_sync.request_and_wait(CONFIG_LOAD_WAIT).await
        {
            // The peer stays registered; the agent's retry finds the connection loaded.
            let d = Denial {
                code: ErrorCode::Unavailable,
                reason: "ipsec-not-loaded",
                message: format!(
                    "registered with tunnel address {}, but strongSwan's configuration was not reloaded yet: {e}; retry",
                    reg.entry.address
                ),
            };
            log_denial("register", &cert, None, &d);
            return Err(d);
        }
        tracing::info!(
            lease = %cert.lease, server = %cert.server, address = %reg.entry.address,
            tunnel = asked.as_str(),
            wg_key = %reg.entry.wg_public_key.map_or("none".into(), |k| k.to_string()),
            replaced = reg.replaced.is_some(),
            "peer registered"
        );
        let wireguard = asked == Tunnel::Wireguard;
        Ok(PeerRegistered {
            lease: cert.lease,
            server: cert.server,
            tunnel_address: reg.entry.address,
            tunnel_network: self.cfg.tunnel_network,
            gateway_tunnel_address: self.cfg.tunnel_address,
            gateway_wg_public_key: wireguard.then_some(self.wg_public),
            gateway_wg_endpoint: wireguard.then(|| self.cfg.wg_endpoint.clone()),
            gateway_ike_endpoint: (!wireguard)
                .then(|| std::net::SocketAddrV4::new(self.cfg.dc_address, 500).to_string()),
            routes: self.cfg.routes(),
            image_store_url: self.cfg.image_store_url(),
            key_service_url: self.cfg.key_service_url(),
            keepalive_secs: self.cfg.keepalive_secs,
            image_signing_key: self.signing_key,
        })
    }

    /// `POST /v1/keys`: releases the key of (image, epoch) to the agent of `peer`, asking from
    /// `source`.
    pub async fn key(
        &self,
        peer: &PeerCert,
        req: &KeyRequest,
        source: IpAddr,
    ) -> Result<KeyAnswer, Denial> {
        let image = req.image.to_string();
        let cert = approval::agent_of(peer).inspect_err(|r| refused("key", Some(&image), r))?;
        let registered = self.peers.lock().await.address_of(cert.lease, &cert.server);
        let decided = self
            .decide(&cert, |f| {
                approval::admit_key(&cert, &req.image, source, registered, f)
            })
            .await;
        if let Err(d) = &decided {
            log_denial("key", &cert, Some(&image), d);
        }
        decided?;
        let key = self.keys.get(&req.image, req.epoch).map_err(|e| {
            let d = match e {
                KeyStoreError::Missing { .. } => Denial {
                    code: ErrorCode::NoSuchKey,
                    reason: "no-such-key",
                    message: e.to_string(),
                },
                KeyStoreError::Bad { .. } => internal(e.to_string()),
            };
            log_denial("key", &cert, Some(&image), &d);
            d
        })?;
        tracing::info!(
            lease = %cert.lease, server = %cert.server, image = %image, epoch = req.epoch,
            source = %source, "image key released"
        );
        Ok(KeyAnswer {
            image: req.image,
            epoch: req.epoch,
            key: ImageKeyB64::encode(&key),
        })
    }

    /// Whether the image store may serve `image` to `ip`: a registered tunnel address whose
    /// lease (approved in the record) names that image.
    pub async fn may_fetch(&self, ip: IpAddr, image: &ImageRef) -> Result<(), String> {
        let IpAddr::V4(v4) = ip else {
            return Err(format!("{ip} is not a tunnel address"));
        };
        let lease = {
            let table = self.peers.lock().await;
            table
                .peers()
                .iter()
                .find(|p| p.address == v4)
                .map(|p| p.lease)
                .ok_or_else(|| format!("{ip} is not the tunnel address of a registered peer"))?
        };
        let record = self.record.load().map_err(|e| format!("{e:#}"))?;
        let l = record
            .approved(lease)
            .map_err(|_| format!("lease {lease} is not approved by this organizer"))?;
        if l.image.as_deref() != Some(image.to_string().as_str()) {
            return Err(format!("lease {lease} does not name image {image}"));
        }
        Ok(())
    }

    /// One pass of the watcher: removes the peers of every lease that is over (the LM says
    /// releasing, ended or failed, or no longer lists it), that this organizer released, or
    /// whose server left the lease. Returns how many peers were removed.
    pub async fn sweep(&self) -> Result<usize, String> {
        let leases = self.lm.leases().await?;
        let record = self.record.load().map_err(|e| format!("{e:#}"))?;
        let mut table = self.peers.lock().await;
        let mut next = table.clone();
        let mut gone = Vec::new();
        for id in next.leases() {
            let view = leases.iter().find(|l| l.id == id);
            let why = match (view, record.approved(id)) {
                (_, Err(_)) => Some("released by this organizer".to_string()),
                (None, _) => Some("no longer listed by the Lease Manager".to_string()),
                (Some(v), _)
                    if matches!(
                        v.state,
                        LeaseState::Releasing | LeaseState::Ended | LeaseState::Failed
                    ) =>
                {
                    Some(format!("lease is {}", v.state.as_str()))
                }
                _ => None,
            };
            if let Some(why) = why {
                for p in next.remove_lease(id) {
                    gone.push((p, why.clone()));
                }
                continue;
            }
            if let Some(v) = view {
                let servers: Vec<Name> = next
                    .peers()
                    .iter()
                    .filter(|p| p.lease == id)
                    .map(|p| p.server.clone())
                    .collect();
                for s in servers {
                    let member = v.servers.iter().find(|x| x.name == s.as_str());
                    let left = match member {
                        None => Some("server left the lease".to_string()),
                        Some(m) if !approval::SERVING_STATES.contains(&m.state.as_str()) => {
                            Some(format!("server is {}", m.state))
                        }
                        _ => None,
                    };
                    if let Some(why) = left
                        && let Some(p) = next.remove_server(id, &s)
                    {
                        gone.push((p, why));
                    }
                }
            }
        }
        if gone.is_empty() {
            return Ok(0);
        }
        for (p, why) in &gone {
            if let Some(key) = &p.wg_public_key
                && let Err(e) = self.wg.remove_peer(key)
            {
                tracing::error!(lease = %p.lease, server = %p.server, error = %e, "cannot remove the WireGuard peer");
            }
            tracing::info!(lease = %p.lease, server = %p.server, address = %p.address, reason = %why, "peer removed");
        }
        self.persist(&next).map_err(|d| d.message)?;
        *table = next;
        Ok(gone.len())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn refused(what: &str, image: Option<&str>, r: &Refusal) {
    tracing::warn!(request = what, image = image.unwrap_or("-"), reason = r.reason(), detail = %r, "refused");
}

fn log_denial(what: &str, cert: &AgentCert, image: Option<&str>, d: &Denial) {
    tracing::warn!(
        request = what, lease = %cert.lease, server = %cert.server, image = image.unwrap_or("-"),
        serial = %cert.serial_hex, reason = d.reason, code = d.code.as_str(), detail = %d.message, "refused"
    );
}
