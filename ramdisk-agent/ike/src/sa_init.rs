//! The initiator's IKE_SA_INIT exchange (RFC 7296 1.2, 2.6, 2.7) as a pure state machine:
//! the caller owns the socket and the clock, feeds datagrams to [`SaInitiator::on_message`]
//! and the time to [`SaInitiator::next_timeout`], and sends what they return.

use std::net::SocketAddr;
use std::time::Instant;

use crate::consts::{exchange, flags, hash, notify as nt, protocol};
use crate::decode::{Message, decode};
use crate::dh::{DhGroup, DhPrivate};
use crate::encode::{Header, encode_message};
use crate::entropy::Entropy;
use crate::error::{CryptoError, EncodeError};
use crate::keys::IkeKeys;
use crate::nat::{NatDetection, nat_detection_hash};
use crate::payload::{Notify, Payload, Proposal, Transform};
use crate::retransmit::{Due, Retransmit, RetransmitPolicy};
use crate::sa_init_check::{DropReason, accept};

/// What the initiator offers and where it talks.
#[derive(Debug, Clone)]
pub struct InitiatorConfig {
    /// DH groups in preference order; the KE payload carries the first (non-empty).
    pub groups: Vec<DhGroup>,
    /// Our address and the responder's, for the NAT detection notifies.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Nonce length in bytes (16..=256; RFC 7296 2.10 wants at least half the PRF key size).
    pub nonce_len: usize,
    pub retransmit: RetransmitPolicy,
}

/// Cookie rounds accepted before the responder is treated as broken.
pub const MAX_COOKIE_ROUNDS: u8 = 3;

/// Why the exchange could not even start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("no DH group configured: offer at least one of 31 (x25519) or 19 (ecp256)")]
    NoGroups,
    #[error("nonce length {0} is outside 16..=256 (RFC 7296 2.10)")]
    NonceLength(usize),
    #[error("the entropy source gave an all-zero initiator SPI; check the system RNG")]
    ZeroSpi,
    #[error("start() was called twice")]
    AlreadyStarted,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Why a new request goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// The responder asked for a cookie (RFC 7296 2.6).
    Cookie,
    /// The responder wants this DH group (INVALID_KE_PAYLOAD, RFC 7296 1.2).
    InvalidKe { group: u16 },
}

/// The result of feeding one datagram.
#[derive(Debug)]
pub enum Action {
    /// Send this new request (the retransmission timer restarted).
    Send { request: Vec<u8>, why: Resend },
    /// The exchange is done: the IKE SA's keys and what IKE_AUTH needs.
    Established(Box<SaInitDone>),
    /// The datagram was ignored; the exchange goes on.
    Drop(DropReason),
}

/// What the timer says (see [`SaInitiator::next_timeout`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Timeout {
    /// Nothing is outstanding (not started, or finished).
    Idle,
    WaitUntil(Instant),
    /// Send this (the same request) again now.
    Resend(Vec<u8>),
    /// The exchange failed after `tries` retransmissions; `last_error` is the last
    /// unauthenticated error notify seen, if any (RFC 7296 2.21.1: not acted on at once).
    GiveUp {
        tries: u32,
        last_error: Option<u16>,
    },
}

/// The completed IKE_SA_INIT.
#[derive(Debug)]
pub struct SaInitDone {
    pub spi_i: u64,
    pub spi_r: u64,
    pub group: DhGroup,
    pub nonce_i: Vec<u8>,
    pub nonce_r: Vec<u8>,
    pub keys: IkeKeys,
    /// Our last request and the response, signed in IKE_AUTH (RFC 7296 2.15).
    pub request: Vec<u8>,
    pub response: Vec<u8>,
    /// The responder asked for certificates (CERTREQ present).
    pub cert_requested: bool,
    /// The hash algorithms of the responder's SIGNATURE_HASH_ALGORITHMS (RFC 7427 4), empty
    /// if it sent none (then IKE_AUTH signs with method 9, RFC 4754).
    pub peer_signature_hashes: Vec<u16>,
    /// The NAT detection result (RFC 7296 2.23).
    pub nat: NatDetection,
}

/// The hash algorithms we announce for RFC 7427 signatures (what we verify): SHA2-256 (ECDSA
/// P-256, RSA) and Identity (Ed25519, RFC 8420 2).
pub const SIGNATURE_HASHES: [u16; 2] = [hash::SHA2_256, hash::IDENTITY];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    New,
    ExpectResponse,
    Done,
}

