//! Why the tunnel did not come up or stopped, each naming the step and what to check.

use std::net::SocketAddr;

use agent_esp::io::{EndpointError, TunError};
use agent_ike::{AuthFailure, AuthStartError, ChildFailure, StartError};
use wg_tunnel::ifconfig::IfconfigError;

use crate::plan::PlanError;

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("cannot bind the IKE socket {addr} (another IKE daemon there, or not root?)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("sending an IKE message to {to}")]
    Send {
        to: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("receiving on the IKE socket {local}")]
    Recv {
        local: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("IKE_SA_INIT cannot start: {0}")]
    SaInitStart(#[from] StartError),
    #[error("IKE_AUTH cannot start: {0}")]
    AuthStart(#[from] AuthStartError),
    #[error(
        "{exchange}: no valid answer from {peer} after {tries} retransmissions (last unauthenticated \
         error notify: {last_error:?}); is the responder up and reachable on UDP 500/4500?"
    )]
    GaveUp {
        exchange: &'static str,
        peer: SocketAddr,
        tries: u32,
        last_error: Option<u16>,
    },
    #[error("{exchange}: the state machine has nothing outstanding but no result either")]
    Idle { exchange: &'static str },
    #[error("IKE_AUTH failed: {0}")]
    Auth(AuthFailure),
    #[error("the IKE SA is up but the responder refused the child SA: {0}")]
    Child(ChildFailure),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("creating the tunnel's TUN device: {0}")]
    Tun(#[from] TunError),
    #[error("configuring the tunnel's TUN device: {0}")]
    Ifconfig(#[from] IfconfigError),
    #[error("starting the ESP endpoint: {0}")]
    Endpoint(#[from] EndpointError),
}
