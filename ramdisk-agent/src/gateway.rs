//! The tenant gateway's two TLS services, seen from the agent: registration (`POST /v1/peers`
//! on the data-centre segment) and the key service (`POST /v1/keys`, only through the tunnel).
//!
//! Does IO. Trust: the gateway's certificate is pinned by the SHA-256 the LM handed over in the
//! enrollment answer ([`crate::pinned`]), nothing else; the agent presents its LM-signed
//! certificate ([`ClientIdentity`]). Answers are parsed with the po-api contract; the image key
//! is zeroized as soon as it is in the [`ImageKey`], and the response bytes that carried it are
//! zeroed.

use std::net::SocketAddr;
use std::sync::Arc;

use agent_core::http::{self, Response};
use agent_core::secret;
use agent_core::tunnel_plan::TunnelPlan;
use agent_core::{LmHost, LmUrl, Outcome};
use anyhow::anyhow;
use lm_api::GatewaySpec;
use po_api::{ErrorBody, ErrorCode, ImageRef, KeyAnswer, KeyRequest, PeerRegistered, RegisterPeer};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use sealed_image::{ImageKey, KeyEpoch};

use crate::hello::{Failure, version};
use crate::https::{self, ClientIdentity, Timeouts};
use crate::pinned::{Pin, PinnedVerifier};

/// The gateway's TLS client: the pinned certificate, the agent certificate.
#[derive(Debug, Clone)]
pub struct GatewayClient {
    config: Arc<ClientConfig>,
    register: LmUrl,
}

fn failure(outcome: Outcome, error: anyhow::Error) -> Failure {
    Failure {
        error,
        outcome,
        lm_answered: false,
    }
}

/// What an error answer of the gateway means for the phase.
fn refusal(what: &str, resp: &Response) -> Failure {
    let body: Option<ErrorBody> = serde_json::from_slice(&resp.body).ok();
    let outcome = match (&body, resp.status) {
        (Some(b), _) if b.code.is_transient() => Outcome::Transient,
        (_, 500..=599) => Outcome::Transient,
        // Not approved (yet), lease not live: the organizer may catch up with the LM.
        (Some(b), _) if matches!(b.code, ErrorCode::NotApproved | ErrorCode::LeaseNotLive) => {
            Outcome::Rejected
        }
        _ => Outcome::Fatal,
    };
    let text = match body {
        Some(b) => format!("{} ({})", b.error, b.code.as_str()),
        None => String::from_utf8_lossy(resp.body.get(..200).unwrap_or(&resp.body)).into_owned(),
    };
    failure(
        outcome,
        anyhow!("the gateway refused {what}: {} {}", resp.status, text),
    )
}

impl GatewayClient {
    /// A client for the gateway the lease names.
    pub fn new(spec: &GatewaySpec, identity: &ClientIdentity) -> Result<Self, Failure> {
        let fatal = |e: anyhow::Error| failure(Outcome::Fatal, e);
        let register = agent_core::tunnel_plan::register_url(spec).map_err(|e| fatal(e.into()))?;
        let pin: Pin = spec
            .tls_cert_sha256
            .parse()
            .map_err(|e| fatal(anyhow::Error::new(e).context("gateway.tls_cert_sha256")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| fatal(e.into()))?
            .dangerous()
            .with_custom_certificate_verifier(PinnedVerifier::new(pin))
            .with_client_cert_resolver(identity.resolver());
        Ok(Self {
            config: Arc::new(config),
            register,
        })
    }

    /// The registration service's address.
    pub fn register_url(&self) -> &LmUrl {
        &self.register
    }

    fn name(host: &LmHost) -> ServerName<'static> {
        match host {
            LmHost::Ip(ip) => ServerName::IpAddress((*ip).into()),
            // The pin, not the name, authenticates the gateway; the name only goes into SNI.
            LmHost::Name(n) => ServerName::try_from(n.clone()).unwrap_or(ServerName::IpAddress(
                std::net::Ipv4Addr::UNSPECIFIED.into(),
            )),
        }
    }

