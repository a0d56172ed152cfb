//! What the agent builds from the gateway's registration answer, and why it refuses an answer.
//!
//! Pure: the enrollment answer from the LM ([`GatewaySpec`], the lease and server the agent
//! certificate names) and the gateway's [`PeerRegistered`] in, a checked [`TunnelPlan`] out.
//! The registration answer arrives over TLS pinned to the certificate the LM named, but the
//! agent still checks it against what the LM said and against itself: a gateway key other than
//! the one in the lease, an answer for another lease or server, a tunnel address outside the
//! tunnel network, routes that would pull the LM or the gateway's own endpoint into the tunnel,
//! or services outside the tunnel are refused, so nothing the agent fetches for the image can
//! leave it outside the tunnel. The lease's tunnel (WireGuard or IPsec, from the enrollment)
//! decides which endpoint the answer must carry: a WireGuard key and endpoint, or an IKEv2
//! endpoint on the gateway's registration address (the IKE responder is authenticated by the
//! same pinned certificate as the registration service).

use std::net::{Ipv4Addr, SocketAddrV4};

use lm_api::{GatewaySpec, LeaseId, Tunnel};
use po_api::{ImageSigningKey, Ipv4Net, PeerRegistered, WgPublicKey};

use crate::lm_url::{LmHost, LmUrl};

/// Longest keepalive interval accepted (WireGuard's own session lifetime is 180 s).
pub const MAX_KEEPALIVE_SECS: u16 = 600;
/// Most routes accepted into the tunnel.
pub const MAX_ROUTES: usize = 32;

/// A service behind the tunnel: where to connect, and the `Host` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelService {
    pub addr: SocketAddrV4,
}

impl TunnelService {
    /// `host:port` for the `Host` header.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }
}

/// Everything the agent needs to build its tunnel and use the services behind it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelPlan {
    pub lease: LeaseId,
    pub server: String,
    /// The agent's single address inside the tunnel, with the tunnel network's prefix.
    pub address: Ipv4Addr,
    pub network: Ipv4Net,
    pub gateway_address: Ipv4Addr,
    /// The lease's tunnel.
    pub tunnel: Tunnel,
    /// The gateway's WireGuard key (WireGuard leases only).
    pub gateway_key: Option<WgPublicKey>,
    /// Where the tunnel goes on the data-centre segment: the gateway's WireGuard endpoint, or
    /// its IKEv2 responder (UDP, the agent floats to 4500 after IKE_SA_INIT).
    pub gateway_endpoint: SocketAddrV4,
    /// Networks routed into the tunnel (the tunnel network first).
    pub routes: Vec<Ipv4Net>,
    pub keepalive_secs: u16,
    /// The image store (plain HTTP inside the tunnel).
    pub store: TunnelService,
    /// The key service (mutual TLS inside the tunnel, the gateway certificate pinned).
    pub keys: TunnelService,
    pub signing_key: ImageSigningKey,
}

/// Why a registration answer (or the gateway spec) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the lease names no tenant gateway: there is nothing to tunnel to")]
    NoGateway,
    #[error("gateway.register_url {url:?} is not https://HOST:PORT: {why}")]
    RegisterUrl { url: String, why: String },
    #[error("the gateway answered for lease {got}, but this agent is enrolled for lease {want}")]
    OtherLease { got: LeaseId, want: LeaseId },
    #[error("the gateway answered for server {got:?}, but this agent is server {want:?}")]
    OtherServer { got: String, want: String },
    #[error(
        "the gateway's WireGuard key {got} is not the key {want} the lease manager named for this lease"
    )]
    GatewayKey { got: WgPublicKey, want: WgPublicKey },
    #[error(
        "the gateway's WireGuard endpoint {got:?} is not the endpoint {want:?} the lease names"
    )]
    GatewayEndpoint { got: String, want: String },
    #[error("{field} {value:?} is not an IPv4 address with a port")]
    Endpoint { field: &'static str, value: String },
    #[error("{field} {address} is not inside the tunnel network {network}")]
    OutsideNetwork {
        field: &'static str,
        address: Ipv4Addr,
        network: Ipv4Net,
    },
    #[error("the tunnel address {0} is the gateway's own address")]
    SameAddress(Ipv4Addr),
    #[error(
        "{count} routes (at most {MAX_ROUTES}); the gateway must name the tunnel network and the tenant's private networks only"
    )]
    TooManyRoutes { count: usize },
    #[error("the routes do not include the tunnel network {0}")]
    NoTunnelRoute(Ipv4Net),
    #[error("route {route} covers {what} {address}: its traffic would be pulled into the tunnel")]
    RouteCovers {
        route: Ipv4Net,
        what: &'static str,
        address: Ipv4Addr,
    },
    #[error("{field} {url:?} must be {scheme}://A.B.C.D:PORT")]
    ServiceUrl {
        field: &'static str,
        url: String,
        scheme: &'static str,
    },
    #[error("{field} {address} is not routed into the tunnel: the agent only fetches through it")]
    NotInTunnel {
        field: &'static str,
        address: Ipv4Addr,
    },
    #[error(
        "the lease's tunnel is {lease} but the gateway's answer has no {missing}: it runs the other tunnel"
    )]
    WrongTunnel {
        lease: &'static str,
        missing: &'static str,
    },
    #[error(
        "the gateway's IKE endpoint {got} is not on its registration address {want}: the agent only builds IPsec to the gateway it registered with"
    )]
    IkeElsewhere { got: SocketAddrV4, want: Ipv4Addr },
    #[error("keepalive_secs {0} is more than {MAX_KEEPALIVE_SECS}")]
    Keepalive(u16),
}

