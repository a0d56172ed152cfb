//! The established IKE SA's life (RFC 7296 1.3-1.5, 2.3): INFORMATIONAL (liveness checks both
//! ways, Delete of the child SA or the IKE SA) and CREATE_CHILD_SA rekeying of the child SA
//! (ours, started by the caller when the ESP layer's soft lifetime says so, and the
//! responder's). A pure state machine: the caller feeds datagrams and ticks with the time and
//! sends the [`SaEvent::Send`] bytes; randomness for nonces and SPIs through [`Entropy`].
//!
//! ```text
//!  message ids: ours (requests we send) from AuthDone::next_msg_id, the peer's from 0;
//!  window size 1 each way: one request of ours outstanding, retransmitted per RetransmitPolicy;
//!  the peer's request id n-1 again -> our last response again; other ids -> dropped
//!  every message: SK payload, we seal with SK_ei (IV = our own counter), open with SK_er
//!  rekey:  SA(ESP, new SPI, AES-GCM-16-256, ESN none), Ni, TSi, TSr, N(REKEY_SA, old SPI)
//!          KEYMAT = prf+(SK_d, Ni | Nr), Ni = the CREATE_CHILD_SA initiator's nonce; no KE (no PFS)
//! ```
//!
//! The responder's IKE SA rekey (CREATE_CHILD_SA with SA of protocol IKE, Ni, KEi; RFC 7296
//! 1.3.2, 2.18) is answered with SA (AES-GCM-16-256, PRF_HMAC_SHA2_256, its KE group if 31 or
//! 19), Nr, KEr; SKEYSEED = prf(SK_d (old), g^ir | Ni | Nr); the new IKE SA's original
//! initiator is the responder (we seal with SK_er from then on), message ids restart at 0, the
//! child SA moves over, and the old IKE SA only answers the peer's Delete of it.
//!
//! Our own IKE SA rekey (after the lifetime given to [`IkeSa::with_ike_rekey`]; the caller
//! starts it with [`IkeSa::start_ike_rekey`] when [`IkeSa::ike_rekey_due`] says so):
//! CREATE_CHILD_SA with SA (protocol IKE, our new 8-byte SPI, AES-GCM-16-256,
//! PRF_HMAC_SHA2_256, the DH group), Ni, KEi; an INVALID_KE_PAYLOAD naming group 31 or 19 is
//! retried once with it. On the answer SKEYSEED = prf(SK_d (old), g^ir | Ni | Nr), we are the
//! new SA's original initiator, ids restart at 0, the child SA moves over and the old IKE SA
//! is deleted by an INFORMATIONAL Delete (module `retiring`).
//!
//! Rekey collisions (RFC 7296 2.8.1, 2.8.2): a rekey of the peer's for the same child SA (or
//! of the IKE SA) while ours is outstanding is answered; when our answer arrives the nonce
//! rule decides: the new SA of the exchange with the lowest of the four nonces is redundant
//! and its initiator deletes it; the initiator of the surviving one deletes the old SA.
//!
//! ```text
//!  ours lowest:   we delete our new SA; the peer's is current; the peer deletes the old one
//!  theirs lowest: ours is current; we delete the old SA; the peer deletes its new one
//! ```
//!
//! Not handled: PFS on a child rekey (a request with KE gets NO_PROPOSAL_CHOSEN), a new child
//! SA (NO_ADDITIONAL_SAS).

mod rekey_child;
mod rekey_ike;
mod retiring;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::child::{ChildSa, offer};
use crate::consts::{exchange, flags, payload as pt, protocol};
use crate::decode::decode;
use crate::dh::{DhGroup, DhPrivate};
use crate::encode::Header;
use crate::entropy::Entropy;
use crate::error::{DecodeError, EncodeError};
use crate::keys::IkeKeys;
use crate::payload::{Notify, Payload, Proposal, TrafficSelector};
use crate::retransmit::{Due, Retransmit, RetransmitPolicy};
use crate::sk::{self, SkKey};
use retiring::{RetireTick, Retiring};

/// N(REKEY_SA) (RFC 7296 3.10.1).
pub const REKEY_SA: u16 = 16393;

