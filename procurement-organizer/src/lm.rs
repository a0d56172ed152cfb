//! The organizer's side of the Lease Manager API, over mutual TLS with the tenant's credential
//! bundle (`lm-client`): leases, their events, the CA and its CRL. IO.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use lm_api::{
    AuditEntry, CreateLease, CreateLeaseResponse, CredentialBundle, LeaseId, LeaseView, RenewLease,
};
use lm_client::{Client, ClientError};
use zeroize::Zeroizing;

use crate::files;

/// Largest bundle file read (a bundle is about 2 KiB).
const MAX_BUNDLE_LEN: usize = 64 * 1024;

/// Reads the tenant credential bundle at `path`, with errors that say what to do.
pub fn load_bundle(path: &Path) -> anyhow::Result<CredentialBundle> {
    let bytes = Zeroizing::new(files::read_optional(path)?.with_context(|| {
        format!(
            "the tenant credential bundle {} does not exist: ask the Lease Manager's operator for one (`lease-manager tenant add <name> --out <file>`) and set `bundle` in the config",
            path.display()
        )
    })?);
    files::check_private(path)?;
    if bytes.len() > MAX_BUNDLE_LEN {
        anyhow::bail!(
            "{} is {} bytes: not a credential bundle",
            path.display(),
            bytes.len()
        );
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a tenant credential bundle (JSON with api_url, identity, ca_pem, cert_pem, key_pem): {e}",
            path.display()
        )
    })
}

/// A client of the LM for the tenant.
#[derive(Debug)]
pub struct Lm {
    client: Client,
    url: String,
}

fn lease_path(id: LeaseId) -> String {
    format!("/v1/leases/{id}")
}

impl Lm {
    /// A client for the bundle's holder; `url` overrides the bundle's `api_url`.
    pub fn new(bundle: &CredentialBundle, url: Option<&str>) -> anyhow::Result<Self> {
        let mut b = bundle.clone();
        if let Some(u) = url {
            b.api_url = u.to_string();
        }
        let client = Client::from_bundle(&b)
            .with_context(|| format!("cannot use the credential bundle for {}", b.api_url))?
            .with_timeout(Duration::from_secs(10));
        Ok(Self {
            client,
            url: b.api_url,
        })
    }

    /// The LM's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `POST /v1/leases`.
    pub async fn create(&self, req: &CreateLease) -> Result<CreateLeaseResponse, ClientError> {
        self.client.post("/v1/leases", req).await
    }

    /// `GET /v1/leases/{id}` (404: not this tenant's or unknown).
    pub async fn lease(&self, id: LeaseId) -> Result<LeaseView, ClientError> {
        self.client.get(&lease_path(id)).await
    }

    /// `GET /v1/leases`: this tenant's leases.
    pub async fn leases(&self) -> Result<Vec<LeaseView>, ClientError> {
        self.client.get("/v1/leases").await
    }

    /// `POST /v1/leases/{id}/release`.
    pub async fn release(&self, id: LeaseId) -> Result<LeaseView, ClientError> {
        self.client
            .post(
                &format!("{}/release", lease_path(id)),
                &serde_json::json!({}),
            )
            .await
    }

    /// `POST /v1/leases/{id}/renew`.
    pub async fn renew(&self, id: LeaseId, duration_s: u64) -> Result<LeaseView, ClientError> {
        self.client
            .post(
                &format!("{}/renew", lease_path(id)),
                &RenewLease { duration_s },
            )
            .await
    }

    /// `GET /v1/leases/{id}/events`: the lease's audit entries so far.
    pub async fn events(&self, id: LeaseId) -> anyhow::Result<Vec<AuditEntry>> {
        let path = format!("{}/events", lease_path(id));
        let a = self.client.request("GET", &path, None).await?;
        if a.status != 200 {
            anyhow::bail!(
                "GET {path}: {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            );
        }
        a.body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_slice(l)
                    .with_context(|| format!("unexpected line in the event stream of {path}"))
            })
            .collect()
    }

    /// `GET /v1/ca`: the CA certificate (PEM).
    pub async fn ca_pem(&self) -> anyhow::Result<String> {
        let v: serde_json::Value = self.client.get("/v1/ca").await?;
        v.get("cert_pem")
            .and_then(|p| p.as_str())
            .map(str::to_string)
            .context("GET /v1/ca: the answer has no cert_pem")
    }

    /// `GET /v1/ca/crl`: the CRL (DER).
    pub async fn crl_der(&self) -> anyhow::Result<Vec<u8>> {
        let a = self.client.request("GET", "/v1/ca/crl", None).await?;
        if a.status != 200 {
            anyhow::bail!("GET /v1/ca/crl: {}", a.status);
        }
        Ok(a.body.to_vec())
    }
}