/// The registration service's URL from the spec: `https://HOST:PORT` (one trailing `/` allowed).
pub fn register_url(spec: &GatewaySpec) -> Result<LmUrl, PlanError> {
    let text = spec
        .register_url
        .strip_suffix('/')
        .unwrap_or(&spec.register_url);
    LmUrl::parse(text).map_err(|e| PlanError::RegisterUrl {
        url: spec.register_url.chars().take(80).collect(),
        why: e.to_string(),
    })
}

fn endpoint(field: &'static str, value: &str) -> Result<SocketAddrV4, PlanError> {
    value.parse().map_err(|_| PlanError::Endpoint {
        field,
        value: value.chars().take(80).collect(),
    })
}

/// `scheme://A.B.C.D:PORT` (one trailing `/` allowed), nothing else.
fn service(
    field: &'static str,
    url: &str,
    scheme: &'static str,
) -> Result<TunnelService, PlanError> {
    let bad = || PlanError::ServiceUrl {
        field,
        url: url.chars().take(80).collect(),
        scheme,
    };
    let rest = url
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
        .ok_or_else(bad)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let addr: SocketAddrV4 = rest.parse().map_err(|_| bad())?;
    if addr.port() == 0 {
        return Err(bad());
    }
    Ok(TunnelService { addr })
}