/// The initiator of one IKE_SA_INIT exchange.
#[derive(Debug)]
pub struct SaInitiator {
    cfg: InitiatorConfig,
    phase: Phase,
    spi_i: u64,
    nonce_i: Vec<u8>,
    dh: Option<DhPrivate>,
    tried: Vec<DhGroup>,
    cookie: Option<Vec<u8>>,
    cookie_rounds: u8,
    request: Vec<u8>,
    timer: Option<Retransmit>,
    last_error: Option<u16>,
}

impl SaInitiator {
    /// Draws the initiator SPI and nonce from `rng`.
    pub fn new(cfg: InitiatorConfig, rng: &mut dyn Entropy) -> Result<SaInitiator, StartError> {
        if cfg.groups.is_empty() {
            return Err(StartError::NoGroups);
        }
        if !(16..=256).contains(&cfg.nonce_len) {
            return Err(StartError::NonceLength(cfg.nonce_len));
        }
        let mut spi = [0u8; 8];
        rng.fill(&mut spi);
        let spi_i = u64::from_be_bytes(spi);
        if spi_i == 0 {
            return Err(StartError::ZeroSpi);
        }
        let mut nonce_i = vec![0u8; cfg.nonce_len];
        rng.fill(&mut nonce_i);
        Ok(SaInitiator {
            cfg,
            phase: Phase::New,
            spi_i,
            nonce_i,
            dh: None,
            tried: Vec::new(),
            cookie: None,
            cookie_rounds: 0,
            request: Vec::new(),
            timer: None,
            last_error: None,
        })
    }

    pub fn spi_i(&self) -> u64 {
        self.spi_i
    }

    /// The first request, KE in the most preferred group.
    pub fn start(&mut self, now: Instant) -> Result<Vec<u8>, StartError> {
        if self.phase != Phase::New {
            return Err(StartError::AlreadyStarted);
        }
        let group = self.cfg.groups[0];
        self.dh = Some(DhPrivate::generate(group)?);
        self.tried.push(group);
        self.rebuild(now)?;
        self.phase = Phase::ExpectResponse;
        Ok(self.request.clone())
    }

    /// The SA payload: one IKE proposal with every offered group.
    pub(crate) fn offered(&self) -> Proposal {
        let mut transforms = vec![Transform::AES256_GCM16, Transform::PRF_SHA256];
        transforms.extend(self.cfg.groups.iter().map(|g| Transform::dh(g.number())));
        Proposal {
            num: 1,
            protocol: protocol::IKE,
            spi: Vec::new(),
            transforms,
        }
    }

    fn rebuild(&mut self, now: Instant) -> Result<(), EncodeError> {
        let Some(dh) = &self.dh else { return Ok(()) };
        let header = Header {
            spi_i: self.spi_i,
            spi_r: 0,
            exchange: exchange::IKE_SA_INIT,
            flags: flags::INITIATOR,
            msg_id: 0,
        };
        let mut p = Vec::with_capacity(6);
        if let Some(c) = &self.cookie {
            p.push(Payload::Notify(Notify::ike(nt::COOKIE, c.clone())));
        }
        p.push(Payload::Sa(vec![self.offered()]));
        p.push(Payload::Ke {
            group: dh.group().number(),
            data: dh.public().to_vec(),
        });
        p.push(Payload::Nonce(self.nonce_i.clone()));
        let src = nat_detection_hash(self.spi_i, 0, self.cfg.local);
        let dst = nat_detection_hash(self.spi_i, 0, self.cfg.remote);
        p.push(Payload::Notify(Notify::ike(
            nt::NAT_DETECTION_SOURCE_IP,
            src,
        )));
        p.push(Payload::Notify(Notify::ike(
            nt::NAT_DETECTION_DESTINATION_IP,
            dst,
        )));
        let hashes = SIGNATURE_HASHES
            .iter()
            .flat_map(|h| h.to_be_bytes())
            .collect();
        p.push(Payload::Notify(Notify::ike(
            nt::SIGNATURE_HASH_ALGORITHMS,
            hashes,
        )));
        self.request = encode_message(&header, &p)?;
        self.timer = Some(Retransmit::sent(self.cfg.retransmit, now));
        Ok(())
    }

