//! The tenant's gateway as the tenant names it in a lease request, and as the LM hands it to
//! the lease's agents in their enrollment answer. The LM only carries these values; it never
//! talks to the gateway and never sees a tunnel or image key.

use serde::{Deserialize, Serialize};

/// Where and how an agent reaches the tenant's gateway (its firewall).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySpec {
    /// The gateway's registration service on the data-centre segment, `https://host:port`.
    /// The agent registers its tunnel key there over mutual TLS with its LM-signed certificate.
    pub register_url: String,
    /// SHA-256 (hex, 64 digits) of the DER of the gateway's TLS certificate: the agent pins it,
    /// for the registration service and for the services behind the tunnel.
    pub tls_cert_sha256: String,
    /// The gateway's WireGuard endpoint, `host:port` (WireGuard leases).
    #[serde(default)]
    pub wg_endpoint: Option<String>,
    /// The gateway's WireGuard public key, base64 of 32 bytes (WireGuard leases). The agent
    /// checks the registration answer against it.
    #[serde(default)]
    pub wg_public_key: Option<String>,
}

impl std::fmt::Debug for GatewaySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewaySpec")
            .field("register_url", &self.register_url)
            .field("tls_cert_sha256", &self.tls_cert_sha256)
            .field("wg_endpoint", &self.wg_endpoint)
            .field("wg_public_key", &self.wg_public_key)
            .finish()
    }
}

/// Why a [`GatewaySpec`] was refused: names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("gateway.{field}: {why}")]
pub struct GatewaySpecError {
    pub field: &'static str,
    pub why: &'static str,
}

impl GatewaySpec {
    /// Checks every field's shape (not reachability).
    pub fn validate(&self) -> Result<(), GatewaySpecError> {
        let err = |field, why| Err(GatewaySpecError { field, why });
        let Some(rest) = self.register_url.strip_prefix("https://") else {
            return err("register_url", "must start with https://");
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty()
            || self.register_url.len() > 256
            || self
                .register_url
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return err(
                "register_url",
                "must be https://host:port with at most 256 characters and no spaces",
            );
        }
        if self.tls_cert_sha256.len() != 64
            || !self.tls_cert_sha256.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return err(
                "tls_cert_sha256",
                "must be 64 hex digits (SHA-256 of the DER)",
            );
        }
        if let Some(ep) = &self.wg_endpoint {
            let ok = ep.len() <= 256
                && ep
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0))
                && !ep.chars().any(|c| c.is_control() || c.is_whitespace());
            if !ok {
                return err("wg_endpoint", "must be host:port");
            }
        }
        if let Some(k) = &self.wg_public_key {
            // base64 of 32 bytes: 43 characters and one '='.
            let ok = k.len() == 44
                && k.ends_with('=')
                && k.as_bytes()[..43]
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
            if !ok {
                return err(
                    "wg_public_key",
                    "must be base64 of 32 bytes (44 characters)",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> GatewaySpec {
        GatewaySpec {
            register_url: "https://10.88.0.50:7443".into(),
            tls_cert_sha256: "ab".repeat(32),
            wg_endpoint: Some("10.88.0.50:51820".into()),
            wg_public_key: Some(format!("{}=", "A".repeat(43))),
        }
    }

    #[test]
    fn validate_names_the_field() {
        assert_eq!(good().validate(), Ok(()));
        type Mutation = fn(&mut GatewaySpec);
        let cases: Vec<(Mutation, &str)> = vec![
            (|g| g.register_url = "http://x:1".into(), "register_url"),
            (|g| g.register_url = "https://".into(), "register_url"),
            (|g| g.register_url = "https://a b:1".into(), "register_url"),
            (|g| g.tls_cert_sha256 = "zz".repeat(32), "tls_cert_sha256"),
            (|g| g.tls_cert_sha256 = "ab".into(), "tls_cert_sha256"),
            (|g| g.wg_endpoint = Some("host".into()), "wg_endpoint"),
            (|g| g.wg_endpoint = Some("host:0".into()), "wg_endpoint"),
            (|g| g.wg_endpoint = Some(":51820".into()), "wg_endpoint"),
            (|g| g.wg_public_key = Some("short=".into()), "wg_public_key"),
            (|g| g.wg_public_key = Some("é".repeat(22)), "wg_public_key"),
        ];
        for (mutate, field) in cases {
            let mut g = good();
            mutate(&mut g);
            assert_eq!(g.validate().unwrap_err().field, field, "{g:?}");
        }
    }

    #[test]
    fn golden_json() {
        let j = serde_json::to_value(good()).unwrap();
        assert_eq!(
            j,
            serde_json::json!({
                "register_url": "https://10.88.0.50:7443",
                "tls_cert_sha256": "ab".repeat(32),
                "wg_endpoint": "10.88.0.50:51820",
                "wg_public_key": format!("{}=", "A".repeat(43)),
            })
        );
        let minimal: GatewaySpec = serde_json::from_value(serde_json::json!({
            "register_url": "https://gw:7443", "tls_cert_sha256": "00".repeat(32)
        }))
        .unwrap();
        assert_eq!(minimal.wg_endpoint, None);
    }
}
