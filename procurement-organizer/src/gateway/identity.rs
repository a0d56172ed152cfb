//! The gateway's identity, created on first use and kept in `<state_dir>/gateway/`:
//! - `tls-cert.pem` / `tls-key.pem` (0600): the self-signed TLS certificate of the
//!   registration and key services. Agents pin the SHA-256 of its DER (the lease's
//!   `GatewaySpec.tls_cert_sha256`), so it is never regenerated while the file exists: a new
//!   certificate would lock out the agents of every lease already requested.
//! - `wg.key` (0600): the WireGuard private key (base64, as `wg genkey` writes it).
//!
//! IO. Keys are read into zeroizing buffers and never logged.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::config::GatewayConfig;
use crate::files;
use crate::record::RecordFile;

/// Lifetime of the gateway certificate (pinned by hash; its dates matter only to clients that
/// check them).
const CERT_LIFETIME: Duration = Duration::from_secs(20 * 365 * 24 * 3600);

/// The gateway's keys and certificate.
pub struct GatewayIdentity {
    pub cert_der: CertificateDer<'static>,
    key_pem: Zeroizing<String>,
    pub wg_private: wg_tunnel::PrivateKey,
    /// Lowercase hex SHA-256 of the certificate's DER: what agents pin.
    pub cert_sha256: String,
    pub wg_public: wg_tunnel::PublicKey,
}

impl std::fmt::Debug for GatewayIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayIdentity")
            .field("cert_sha256", &self.cert_sha256)
            .field("wg_public", &self.wg_public)
            .finish_non_exhaustive()
    }
}

/// The folder of the gateway's files.
pub fn gateway_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("gateway")
}

impl GatewayIdentity {
    /// Loads the identity, creating what is missing (under the state folder's lock).
    pub fn load_or_create(state_dir: &Path, cfg: &GatewayConfig) -> anyhow::Result<Self> {
        files::private_dir(state_dir)?;
        let dir = gateway_dir(state_dir);
        files::private_dir(&dir)?;
        let _lock = RecordFile::new(state_dir).lock()?;
        let cert_path = dir.join("tls-cert.pem");
        let key_path = dir.join("tls-key.pem");
        let wg_path = dir.join("wg.key");
        match (cert_path.exists(), key_path.exists()) {
            (false, false) => {
                let mut sans: Vec<String> = [
                    IpAddr::V4(cfg.dc_address),
                    IpAddr::V4(cfg.tunnel_address),
                    cfg.key_service_listen.ip(),
                ]
                .iter()
                .map(|ip| ip.to_string())
                .collect();
                sans.dedup();
                let c = lm_pki::self_signed_server(
                    "tenant gateway",
                    &sans,
                    SystemTime::now(),
                    CERT_LIFETIME,
                )
                .context("cannot make the gateway's TLS certificate")?;
                let key_pem = Zeroizing::new(c.key_pem);
                files::create_private(&key_path, key_pem.as_bytes())?;
                files::create_private(&cert_path, c.cert_pem.as_bytes())?;
                tracing::info!(path = %cert_path.display(), "created the gateway's TLS certificate");
            }
            (true, true) => {}
            _ => anyhow::bail!(
                "{} and {} must both exist or both be absent; restore the missing one from a backup (agents pin the certificate), or remove both to make a new one (only for a gateway with no leases)",
                cert_path.display(),
                key_path.display()
            ),
        }
        if !wg_path.exists() {
            let k = wg_tunnel::PrivateKey::generate_os();
            let mut text = k.to_base64();
            text.push('\n');
            files::create_private(&wg_path, text.as_bytes())?;
            tracing::info!(path = %wg_path.display(), "created the gateway's WireGuard key");
        }
        Self::load(&dir)
    }