    /// Feeds one received datagram.
    pub fn on_message(&mut self, bytes: &[u8], now: Instant) -> Action {
        if self.phase != Phase::ExpectResponse {
            return Action::Drop(DropReason::NotExpecting);
        }
        let msg = match decode(bytes) {
            Ok(m) => m,
            Err(e) => return Action::Drop(DropReason::Malformed(e)),
        };
        if let Err(r) = self.check_header(&msg) {
            return Action::Drop(r);
        }
        if let Some(c) = msg.notifies().find(|n| n.kind == nt::COOKIE) {
            return self.retry_with_cookie(c.data.clone(), now);
        }
        if let Some(n) = msg.notifies().find(|n| n.kind == nt::INVALID_KE_PAYLOAD) {
            return self.retry_with_group(&n.data, now);
        }
        if let Some(n) = msg.notifies().find(|n| n.is_error()) {
            self.last_error = Some(n.kind);
            return Action::Drop(DropReason::ErrorNotify(n.kind));
        }
        let offered = self.offered();
        match accept(&msg, &offered, &mut self.dh, &self.nonce_i) {
            Ok((group, nonce_r, keys, cert_requested)) => {
                let nat = self.nat_detection(&msg);
                let peer_signature_hashes = peer_hashes(&msg);
                self.phase = Phase::Done;
                self.timer = None;
                Action::Established(Box::new(SaInitDone {
                    spi_i: self.spi_i,
                    spi_r: msg.header.spi_r,
                    group,
                    nonce_i: self.nonce_i.clone(),
                    nonce_r,
                    keys,
                    request: self.request.clone(),
                    response: bytes.to_vec(),
                    cert_requested,
                    peer_signature_hashes,
                    nat,
                }))
            }
            Err(reason) => Action::Drop(reason),
        }
    }

    fn nat_detection(&self, msg: &Message) -> NatDetection {
        let data = |kind| -> Vec<&[u8]> {
            msg.notifies()
                .filter(|n| n.kind == kind)
                .map(|n| n.data.as_slice())
                .collect()
        };
        NatDetection::evaluate(
            self.spi_i,
            msg.header.spi_r,
            self.cfg.local,
            self.cfg.remote,
            &data(nt::NAT_DETECTION_SOURCE_IP),
            &data(nt::NAT_DETECTION_DESTINATION_IP),
        )
    }

    fn check_header(&self, msg: &Message) -> Result<(), DropReason> {
        let h = &msg.header;
        if h.exchange != exchange::IKE_SA_INIT {
            return Err(DropReason::WrongExchange(h.exchange));
        }
        if !msg.is_response() || h.flags & flags::INITIATOR != 0 {
            return Err(DropReason::NotAResponse { flags: h.flags });
        }
        if h.spi_i != self.spi_i {
            return Err(DropReason::WrongSpi { got: h.spi_i });
        }
        if h.msg_id != 0 {
            return Err(DropReason::WrongMessageId(h.msg_id));
        }
        if msg.sk.is_some() {
            return Err(DropReason::Unexpected("an SK payload in IKE_SA_INIT"));
        }
        Ok(())
    }

    fn retry_with_cookie(&mut self, cookie: Vec<u8>, now: Instant) -> Action {
        if cookie.is_empty() || cookie.len() > 64 {
            return Action::Drop(DropReason::BadCookie { len: cookie.len() });
        }
        if self.cookie_rounds >= MAX_COOKIE_ROUNDS {
            return Action::Drop(DropReason::TooManyCookies);
        }
        self.cookie_rounds += 1;
        self.cookie = Some(cookie);
        self.resend(Resend::Cookie, now)
    }

    fn retry_with_group(&mut self, data: &[u8], now: Instant) -> Action {
        let Ok(n) = <[u8; 2]>::try_from(data) else {
            return Action::Drop(DropReason::Unexpected(
                "INVALID_KE_PAYLOAD data is not 2 bytes",
            ));
        };
        let number = u16::from_be_bytes(n);
        let Some(group) = DhGroup::from_number(number).filter(|g| self.cfg.groups.contains(g))
        else {
            return Action::Drop(DropReason::GroupNotOffered(number));
        };
        if self.tried.contains(&group) {
            return Action::Drop(DropReason::GroupAlreadyTried(number));
        }
        match DhPrivate::generate(group) {
            Ok(dh) => self.dh = Some(dh),
            Err(e) => return Action::Drop(DropReason::Crypto(e)),
        }
        self.tried.push(group);
        self.resend(Resend::InvalidKe { group: number }, now)
    }

    fn resend(&mut self, why: Resend, now: Instant) -> Action {
        match self.rebuild(now) {
            Ok(()) => Action::Send {
                request: self.request.clone(),
                why,
            },
            Err(e) => Action::Drop(DropReason::Encode(e)),
        }
    }

    /// The retransmission decision at `now`.
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
                    last_error: self.last_error,
                }
            }
        }
    }
}

/// The 2-byte hash ids of the responder's SIGNATURE_HASH_ALGORITHMS (an odd trailing byte is
/// ignored).
fn peer_hashes(msg: &Message) -> Vec<u16> {
    msg.notifies()
        .filter(|n| n.kind == nt::SIGNATURE_HASH_ALGORITHMS)
        .flat_map(|n| n.data.chunks_exact(2))
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}
