//! Tenants and the credential bundle `lease-manager tenant add` prints.

use serde::{Deserialize, Serialize};

use crate::Name;

/// Body of `POST /v1/tenants` (operator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddTenant {
    pub name: Name,
    /// Lifetime of the tenant's client certificate in days (default 365).
    #[serde(default)]
    pub cert_days: Option<u32>,
}

/// A tenant as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantView {
    pub name: Name,
    pub created_ms: u64,
    /// Serial (hex) of its current client certificate.
    pub cert_serial: String,
    pub cert_not_after_ms: u64,
    /// Removed tenants keep their record (their leases reference them); their certificate
    /// is revoked.
    pub removed: bool,
    /// Leases not yet over.
    pub open_leases: u32,
}

/// What a client (tenant or operator) needs to call the LM: its address, the CA to pin, and
/// a client certificate with its key. Written once, by `tenant add` / `operator add`; the LM
/// does not keep the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialBundle {
    /// `https://host:port` of the LM API.
    pub api_url: String,
    /// The URI in the certificate (`urn:lease-appliance:tenant:acme`).
    pub identity: String,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CredentialBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialBundle")
            .field("api_url", &self.api_url)
            .field("identity", &self.identity)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_debug_hides_the_key() {
        let b = CredentialBundle {
            api_url: "https://10.77.0.1:8443".into(),
            identity: "urn:lease-appliance:tenant:acme".into(),
            ca_pem: "ca".into(),
            cert_pem: "cert".into(),
            key_pem: "-----BEGIN PRIVATE KEY-----secret".into(),
        };
        let d = format!("{b:?}");
        assert!(!d.contains("secret") && d.contains("redacted"), "{d}");
    }

    #[test]
    fn add_tenant_refuses_bad_names() {
        let err = serde_json::from_str::<AddTenant>(r#"{"name":"a b"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a valid name"), "{err}");
    }
}