/// Timers of the established SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeSaConfig {
    /// Send a liveness check after this long without an authentic message from the peer.
    pub dpd_idle: Duration,
    /// Retransmission of our requests; when spent the peer is declared dead.
    pub retransmit: RetransmitPolicy,
    /// Bytes of our nonces (16..=256).
    pub nonce_len: usize,
}

/// The child SA the machine tracks: SPIs and selectors (keys go to the ESP layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildIds {
    pub spi_in: u32,
    pub spi_out: u32,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
}

impl ChildIds {
    pub fn of(c: &ChildSa) -> ChildIds {
        ChildIds {
            spi_in: c.spi_in,
            spi_out: c.spi_out,
            local_ts: c.local_ts.clone(),
            remote_ts: c.remote_ts.clone(),
        }
    }
}

/// What the caller must do.
#[derive(Debug)]
pub enum SaEvent {
    /// Send these bytes to the peer (UDP 4500, behind the non-ESP marker).
    Send(Vec<u8>),
    /// A successor child SA: install it (the old inbound SA keeps accepting until
    /// `ChildDeleted` names it). `new.keys.initiator_to_responder` is what we seal with.
    ChildRekeyed { old_spi_in: u32, new: ChildSa },
    /// The child SA with our inbound SPI `spi_in` is gone: remove it from the ESP layer.
    ChildDeleted { spi_in: u32, spi_out: u32 },
    /// The peer deleted the IKE SA (acknowledged): tear the tunnel down.
    IkeDeleted,
    /// Our request got no answer after every retransmission: tear the tunnel down.
    PeerDead { tries: u32 },
    /// Our rekey was refused (the notify type); the old SA stands, the caller may retry.
    RekeyRefused(u16),
    /// The IKE SA was rekeyed (by us if `ours`, else by the peer): these are its SPIs now
    /// (the old one stays until its Delete).
    IkeRekeyed { spi_i: u64, spi_r: u64, ours: bool },
    /// Our IKE SA rekey was refused or its answer unusable (the notify type); the old IKE SA
    /// stands and the rekey is tried again later.
    IkeRekeyRefused(u16),
    /// An old or redundant IKE SA is deleted (our Delete answered, or the peer's Delete).
    OldIkeDeleted { spi_i: u64, spi_r: u64 },
    /// A child rekey collision (RFC 7296 2.8.1) was lost: our new pair (`spi_in`) is redundant
    /// and being deleted; the peer's successor stays in use.
    ChildCollisionLost { spi_in: u32 },
}

/// Why a datagram was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaDrop {
    #[error("malformed: {0}")]
    Malformed(DecodeError),
    #[error("SPIs {spi_i:#018x}/{spi_r:#018x} are not this IKE SA's")]
    WrongSpi { spi_i: u64, spi_r: u64 },
    #[error("exchange type {0} is neither INFORMATIONAL nor CREATE_CHILD_SA")]
    WrongExchange(u8),
    #[error("not encrypted or does not open with SK_er: {0}")]
    Undecryptable(DecodeError),
    #[error("request id {got} outside the window (expected {expected})")]
    RequestOutOfWindow { got: u32, expected: u32 },
    #[error("response id {got} answers no outstanding request")]
    UnexpectedResponse { got: u32 },
    #[error("the IKE SA is closed")]
    Closed,
}

#[derive(Debug)]
enum Request {
    Liveness,
    Rekey {
        old: ChildIds,
        offered: Proposal,
        nonce_i: Vec<u8>,
    },
    DeleteChild {
        spi_in: u32,
        spi_out: u32,
    },
    IkeRekey {
        spi_i: u64,
        nonce_i: Vec<u8>,
        dh: DhPrivate,
    },
}

#[derive(Debug)]
struct NewIke {
    spi_i: u64,
    spi_r: u64,
    keys: IkeKeys,
}

/// The peer's new IKE SA, answered while our own IKE SA rekey was outstanding (2.8.2).
#[derive(Debug)]
struct Collided {
    new: NewIke,
    /// The lower of the two nonces of its exchange.
    low: Vec<u8>,
}

#[derive(Debug)]
struct Outstanding {
    msg_id: u32,
    bytes: Vec<u8>,
    timer: Retransmit,
    request: Request,
}

