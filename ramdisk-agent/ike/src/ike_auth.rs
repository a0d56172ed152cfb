//! The initiator's IKE_AUTH exchange (RFC 7296 1.2, 2.15) with certificates, continuing
//! [`crate::SaInitiator`]: IDi, CERT, N(INITIAL_CONTACT), CERTREQ, AUTH, SA (ESP,
//! AES-GCM-16-256, no ESN), TSi, TSr in an SK payload sealed with SK_ei; the response is
//! opened with SK_er and checked by [`crate::ike_auth_check`]. A pure state machine like the
//! IKE_SA_INIT one: the caller sends what it returns and feeds datagrams and the time.
//!
//! With [`AuthConfig::request_address`] the request also carries CP(CFG_REQUEST) for an
//! INTERNAL_IP4_ADDRESS (RFC 7296 3.15) and the responder's CP(CFG_REPLY) gives the inner
//! address ([`AuthDone::internal_address`]).
//!
//! The state machine does not care about ports: the caller (agent-ipsec) floats IKE_AUTH to
//! UDP 4500 with the non-ESP marker (RFC 7296 2.23).

use std::net::Ipv4Addr;
use std::time::{Instant, SystemTime};

use crate::cert::{CertError, LocalCredential, PeerCert, PeerTrust, certreq_hash};
use crate::child::{ChildSa, offer};
use crate::consts::{cert as ct, exchange, flags, notify as nt};
use crate::decode::{Message, decode};
use crate::encode::Header;
use crate::entropy::Entropy;
use crate::error::{DecodeError, EncodeError};
use crate::ike_auth_check::{AuthFailure, ChildFailure, Context, check};
use crate::keys::IkeKeys;
use crate::nat::NatDetection;
use crate::payload::{Config, Identity, Notify, Payload, Proposal, TrafficSelector};
use crate::retransmit::{Due, Retransmit, RetransmitPolicy};
use crate::sa_init::{SaInitDone, Timeout};
use crate::signature::KeyError;
use crate::signed_octets::signed_octets;
use crate::sk;

/// The message id of IKE_AUTH (the second exchange of the IKE SA).
pub const AUTH_MSG_ID: u32 = 1;

/// What we authenticate with, whom we trust, and the child SA we ask for.
#[derive(Debug)]
pub struct AuthConfig {
    pub credential: LocalCredential,
    pub trust: PeerTrust,
    /// The IDr the responder must present, if the caller knows it (else any identity its
    /// certificate names).
    pub peer_id: Option<Identity>,
    /// TSi: the agent's inner address(es); with `request_address`, the range the assigned
    /// address may come from (0.0.0.0-255.255.255.255 for any), narrowed by the responder.
    pub local_ts: Vec<TrafficSelector>,
    /// TSr: the tenant networks.
    pub remote_ts: Vec<TrafficSelector>,
    /// Send N(INITIAL_CONTACT): the responder drops older IKE SAs with our identity.
    pub initial_contact: bool,
    /// Send CP(CFG_REQUEST) with an empty INTERNAL_IP4_ADDRESS (RFC 7296 3.15, a "virtual
    /// IP"): the responder assigns the inner address, reported in [`AuthDone::internal_address`].
    /// Without it the inner address is the caller's, in `local_ts`.
    pub request_address: bool,
    pub retransmit: RetransmitPolicy,
}