    /// `POST /v1/peers`: registers the agent, with its WireGuard public key for a WireGuard
    /// lease, without one for an IPsec lease (the certificate is the IKE credential).
    pub fn register(
        &self,
        wg_public_key: Option<[u8; 32]>,
        t: Timeouts,
    ) -> Result<PeerRegistered, Failure> {
        let transient = |e: anyhow::Error| failure(Outcome::Transient, e);
        let addr = match self.register.host() {
            LmHost::Ip(ip) => SocketAddr::from((*ip, self.register.port())),
            LmHost::Name(_) => {
                use std::net::ToSocketAddrs;
                (self.register.host_str().as_str(), self.register.port())
                    .to_socket_addrs()
                    .map_err(|e| transient(anyhow::Error::new(e).context("resolving the gateway")))?
                    .find(SocketAddr::is_ipv4)
                    .ok_or_else(|| transient(anyhow!("the gateway's name has no IPv4 address")))?
            }
        };
        // The root the start-up key will be sealed to, for the tenant's policy.
        let host_root = if crate::host_root::tpm_device().is_some() {
            po_api::HostRoot::Tpm
        } else {
            po_api::HostRoot::Weak
        };
        let body = serde_json::to_vec(&RegisterPeer {
            wg_public_key: wg_public_key.map(po_api::WgPublicKey),
            host_root: Some(host_root),
        })
        .map_err(|e| failure(Outcome::Fatal, e.into()))?;
        let req = http::post_json(
            &self.register.authority(),
            po_api::paths::PEERS,
            &version(),
            &body,
        )
        .map_err(|e| failure(Outcome::Fatal, e.into()))?;
        let name = Self::name(self.register.host());
        let resp = https::exchange_tls(&self.config, name, addr, None, &req, t).map_err(|e| {
            transient(anyhow::Error::new(e).context("registering with the gateway"))
        })?;
        if resp.status != 200 {
            return Err(refusal("the registration", &resp));
        }
        po_api::parse_body(&resp.body).map_err(|e| {
            failure(
                Outcome::Fatal,
                anyhow!("the gateway's registration answer: {e}"),
            )
        })
    }

    /// `POST /v1/keys` through the tunnel (the socket bound to `device`): the key of `image`
    /// at `epoch`.
    pub fn fetch_key(
        &self,
        plan: &TunnelPlan,
        device: &str,
        image: ImageRef,
        epoch: KeyEpoch,
        t: Timeouts,
    ) -> Result<ImageKey, Failure> {
        let body = serde_json::to_vec(&KeyRequest {
            image,
            epoch: epoch.0,
        })
        .map_err(|e| failure(Outcome::Fatal, e.into()))?;
        let req = http::post_json(
            &plan.keys.authority(),
            po_api::paths::KEYS,
            &version(),
            &body,
        )
        .map_err(|e| failure(Outcome::Fatal, e.into()))?;
        let name = ServerName::IpAddress((*plan.keys.addr.ip()).into());
        let addr = SocketAddr::V4(plan.keys.addr);
        let mut resp = https::exchange_tls(&self.config, name, addr, Some(device), &req, t)
            .map_err(|e| {
                failure(
                    Outcome::Transient,
                    anyhow::Error::new(e).context("asking the key service for the image key"),
                )
            })?;
        if resp.status != 200 {
            return Err(refusal("the image key", &resp));
        }
        let parsed = po_api::parse_body::<KeyAnswer>(&resp.body);
        secret::zero(&mut resp.body);
        let answer = parsed
            .map_err(|e| failure(Outcome::Fatal, anyhow!("the key service's answer: {e}")))?;
        if answer.image != image || answer.epoch != epoch.0 {
            return Err(failure(
                Outcome::Fatal,
                anyhow!(
                    "the key service answered for image {} epoch {}, not image {image} epoch {}",
                    answer.image,
                    answer.epoch,
                    epoch.0
                ),
            ));
        }
        Ok(ImageKey::from_bytes(*answer.key.decode()))
    }
}