/// An established IKE SA (we are its original initiator).
#[derive(Debug)]
pub struct IkeSa {
    spi_i: u64,
    spi_r: u64,
    keys: IkeKeys,
    cfg: IkeSaConfig,
    next_out: u32,
    next_in: u32,
    last_response: Option<Vec<u8>>,
    outstanding: Option<Outstanding>,
    queue: VecDeque<Request>,
    last_heard: Instant,
    /// When this IKE SA was set up (our IKE rekey lifetime counts from here).
    born: Instant,
    iv: u64,
    child: ChildIds,
    /// We are the IKE SA's original initiator (flags, and which SK_e seals).
    initiator: bool,
    /// IKE SAs replaced (or made redundant by a collision), until deleted.
    retiring: Vec<Retiring>,
    /// The IKE SA the peer's rekey creates, switched to once the response is sealed.
    pending_ike: Option<Box<NewIke>>,
    /// The peer's IKE SA rekey answered while ours was outstanding.
    collided_ike: Option<Box<Collided>>,
    /// The peer's child rekey answered while ours was outstanding: its pair, its lower nonce.
    collided_child: Option<(ChildIds, Vec<u8>)>,
    /// Our IKE SA rekey: every this long, in this DH group; when it is due next.
    ike_rekey_every: Option<Duration>,
    ike_rekey_at: Option<Instant>,
    group: DhGroup,
    /// Replaced child SAs not yet deleted: (our inbound SPI, the peer's).
    retired: Vec<(u32, u32)>,
    closed: bool,
}

fn draw_spi(rng: &mut dyn Entropy) -> u32 {
    loop {
        let mut b = [0u8; 4];
        rng.fill(&mut b);
        let s = u32::from_be_bytes(b);
        if s >= 256 {
            return s;
        }
    }
}

fn notify_of(p: &[Payload], kind: u16) -> Option<&Notify> {
    p.iter().find_map(|p| match p {
        Payload::Notify(n) if n.kind == kind => Some(n),
        _ => None,
    })
}

/// A Delete payload's body (RFC 7296 3.11): protocol, SPI size, count, SPIs.
pub fn delete_body(proto: u8, spis: &[u32]) -> Payload {
    let mut body = vec![proto, if proto == protocol::IKE { 0 } else { 4 }];
    body.extend_from_slice(&(spis.len() as u16).to_be_bytes());
    for s in spis {
        body.extend_from_slice(&s.to_be_bytes());
    }
    Payload::Unknown {
        kind: pt::DELETE,
        body,
    }
}

/// Reads a Delete body: (protocol, 4-byte SPIs); `None` if its sizes disagree.
pub fn parse_delete(body: &[u8]) -> Option<(u8, Vec<u32>)> {
    let (&[proto, spi_size, c0, c1], rest) = body.split_first_chunk::<4>()?;
    let count = usize::from(u16::from_be_bytes([c0, c1]));
    if proto == protocol::IKE {
        return (spi_size == 0 && count == 0 && rest.is_empty()).then(|| (proto, Vec::new()));
    }
    if spi_size != 4 || rest.len() != 4 * count {
        return None;
    }
    let spis = rest
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some((proto, spis))
}

impl IkeSa {
    /// Continues IKE_AUTH's result: its SPIs, keys and next message id, the first child SA.
    pub fn new(
        spi_i: u64,
        spi_r: u64,
        keys: IkeKeys,
        next_msg_id: u32,
        child: ChildIds,
        cfg: IkeSaConfig,
        now: Instant,
    ) -> IkeSa {
        IkeSa {
            spi_i,
            spi_r,
            keys,
            cfg,
            next_out: next_msg_id,
            next_in: 0,
            last_response: None,
            outstanding: None,
            queue: VecDeque::new(),
            last_heard: now,
            born: now,
            // IKE_AUTH used IV 1 under SK_ei; everything after counts on from here.
            iv: 1 << 32,
            child,
            initiator: true,
            retiring: Vec::new(),
            pending_ike: None,
            collided_ike: None,
            collided_child: None,
            ike_rekey_every: None,
            ike_rekey_at: None,
            group: DhGroup::Curve25519,
            retired: Vec::new(),
            closed: false,
        }
    }

