//! Drives agent-ike's IKE_SA_INIT and IKE_AUTH state machines over [`IkeTransport`]: sends
//! what they return, retransmits when their timers say so, feeds what arrives, floats to
//! UDP 4500 between the two exchanges. Does IO; the decisions are the state machines' and
//! [`crate::plan`]'s.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use agent_ike::{
    Action, AuthAction, AuthConfig, AuthInitiator, ChildSa, DhGroup, Entropy, Identity, IkeKeys,
    InitiatorConfig, LocalCredential, PeerTrust, RetransmitPolicy, SaInitiator, Timeout,
    TrafficSelector,
};

use crate::clock::Clock;
use crate::error::TunnelError;
use crate::plan::{self, AfterSaInit};
use crate::transport::{IKE_PORT, IkeTransport};

/// The IKE side of a tunnel.
#[derive(Debug)]
pub struct IkeConfig {
    /// The agent's underlay address (UDP 500 and 4500 are bound on it).
    pub local: Ipv4Addr,
    /// The responder (tenant firewall).
    pub peer: Ipv4Addr,
    pub groups: Vec<DhGroup>,
    pub credential: LocalCredential,
    pub trust: PeerTrust,
    pub peer_id: Option<Identity>,
    /// The agent's inner address (TSi, and the TUN device's address): fixed, or assigned by
    /// the responder from its pool.
    pub inner: InnerAddress,
    /// TSr: the tenant networks asked for (the responder narrows them).
    pub remote_ts: Vec<TrafficSelector>,
    pub retransmit: RetransmitPolicy,
}

/// Where the agent's inner address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InnerAddress {
    /// This address: TSi is exactly it, no configuration payload is sent.
    Fixed(Ipv4Addr),
    /// Ask the responder (CP(CFG_REQUEST) for INTERNAL_IP4_ADDRESS, RFC 7296 3.15) with TSi
    /// any IPv4 address; the responder's pool picks it and narrows TSi to it.
    FromResponder,
}

/// How long the handshake took, by exchange (from the first request to the accepted answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    pub sa_init: Duration,
    pub auth: Duration,
}

impl Handshake {
    pub fn total(&self) -> Duration {
        self.sa_init + self.auth
    }
}

/// The established IKE SA's public facts (its keys are in [`Established::keys`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaInfo {
    pub spi_i: u64,
    pub spi_r: u64,
    pub peer_id: Identity,
    pub after_sa_init: AfterSaInit,
}

/// IKE_AUTH done: the child SA and the transport, floated to 4500.
#[derive(Debug)]
pub struct Established {
    pub transport: IkeTransport,
    /// The inner address in use: the fixed one, or the one the responder assigned.
    pub inner: Ipv4Addr,
    pub child: ChildSa,
    pub ike: IkeSaInfo,
    /// The IKE SA's keys (zeroized on drop), for INFORMATIONAL and CREATE_CHILD_SA.
    pub keys: IkeKeys,
    /// Our next request's message id (IKE_AUTH used 1).
    pub next_msg_id: u32,
    pub handshake: Handshake,
}

enum Step<T> {
    Continue,
    Done(T),
}

/// One request/response exchange: waits per `timeout`, resends, feeds datagrams to `feed`.
fn exchange<T>(
    name: &'static str,
    transport: &mut IkeTransport,
    clock: &dyn Clock,
    mut timeout: impl FnMut(Instant) -> Timeout,
    mut feed: impl FnMut(&[u8], &mut IkeTransport) -> Result<Step<T>, TunnelError>,
) -> Result<T, TunnelError> {
    let now = || clock.now();
    loop {
        let deadline = match timeout(clock.now()) {
            Timeout::WaitUntil(t) => t,
            Timeout::Resend(request) => {
                tracing::debug!("{name}: retransmitting");
                transport.send(&request)?;
                continue;
            }
            Timeout::GiveUp { tries, last_error } => {
                return Err(TunnelError::GaveUp {
                    exchange: name,
                    peer: transport.peer(),
                    tries,
                    last_error,
                });
            }
            Timeout::Idle => return Err(TunnelError::Idle { exchange: name }),
        };
        if let Some(message) = transport.recv_until(deadline, &now)?
            && let Step::Done(t) = feed(&message, transport)?
        {
            return Ok(t);
        }
    }
}