    /// Loads an existing identity from `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let cert_path = dir.join("tls-cert.pem");
        let key_path = dir.join("tls-key.pem");
        let wg_path = dir.join("wg.key");
        let cert_pem = std::fs::read(&cert_path)
            .with_context(|| format!("cannot read {}", cert_path.display()))?;
        let cert_der = CertificateDer::from_pem_slice(&cert_pem)
            .with_context(|| format!("{} holds no PEM certificate", cert_path.display()))?
            .into_owned();
        files::check_private(&key_path)?;
        let key_pem = Zeroizing::new(
            String::from_utf8(
                std::fs::read(&key_path)
                    .with_context(|| format!("cannot read {}", key_path.display()))?,
            )
            .with_context(|| format!("{} is not PEM text", key_path.display()))?,
        );
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .with_context(|| format!("{} holds no PEM private key", key_path.display()))?;
        files::check_private(&wg_path)?;
        let wg_text = Zeroizing::new(
            std::fs::read_to_string(&wg_path)
                .with_context(|| format!("cannot read {}", wg_path.display()))?,
        );
        let wg_private = wg_tunnel::PrivateKey::from_base64(wg_text.trim())
            .with_context(|| format!("{} is not a WireGuard private key", wg_path.display()))?;
        let wg_public = wg_private.public_key();
        let cert_sha256 = hex::encode(Sha256::digest(&cert_der));
        Ok(Self {
            cert_der,
            key_pem,
            wg_private,
            cert_sha256,
            wg_public,
        })
    }

    /// The TLS private key (for the rustls configuration).
    pub fn tls_key(&self) -> anyhow::Result<PrivateKeyDer<'static>> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .context("the gateway's TLS key is not a PEM private key")
    }

    /// The gateway as lease requests name it: the WireGuard endpoint and key only when it
    /// runs WireGuard (an IPsec agent authenticates the IKE responder by the same pinned
    /// certificate as the registration service).
    pub fn spec(&self, cfg: &GatewayConfig) -> lm_api::GatewaySpec {
        let wireguard = cfg.tunnel == crate::config::TunnelMode::Wireguard;
        lm_api::GatewaySpec {
            register_url: cfg.register_url.clone(),
            tls_cert_sha256: self.cert_sha256.clone(),
            wg_endpoint: wireguard.then(|| cfg.wg_endpoint.clone()),
            wg_public_key: wireguard.then(|| self.wg_public.to_base64()),
        }
    }

    /// The WireGuard public key in the contract's type.
    pub fn wg_public_api(&self) -> po_api::WgPublicKey {
        po_api::WgPublicKey(*self.wg_public.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn cfg() -> GatewayConfig {
        let text = crate::config::example(
            "b.json",
            "s",
            "10.77.0.2".parse().unwrap(),
            "10.99.0.0/24".parse().unwrap(),
            &[],
        );
        crate::config::Config::parse(&text, Path::new("/x/o.toml"))
            .unwrap()
            .gateway
    }

    #[test]
    fn created_once_and_stable_across_loads() {
        let d = tempfile::tempdir().unwrap();
        let a = GatewayIdentity::load_or_create(d.path(), &cfg()).unwrap();
        let b = GatewayIdentity::load_or_create(d.path(), &cfg()).unwrap();
        assert_eq!(a.cert_sha256, b.cert_sha256);
        assert_eq!(a.wg_public, b.wg_public);
        assert_eq!(a.cert_sha256.len(), 64);
        let spec = a.spec(&cfg());
        spec.validate().unwrap();
        for f in ["tls-key.pem", "wg.key"] {
            let m = std::fs::metadata(gateway_dir(d.path()).join(f)).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o600, "{f}");
        }
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("PRIVATE") && !dbg.contains(&*a.wg_private.to_base64()));
        // A lost key file is an error that names both files, never a silent new certificate.
        std::fs::remove_file(gateway_dir(d.path()).join("tls-key.pem")).unwrap();
        let e = format!(
            "{:#}",
            GatewayIdentity::load_or_create(d.path(), &cfg()).unwrap_err()
        );
        assert!(e.contains("tls-key.pem") && e.contains("backup"), "{e}");
    }
}