/// Checks the gateway's answer against the enrollment (`tunnel` is the lease's, from the
/// enrollment answer) and against the agent's own addresses (`lm` is the LM's address, which
/// must stay outside the tunnel).
pub fn check(
    spec: &GatewaySpec,
    lease: LeaseId,
    server: &str,
    tunnel: Tunnel,
    lm: Option<Ipv4Addr>,
    reg: &PeerRegistered,
) -> Result<TunnelPlan, PlanError> {
    if reg.lease != lease {
        return Err(PlanError::OtherLease {
            got: reg.lease,
            want: lease,
        });
    }
    if reg.server.as_str() != server {
        return Err(PlanError::OtherServer {
            got: reg.server.to_string(),
            want: server.into(),
        });
    }
    let register = register_url(spec)?;
    let (gateway_key, gateway_endpoint) = match tunnel {
        Tunnel::Wireguard => wireguard_endpoint(spec, reg)?,
        Tunnel::Ipsec => (None, ike_endpoint(&register, reg)?),
    };
    let network = reg.tunnel_network;
    for (field, address) in [
        ("tunnel_address", reg.tunnel_address),
        ("gateway_tunnel_address", reg.gateway_tunnel_address),
    ] {
        if !network.contains(address) {
            return Err(PlanError::OutsideNetwork {
                field,
                address,
                network,
            });
        }
    }
    if reg.tunnel_address == reg.gateway_tunnel_address {
        return Err(PlanError::SameAddress(reg.tunnel_address));
    }
    if reg.routes.len() > MAX_ROUTES {
        return Err(PlanError::TooManyRoutes {
            count: reg.routes.len(),
        });
    }
    if !reg.routes.contains(&network) {
        return Err(PlanError::NoTunnelRoute(network));
    }
    let mut outside = vec![("the gateway's tunnel endpoint", *gateway_endpoint.ip())];
    if let LmHost::Ip(ip) = register.host() {
        outside.push(("the gateway's registration address", *ip));
    }
    if let Some(ip) = lm {
        outside.push(("the lease manager", ip));
    }
    for route in &reg.routes {
        for (what, address) in &outside {
            if route.contains(*address) {
                return Err(PlanError::RouteCovers {
                    route: *route,
                    what,
                    address: *address,
                });
            }
        }
    }
    let store = service("image_store_url", &reg.image_store_url, "http")?;
    let keys = service("key_service_url", &reg.key_service_url, "https")?;
    for (field, s) in [("image_store_url", store), ("key_service_url", keys)] {
        if !reg.routes.iter().any(|r| r.contains(*s.addr.ip())) {
            return Err(PlanError::NotInTunnel {
                field,
                address: *s.addr.ip(),
            });
        }
    }
    if reg.keepalive_secs > MAX_KEEPALIVE_SECS {
        return Err(PlanError::Keepalive(reg.keepalive_secs));
    }
    let mut routes = vec![network];
    routes.extend(reg.routes.iter().copied().filter(|r| *r != network));
    Ok(TunnelPlan {
        lease,
        server: server.into(),
        address: reg.tunnel_address,
        network,
        gateway_address: reg.gateway_tunnel_address,
        tunnel,
        gateway_key,
        gateway_endpoint,
        routes,
        keepalive_secs: reg.keepalive_secs,
        store,
        keys,
        signing_key: reg.image_signing_key,
    })
}

/// A WireGuard lease: the gateway's key (equal to the one the LM named, if it named one) and
/// endpoint (equal to the lease's, if it names one).
fn wireguard_endpoint(
    spec: &GatewaySpec,
    reg: &PeerRegistered,
) -> Result<(Option<WgPublicKey>, SocketAddrV4), PlanError> {
    let missing = |missing| PlanError::WrongTunnel {
        lease: "wireguard",
        missing,
    };
    let got_key = reg
        .gateway_wg_public_key
        .ok_or(missing("gateway_wg_public_key"))?;
    let got_endpoint = reg
        .gateway_wg_endpoint
        .as_deref()
        .ok_or(missing("gateway_wg_endpoint"))?;
    if let Some(want) = &spec.wg_public_key {
        let want = want
            .parse::<WgPublicKey>()
            .map_err(|_| PlanError::Endpoint {
                field: "gateway.wg_public_key",
                value: want.chars().take(80).collect(),
            })?;
        if want != got_key {
            return Err(PlanError::GatewayKey { got: got_key, want });
        }
    }
    let gateway_endpoint = endpoint("gateway_wg_endpoint", got_endpoint)?;
    if let Some(want) = &spec.wg_endpoint
        && endpoint("gateway.wg_endpoint", want)? != gateway_endpoint
    {
        return Err(PlanError::GatewayEndpoint {
            got: got_endpoint.chars().take(80).collect(),
            want: want.chars().take(80).collect(),
        });
    }
    Ok((Some(got_key), gateway_endpoint))
}

/// An IPsec lease: the IKE responder, on the registration service's address when that is an
/// address (a name is resolved by the shell; the pin authenticates the responder either way).
fn ike_endpoint(register: &LmUrl, reg: &PeerRegistered) -> Result<SocketAddrV4, PlanError> {
    let got = reg
        .gateway_ike_endpoint
        .as_deref()
        .ok_or(PlanError::WrongTunnel {
            lease: "ipsec",
            missing: "gateway_ike_endpoint",
        })?;
    let ike = endpoint("gateway_ike_endpoint", got)?;
    if ike.port() == 0 {
        return Err(PlanError::Endpoint {
            field: "gateway_ike_endpoint",
            value: got.chars().take(80).collect(),
        });
    }
    if let LmHost::Ip(ip) = register.host()
        && ike.ip() != ip
    {
        return Err(PlanError::IkeElsewhere {
            got: ike,
            want: *ip,
        });
    }
    Ok(ike)
}

#[cfg(test)]
#[path = "tunnel_plan_tests.rs"]
mod tests;