/// Why IKE_AUTH could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthStartError {
    #[error("start() was called twice")]
    AlreadyStarted,
    #[error(
        "no traffic selectors: give the agent's inner address (TSi) and the tenant networks (TSr)"
    )]
    NoSelectors,
    #[error("the entropy source gave no ESP SPI above 255; check the system RNG")]
    BadSpi,
    #[error("the trusted CA: {0}")]
    Ca(CertError),
    #[error("signing AUTH: {0}")]
    Key(KeyError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Why a datagram was ignored (unauthenticated or not ours; the exchange goes on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthDrop {
    #[error("no IKE_AUTH response is expected now")]
    NotExpecting,
    #[error("malformed: {0}")]
    Malformed(DecodeError),
    #[error("exchange type {0} is not IKE_AUTH (35)")]
    WrongExchange(u8),
    #[error("not a response (flags {flags:#04x})")]
    NotAResponse { flags: u8 },
    #[error("SPIs {spi_i:#018x}/{spi_r:#018x} are not this IKE SA's")]
    WrongSpi { spi_i: u64, spi_r: u64 },
    #[error("message id {0} is not 1")]
    WrongMessageId(u32),
    #[error("the response is not encrypted (unauthenticated, RFC 7296 2.21.2)")]
    NotEncrypted,
    #[error("the SK payload does not open with SK_er: {0}")]
    Undecryptable(DecodeError),
}

/// The result of feeding one datagram.
#[derive(Debug)]
pub enum AuthAction {
    /// The IKE SA is authenticated both ways; the child SA is in [`AuthDone::child`].
    Established(Box<AuthDone>),
    /// The IKE SA failed (authenticated response: final).
    Failed(AuthFailure),
    /// The datagram was ignored.
    Drop(AuthDrop),
}

/// An established IKE SA and its first child SA.
#[derive(Debug)]
pub struct AuthDone {
    pub spi_i: u64,
    pub spi_r: u64,
    /// The IKE SA's keys, for the exchanges that follow (message id `next_msg_id` on).
    pub keys: IkeKeys,
    pub next_msg_id: u32,
    pub peer_id: Identity,
    pub peer_cert: PeerCert,
    /// The responder's AUTH method (14, RFC 7427, or 9, RFC 4754).
    pub peer_auth_method: u8,
    /// From IKE_SA_INIT. If `detected()`, ESP must be UDP-encapsulated on 4500 (next slice).
    pub nat: NatDetection,
    /// The inner address the responder assigned in CP(CFG_REPLY), when we asked for one
    /// (`AuthConfig::request_address`); if we asked and got none, `child` says so.
    pub internal_address: Option<Ipv4Addr>,
    /// The child SA, or why the responder did not create it (the IKE SA stands either way).
    pub child: Result<ChildSa, ChildFailure>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    New,
    ExpectResponse,
    Done,
}

/// The initiator of one IKE_AUTH exchange.
#[derive(Debug)]
pub struct AuthInitiator {
    init: SaInitDone,
    cfg: AuthConfig,
    offered: Proposal,
    phase: Phase,
    request: Vec<u8>,
    timer: Option<Retransmit>,
}

impl AuthInitiator {
    /// Draws our inbound ESP SPI from `rng` (256.., RFC 4303 2.1).
    pub fn new(
        init: SaInitDone,
        cfg: AuthConfig,
        rng: &mut dyn Entropy,
    ) -> Result<AuthInitiator, AuthStartError> {
        if cfg.local_ts.is_empty() || cfg.remote_ts.is_empty() {
            return Err(AuthStartError::NoSelectors);
        }
        let spi = (0..8)
            .map(|_| {
                let mut b = [0u8; 4];
                rng.fill(&mut b);
                u32::from_be_bytes(b)
            })
            .find(|s| *s >= 256)
            .ok_or(AuthStartError::BadSpi)?;
        Ok(AuthInitiator {
            init,
            cfg,
            offered: offer(spi),
            phase: Phase::New,
            request: Vec::new(),
            timer: None,
        })
    }

    /// Our inbound ESP SPI (in the SA payload we send).
    pub fn spi_in(&self) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.offered.spi);
        u32::from_be_bytes(b)
    }

    /// The inner payloads of the request, in RFC 7296 1.2's order.
    fn payloads(&self) -> Result<Vec<Payload>, AuthStartError> {
        let cred = &self.cfg.credential;
        let idi = cred.identity();
        let octets = signed_octets(
            &self.init.request,
            &self.init.nonce_r,
            &self.init.keys.sk_pi,
            &idi,
        );
        let (method, data) = cred
            .key()
            .auth(&octets, &self.init.peer_signature_hashes)
            .map_err(AuthStartError::Key)?;
        let certreq = match &self.cfg.trust {
            PeerTrust::Ca(ca) => certreq_hash(ca).map_err(AuthStartError::Ca)?,
            // No CA to name; an empty CERTREQ still asks for the certificate.
            PeerTrust::Pin(_) => Vec::new(),
        };
        let mut p = vec![
            Payload::IdI(idi),
            Payload::Cert {
                encoding: ct::X509_SIGNATURE,
                data: cred.cert_der().to_vec(),
            },
        ];
        if self.cfg.initial_contact {
            p.push(Payload::Notify(Notify::ike(
                nt::INITIAL_CONTACT,
                Vec::new(),
            )));
        }
        p.push(Payload::CertReq {
            encoding: ct::X509_SIGNATURE,
            data: certreq,
        });
        p.push(Payload::Auth { method, data });
        if self.cfg.request_address {
            p.push(Payload::Cp(Config::request_ipv4_address()));
        }
        p.push(Payload::Sa(vec![self.offered.clone()]));
        p.push(Payload::TsI(self.cfg.local_ts.clone()));
        p.push(Payload::TsR(self.cfg.remote_ts.clone()));
        Ok(p)
    }

    /// The IKE_AUTH request (message id 1, sealed with SK_ei).
    pub fn start(&mut self, now: Instant) -> Result<Vec<u8>, AuthStartError> {
        if self.phase != Phase::New {
            return Err(AuthStartError::AlreadyStarted);
        }
        let header = Header {
            spi_i: self.init.spi_i,
            spi_r: self.init.spi_r,
            exchange: exchange::IKE_AUTH,
            flags: flags::INITIATOR,
            msg_id: AUTH_MSG_ID,
        };
        let inner = self.payloads()?;
        // The IV is the message id: unique under SK_ei, a retransmission resends the bytes.
        self.request = sk::seal(
            &header,
            &inner,
            &self.init.keys.sk_ei,
            u64::from(AUTH_MSG_ID),
        )?;
        self.timer = Some(Retransmit::sent(self.cfg.retransmit, now));
        self.phase = Phase::ExpectResponse;
        Ok(self.request.clone())
    }

    /// Feeds one received datagram; `wall` is the time certificates must be valid at.
    pub fn on_message(&mut self, bytes: &[u8], wall: SystemTime) -> AuthAction {
        if self.phase != Phase::ExpectResponse {
            return AuthAction::Drop(AuthDrop::NotExpecting);
        }
        let msg = match decode(bytes) {
            Ok(m) => m,
            Err(e) => return AuthAction::Drop(AuthDrop::Malformed(e)),
        };
        if let Err(d) = self.check_header(&msg) {
            return AuthAction::Drop(d);
        }
        let inner = match sk::open(bytes, &msg, &self.init.keys.sk_er) {
            Ok(p) => p,
            Err(e) => return AuthAction::Drop(AuthDrop::Undecryptable(e)),
        };
        // From here on the response is authentic: whatever it says ends the exchange.
        self.phase = Phase::Done;
        self.timer = None;
        let cx = Context {
            response1: &self.init.response,
            nonce_i: &self.init.nonce_i,
            nonce_r: &self.init.nonce_r,
            sk_pr: &self.init.keys.sk_pr,
            sk_d: &self.init.keys.sk_d,
            trust: &self.cfg.trust,
            peer_id: self.cfg.peer_id.as_ref(),
            offered: &self.offered,
            local_ts: &self.cfg.local_ts,
            remote_ts: &self.cfg.remote_ts,
            request_address: self.cfg.request_address,
            wall,
        };
        match check(&inner, &cx) {
            Ok(c) => AuthAction::Established(Box::new(AuthDone {
                spi_i: self.init.spi_i,
                spi_r: self.init.spi_r,
                keys: self.init.keys.clone(),
                next_msg_id: AUTH_MSG_ID + 1,
                peer_id: c.peer_id,
                peer_cert: c.peer_cert,
                peer_auth_method: c.auth_method,
                nat: self.init.nat,
                internal_address: c.internal_address,
                child: c.child,
            })),
            Err(f) => AuthAction::Failed(f),
        }
    }

    fn check_header(&self, msg: &Message) -> Result<(), AuthDrop> {
        let h = &msg.header;
        if h.exchange != exchange::IKE_AUTH {
            return Err(AuthDrop::WrongExchange(h.exchange));
        }
        if !msg.is_response() || h.flags & flags::INITIATOR != 0 {
            return Err(AuthDrop::NotAResponse { flags: h.flags });
        }
        if h.spi_i != self.init.spi_i || h.spi_r != self.init.spi_r {
            return Err(AuthDrop::WrongSpi {
                spi_i: h.spi_i,
                spi_r: h.spi_r,
            });
        }
        if h.msg_id != AUTH_MSG_ID {
            return Err(AuthDrop::WrongMessageId(h.msg_id));
        }
        if msg.sk.is_none() {
            return Err(AuthDrop::NotEncrypted);
        }
        Ok(())
    }

    /// The retransmission decision at `now` (same bytes again, RFC 7296 2.1).
    pub fn next_timeout(&mut self, now: Instant) -> Timeout {
        if self.phase != Phase::ExpectResponse {
            return Timeout::Idle;
        }
        let Some(timer) = &mut self.timer else {
            return Timeout::Idle;
        };
        match timer.poll(now) {
            Due::WaitUntil(t) => Timeout::WaitUntil(t),
            Due::Resend => Timeout::Resend(self.request.clone()),
            Due::GiveUp { tries } => {
                self.phase = Phase::Done;
                Timeout::GiveUp {
                    tries,
                    last_error: None,
                }
            }
        }
    }
}