    /// The child SA now in use.
    pub fn child(&self) -> &ChildIds {
        &self.child
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The IKE SA's SPIs now (they change when the peer rekeys it).
    pub fn spis(&self) -> (u64, u64) {
        (self.spi_i, self.spi_r)
    }

    /// Our next request's message id and the peer's expected one.
    pub fn message_ids(&self) -> (u32, u32) {
        (self.next_out, self.next_in)
    }

    fn seal(
        &mut self,
        exch: u8,
        response: bool,
        msg_id: u32,
        inner: &[Payload],
    ) -> Result<Vec<u8>, EncodeError> {
        let header = Header {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            exchange: exch,
            flags: if self.initiator { flags::INITIATOR } else { 0 }
                | if response { flags::RESPONSE } else { 0 },
            msg_id,
        };
        self.iv += 1;
        let key = if self.initiator {
            &self.keys.sk_ei
        } else {
            &self.keys.sk_er
        };
        sk::seal(&header, inner, key, self.iv)
    }

    fn open_key(&self) -> &SkKey {
        if self.initiator {
            &self.keys.sk_er
        } else {
            &self.keys.sk_ei
        }
    }

    /// Asks for a successor of the current child SA (when the ESP layer's soft lifetime is
    /// reached); sent by the next [`IkeSa::tick`] once no other request of ours is outstanding.
    pub fn start_rekey(&mut self, rng: &mut dyn Entropy) {
        let busy = self
            .queue
            .iter()
            .chain(self.outstanding.as_ref().map(|o| &o.request))
            .any(|r| matches!(r, Request::Rekey { .. }));
        if busy || self.closed {
            return;
        }
        let mut nonce = vec![0u8; self.cfg.nonce_len.clamp(16, 256)];
        rng.fill(&mut nonce);
        self.queue.push_back(Request::Rekey {
            old: self.child.clone(),
            offered: offer(draw_spi(rng)),
            nonce_i: nonce,
        });
    }

    /// Whether a rekey of ours is queued or outstanding.
    pub fn rekeying(&self) -> bool {
        self.queue
            .iter()
            .chain(self.outstanding.as_ref().map(|o| &o.request))
            .any(|r| matches!(r, Request::Rekey { .. }))
    }

    fn payloads(&self, r: &Request) -> (u8, Vec<Payload>) {
        match r {
            Request::Liveness => (exchange::INFORMATIONAL, Vec::new()),
            Request::DeleteChild { spi_in, .. } => (
                exchange::INFORMATIONAL,
                vec![delete_body(protocol::ESP, &[*spi_in])],
            ),
            Request::IkeRekey { spi_i, nonce_i, dh } => (
                exchange::CREATE_CHILD_SA,
                rekey_ike::request_payloads(*spi_i, nonce_i, dh),
            ),
            Request::Rekey {
                old,
                offered,
                nonce_i,
            } => (
                exchange::CREATE_CHILD_SA,
                vec![
                    Payload::Notify(Notify {
                        protocol: protocol::ESP,
                        spi: old.spi_in.to_be_bytes().to_vec(),
                        kind: REKEY_SA,
                        data: Vec::new(),
                    }),
                    Payload::Sa(vec![offered.clone()]),
                    Payload::Nonce(nonce_i.clone()),
                    Payload::TsI(old.local_ts.clone()),
                    Payload::TsR(old.remote_ts.clone()),
                ],
            ),
        }
    }

    /// Timers at `now`: retransmission (or the peer declared dead), a queued request, a
    /// liveness check after `dpd_idle` of silence. Returns what to do and when to tick again.
    pub fn tick(&mut self, now: Instant) -> (Vec<SaEvent>, Instant) {
        let (mut ev, retiring_at) = self.tick_retiring(now);
        let (more, at) = self.tick_current(now);
        ev.extend(more);
        let mut next = retiring_at.map_or(at, |n| n.min(at));
        if let Some(r) = self.ike_rekey_at
            && !self.closed
        {
            next = next.min(r.max(now));
        }
        (ev, next)
    }

    /// Our Deletes of retiring IKE SAs: retransmitted, or the SA dropped when spent.
    fn tick_retiring(&mut self, now: Instant) -> (Vec<SaEvent>, Option<Instant>) {
        let mut ev = Vec::new();
        let mut next: Option<Instant> = None;
        self.retiring.retain_mut(|r| match r.tick(now) {
            RetireTick::Idle(t) => {
                next = match (next, t) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                true
            }
            RetireTick::Resend(b, t) => {
                ev.push(SaEvent::Send(b));
                next = Some(next.map_or(t, |n| n.min(t)));
                true
            }
            RetireTick::GiveUp => false,
        });
        (ev, next)
    }

    fn tick_current(&mut self, now: Instant) -> (Vec<SaEvent>, Instant) {
        let mut ev = Vec::new();
        let idle_at = self.last_heard + self.cfg.dpd_idle;
        if self.closed {
            return (ev, now + self.cfg.dpd_idle);
        }
        if let Some(o) = &mut self.outstanding {
            match o.timer.poll(now) {
                Due::WaitUntil(t) => return (ev, t.min(now + self.cfg.dpd_idle)),
                Due::Resend => {
                    ev.push(SaEvent::Send(o.bytes.clone()));
                    let next = now + o.timer.wait();
                    return (ev, next);
                }
                Due::GiveUp { tries } => {
                    self.closed = true;
                    ev.push(SaEvent::PeerDead { tries });
                    return (ev, now + self.cfg.dpd_idle);
                }
            }
        }
        if self.queue.is_empty() && now >= idle_at {
            self.queue.push_back(Request::Liveness);
        }
        if let Some(r) = self.queue.pop_front() {
            let (exch, inner) = self.payloads(&r);
            let id = self.next_out;
            // Our own payloads are small; an encoding failure drops the request.
            if let Ok(bytes) = self.seal(exch, false, id, &inner) {
                self.next_out = self.next_out.wrapping_add(1);
                let timer = Retransmit::sent(self.cfg.retransmit, now);
                let next = now + timer.wait();
                ev.push(SaEvent::Send(bytes.clone()));
                self.outstanding = Some(Outstanding {
                    msg_id: id,
                    bytes,
                    timer,
                    request: r,
                });
                return (ev, next);
            }
        }
        (ev, idle_at.max(now + Duration::from_millis(10)))
    }

    /// Feeds one datagram (the IKE message, without the non-ESP marker).
    pub fn on_message(
        &mut self,
        bytes: &[u8],
        now: Instant,
        rng: &mut dyn Entropy,
    ) -> Result<Vec<SaEvent>, SaDrop> {
        if self.closed {
            return Err(SaDrop::Closed);
        }
        let msg = decode(bytes).map_err(SaDrop::Malformed)?;
        let h = msg.header;
        if let Some(i) = self
            .retiring
            .iter()
            .position(|r| (h.spi_i, h.spi_r) == (r.spi_i, r.spi_r))
        {
            let (mut ev, gone) = self.retiring[i].on_message(bytes, &msg)?;
            if gone {
                self.retiring.remove(i);
                ev.push(SaEvent::OldIkeDeleted {
                    spi_i: h.spi_i,
                    spi_r: h.spi_r,
                });
            }
            self.last_heard = now;
            return Ok(ev);
        }
        if h.spi_i != self.spi_i || h.spi_r != self.spi_r {
            return Err(SaDrop::WrongSpi {
                spi_i: h.spi_i,
                spi_r: h.spi_r,
            });
        }
        if h.exchange != exchange::INFORMATIONAL && h.exchange != exchange::CREATE_CHILD_SA {
            return Err(SaDrop::WrongExchange(h.exchange));
        }
        if msg.is_response() {
            match &self.outstanding {
                Some(o) if o.msg_id == h.msg_id => {}
                _ => return Err(SaDrop::UnexpectedResponse { got: h.msg_id }),
            }
        } else if h.msg_id.wrapping_add(1) == self.next_in {
            // A retransmission of the peer's last request: the same answer (RFC 7296 2.3).
            sk::open(bytes, &msg, self.open_key()).map_err(SaDrop::Undecryptable)?;
            self.last_heard = now;
            return Ok(self
                .last_response
                .iter()
                .cloned()
                .map(SaEvent::Send)
                .collect());
        } else if h.msg_id != self.next_in {
            return Err(SaDrop::RequestOutOfWindow {
                got: h.msg_id,
                expected: self.next_in,
            });
        }
        let inner = sk::open(bytes, &msg, self.open_key()).map_err(SaDrop::Undecryptable)?;
        self.last_heard = now;
        if msg.is_response() {
            let o = self
                .outstanding
                .take()
                .ok_or(SaDrop::UnexpectedResponse { got: h.msg_id })?;
            return Ok(self.on_response(o.request, &inner, h.exchange, now));
        }
        let mut ev = Vec::new();
        let (reply, extra) = if h.exchange == exchange::INFORMATIONAL {
            self.answer_informational(&inner)
        } else {
            self.answer_create_child(&inner, rng)
        };
        let id = self.next_in;
        // Our own payloads are small; an encoding failure leaves the peer to retransmit.
        if let Ok(b) = self.seal(h.exchange, true, id, &reply) {
            self.next_in = self.next_in.wrapping_add(1);
            self.last_response = Some(b.clone());
            ev.push(SaEvent::Send(b));
        }
        if let Some(SaEvent::IkeRekeyed { .. }) = extra.first()
            && let Some(next) = self.pending_ike.take()
        {
            // The peer's rekey: it is the new SA's initiator and deletes the old one.
            ev.extend(self.switch_to(*next, false, false, now));
        }
        if matches!(extra.last(), Some(SaEvent::IkeDeleted))
            && let Some(c) = self.collided_ike.take()
        {
            // Both of us rekeyed and the peer, having won, deletes the old SA before our
            // answer came (RFC 7296 2.8.2): its new SA is the successor, ours is moot.
            ev.extend(self.adopt_collided_after_delete(*c, now));
            return Ok(ev);
        }
        ev.extend(extra);
        if matches!(ev.last(), Some(SaEvent::IkeDeleted)) {
            self.closed = true;
        }
        Ok(ev)
    }

    fn answer_informational(&mut self, inner: &[Payload]) -> (Vec<Payload>, Vec<SaEvent>) {
        let mut reply = Vec::new();
        let mut ev = Vec::new();
        for p in inner {
            let Payload::Unknown { kind, body } = p else {
                continue;
            };
            if *kind != pt::DELETE {
                continue;
            }
            match parse_delete(body) {
                Some((protocol::IKE, _)) => {
                    return (Vec::new(), vec![SaEvent::IkeDeleted]);
                }
                Some((protocol::ESP, spis)) => {
                    let mut ours = Vec::new();
                    for spi_out in spis {
                        if spi_out == self.child.spi_out {
                            ours.push(self.child.spi_in);
                            ev.push(SaEvent::ChildDeleted {
                                spi_in: self.child.spi_in,
                                spi_out,
                            });
                        } else if let Some(i) = self.retired.iter().position(|r| r.1 == spi_out) {
                            let (spi_in, spi_out) = self.retired.remove(i);
                            ours.push(spi_in);
                            ev.push(SaEvent::ChildDeleted { spi_in, spi_out });
                        } else if let Some((spi_in, _)) = self.deleting(spi_out) {
                            ours.push(spi_in);
                        }
                    }
                    if !ours.is_empty() {
                        reply.push(delete_body(protocol::ESP, &ours));
                    }
                }
                _ => {}
            }
        }
        (reply, ev)
    }

    /// An old child SA of ours we are deleting ourselves (a delete collision, RFC 7296 1.4.1).
    fn deleting(&self, spi_out: u32) -> Option<(u32, u32)> {
        self.outstanding
            .as_ref()
            .map(|o| &o.request)
            .into_iter()
            .chain(self.queue.iter())
            .find_map(|r| match r {
                Request::DeleteChild { spi_in, spi_out: s } if *s == spi_out => Some((*spi_in, *s)),
                _ => None,
            })
    }

    fn on_response(
        &mut self,
        r: Request,
        inner: &[Payload],
        exch: u8,
        now: Instant,
    ) -> Vec<SaEvent> {
        match r {
            Request::IkeRekey { spi_i, nonce_i, dh } => {
                self.on_ike_rekey_response(spi_i, nonce_i, dh, inner, exch, now)
            }
            Request::Liveness => Vec::new(),
            Request::DeleteChild { spi_in, spi_out } => {
                self.retired.retain(|r| r.0 != spi_in);
                vec![SaEvent::ChildDeleted { spi_in, spi_out }]
            }
            Request::Rekey {
                old,
                offered,
                nonce_i,
            } => self.on_child_rekey_response(old, offered, nonce_i, inner, exch),
        }
    }
}