/// IKE_SA_INIT on 500, then IKE_AUTH on 4500; the child SA checked against our inner address
/// (the fixed one, or the one the responder assigned in its CP(CFG_REPLY)).
pub fn establish(
    cfg: IkeConfig,
    clock: &dyn Clock,
    rng: &mut dyn Entropy,
) -> Result<Established, TunnelError> {
    let mut transport = IkeTransport::bind(cfg.local, cfg.peer)?;
    let mut init = SaInitiator::new(
        InitiatorConfig {
            groups: cfg.groups.clone(),
            local: SocketAddr::from((cfg.local, IKE_PORT)),
            remote: SocketAddr::from((cfg.peer, IKE_PORT)),
            nonce_len: 32,
            retransmit: cfg.retransmit,
        },
        rng,
    )?;
    let t0 = clock.now();
    transport.send(&init.start(t0)?)?;
    let done = {
        let init = std::cell::RefCell::new(&mut init);
        exchange(
            "IKE_SA_INIT",
            &mut transport,
            clock,
            |now| init.borrow_mut().next_timeout(now),
            |m, tr| match init.borrow_mut().on_message(m, clock.now()) {
                Action::Established(done) => Ok(Step::Done(done)),
                Action::Send { request, why } => {
                    tracing::debug!(?why, "IKE_SA_INIT: sending a new request");
                    tr.send(&request)?;
                    Ok(Step::Continue)
                }
                Action::Drop(reason) => {
                    tracing::debug!("IKE_SA_INIT: dropped: {reason}");
                    Ok(Step::Continue)
                }
            },
        )?
    };
    let sa_init = clock.now().saturating_duration_since(t0);
    let after_sa_init = plan::after_sa_init(&done.nat)?;
    transport.float_to_nat_t();
    let (spi_i, spi_r) = (done.spi_i, done.spi_r);
    let inner = cfg.inner;
    let mut auth = AuthInitiator::new(
        *done,
        AuthConfig {
            credential: cfg.credential,
            trust: cfg.trust,
            peer_id: cfg.peer_id,
            local_ts: vec![plan::local_selector(inner)],
            remote_ts: cfg.remote_ts,
            initial_contact: true,
            request_address: inner == InnerAddress::FromResponder,
            retransmit: cfg.retransmit,
        },
        rng,
    )?;
    let t1 = clock.now();
    transport.send(&auth.start(t1)?)?;
    let auth_done = {
        let auth = std::cell::RefCell::new(&mut auth);
        exchange(
            "IKE_AUTH",
            &mut transport,
            clock,
            |now| auth.borrow_mut().next_timeout(now),
            |m, _| match auth.borrow_mut().on_message(m, clock.wall()) {
                AuthAction::Established(done) => Ok(Step::Done(done)),
                AuthAction::Failed(f) => Err(TunnelError::Auth(f)),
                AuthAction::Drop(reason) => {
                    tracing::debug!("IKE_AUTH: dropped: {reason}");
                    Ok(Step::Continue)
                }
            },
        )?
    };
    let handshake = Handshake {
        sa_init,
        auth: clock.now().saturating_duration_since(t1),
    };
    let done = *auth_done;
    let child = done.child.map_err(TunnelError::Child)?;
    let inner = plan::inner_address(inner, done.internal_address)?;
    plan::check_inner(&child.local_ts, inner)?;
    Ok(Established {
        transport,
        inner,
        child,
        keys: done.keys,
        next_msg_id: done.next_msg_id,
        ike: IkeSaInfo {
            spi_i,
            spi_r,
            peer_id: done.peer_id,
            after_sa_init,
        },
        handshake,
    })
}
