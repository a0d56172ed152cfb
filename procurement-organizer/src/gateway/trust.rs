//! What the gateway trusts: the LM CA (pinned in `<state>/gateway/lm-ca.pem` from the tenant's
//! credential bundle on first run, and refused if the bundle later names another CA), the
//! rustls client-certificate verifier built on it (client certificates are required and must
//! chain to the LM CA), and the LM's CRL, refreshed in the background and before decisions
//! when it is older than the refresh interval. IO only in [`pin_ca`] and [`CrlCache::refresh`].

use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use super::approval::CrlState;
use super::source::LmSource;
use crate::files;

/// The pinned LM CA.
#[derive(Debug, Clone)]
pub struct PinnedCa {
    pub pem: String,
    pub der: CertificateDer<'static>,
}

/// Pins the bundle's CA in `gateway_dir` on first use; afterwards the bundle must name the
/// same CA.
pub fn pin_ca(gateway_dir: &Path, bundle_ca_pem: &str) -> anyhow::Result<PinnedCa> {
    let path = gateway_dir.join("lm-ca.pem");
    let der = |pem: &str, what: &str| {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .map(|d| d.into_owned())
            .with_context(|| format!("{what} holds no PEM certificate"))
    };
    let bundle_der = der(bundle_ca_pem, "the credential bundle's ca_pem")?;
    match files::read_optional(&path)? {
        Some(bytes) => {
            let pem = String::from_utf8(bytes)
                .with_context(|| format!("{} is not PEM text", path.display()))?;
            let pinned = der(&pem, &path.display().to_string())?;
            if pinned != bundle_der {
                anyhow::bail!(
                    "the credential bundle names another LM CA than the one pinned in {}; if the Lease Manager's CA really changed, remove that file (every agent certificate of the old CA will be refused)",
                    path.display()
                );
            }
            Ok(PinnedCa { pem, der: pinned })
        }
        None => {
            files::replace_private(&path, bundle_ca_pem.as_bytes())?;
            tracing::info!(path = %path.display(), "pinned the LM CA from the credential bundle");
            Ok(PinnedCa {
                pem: bundle_ca_pem.to_string(),
                der: bundle_der,
            })
        }
    }
}

/// A verifier that requires a client certificate chaining to `ca` (revocation is checked by
/// the decisions, against the CRL, so that a refusal is logged with its reason).
pub fn client_verifier(
    ca: &CertificateDer<'static>,
) -> anyhow::Result<Arc<dyn ClientCertVerifier>> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.clone())
        .context("the LM CA is not usable as a trust anchor")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
        .build()
        .context("cannot build the client certificate verifier")
}

/// Whether `cert` chains to the verifier's CA at `now` (what the TLS handshake checks).
pub fn verify_chain(
    v: &dyn ClientCertVerifier,
    cert: &CertificateDer<'_>,
    now_unix: u64,
) -> Result<(), rustls::Error> {
    let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now_unix));
    v.verify_client_cert(cert, &[], now).map(|_| ())
}

/// The latest verified CRL.
#[derive(Debug)]
pub struct CrlCache {
    ca_der: Vec<u8>,
    state: RwLock<Option<CrlState>>,
}

impl CrlCache {
    pub fn new(ca: &PinnedCa) -> Self {
        Self {
            ca_der: ca.der.to_vec(),
            state: RwLock::new(None),
        }
    }

    /// The current CRL, if any.
    pub fn current(&self) -> Option<CrlState> {
        self.state.read().ok().and_then(|s| s.clone())
    }

    /// Fetches the CRL from the LM, checks it against the CA and keeps it.
    pub async fn refresh(&self, lm: &dyn LmSource, now_unix: i64) -> anyhow::Result<CrlState> {
        let der = lm.crl().await.map_err(|e| anyhow::anyhow!(e))?;
        let crl = lm_pki::check_crl(&der, &self.ca_der).context("the LM's CRL was refused")?;
        if let (Some(cur), Some(new)) = (self.current(), crl.number)
            && cur.crl.number.is_some_and(|n| new < n)
        {
            anyhow::bail!(
                "the LM's CRL number went backwards ({new} after {:?})",
                cur.crl.number
            );
        }
        let state = CrlState {
            crl,
            fetched_unix: now_unix,
        };
        if let Ok(mut s) = self.state.write() {
            *s = Some(state.clone());
        }
        Ok(state)
    }

    /// The CRL for a decision: refreshed first when older than `refresh_secs` (a failed
    /// refresh keeps the old one; the decision then judges its age).
    pub async fn for_decision(
        &self,
        lm: &dyn LmSource,
        refresh_secs: i64,
        now_unix: i64,
    ) -> Option<CrlState> {
        let cur = self.current();
        let fresh = cur
            .as_ref()
            .is_some_and(|c| now_unix.saturating_sub(c.fetched_unix) < refresh_secs);
        if fresh {
            return cur;
        }
        match self.refresh(lm, now_unix).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "CRL refresh failed");
                cur
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use lm_pki::{Authority, Identity};

    use super::*;

    fn ca() -> Authority {
        Authority::generate(SystemTime::now(), 1u64.into())
            .unwrap()
            .0
    }

    fn agent_cert(ca: &Authority, not_after: SystemTime) -> CertificateDer<'static> {
        let id: Identity = "urn:lease-appliance:agent:l-00000000000000aa:vm1"
            .parse()
            .unwrap();
        let now = SystemTime::now();
        let c = ca.issue_client(&id, now, not_after, 5u64.into()).unwrap();
        CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap()
    }

    fn unix(t: SystemTime) -> u64 {
        t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn only_certificates_of_the_pinned_ca_and_in_their_validity_pass() {
        let ours = ca();
        let theirs = ca();
        let v = client_verifier(ours.cert_der()).unwrap();
        let now = SystemTime::now();
        let good = agent_cert(&ours, now + Duration::from_secs(3600));
        verify_chain(&*v, &good, unix(now)).unwrap();
        let foreign = agent_cert(&theirs, now + Duration::from_secs(3600));
        assert!(
            verify_chain(&*v, &foreign, unix(now)).is_err(),
            "foreign CA"
        );
        assert!(
            verify_chain(&*v, &good, unix(now) + 7200).is_err(),
            "expired certificate"
        );
        assert!(v.client_auth_mandatory(), "a certificate is required");
    }

    #[test]
    fn the_ca_is_pinned_once() {
        let d = tempfile::tempdir().unwrap();
        let a = ca();
        let b = ca();
        let pinned = pin_ca(d.path(), a.cert_pem()).unwrap();
        assert_eq!(&pinned.der, a.cert_der());
        assert!(pin_ca(d.path(), a.cert_pem()).is_ok());
        let e = format!("{:#}", pin_ca(d.path(), b.cert_pem()).unwrap_err());
        assert!(e.contains("lm-ca.pem") && e.contains("remove"), "{e}");
        assert!(pin_ca(d.path(), "not pem").is_err());
    }
}
