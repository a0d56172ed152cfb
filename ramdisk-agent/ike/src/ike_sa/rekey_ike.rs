//! IKE SA rekeying (RFC 7296 1.3.2, 2.18, 2.8.2): ours (request, answer, switch, Delete of the
//! old SA), the peer's (answered), and the collision of the two decided by the nonce rule.

use std::time::{Duration, Instant};

use crate::consts::{exchange, notify as nt, protocol, transform as tf};
use crate::dh::{DhGroup, DhPrivate};
use crate::entropy::Entropy;
use crate::keys::derive_rekeyed;
use crate::payload::{Notify, Payload, Proposal, Transform};

use super::{Collided, IkeSa, NewIke, Request, SaEvent, retiring::Retiring};

/// Retired IKE SAs kept at most (answering the peer's requests until deleted).
const MAX_RETIRING: usize = 4;

/// How soon a refused IKE SA rekey is tried again (at most; the lifetime if shorter).
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Our proposal for a new IKE SA: the transforms of IKE_SA_INIT with `group`.
fn our_transforms(group: u16) -> [Transform; 3] {
    [
        Transform::AES256_GCM16,
        Transform::PRF_SHA256,
        Transform::dh(group),
    ]
}

/// The payloads of our IKE SA rekey request: SA (IKE, our new SPI), Ni, KEi.
pub(super) fn request_payloads(spi_i: u64, nonce_i: &[u8], dh: &DhPrivate) -> Vec<Payload> {
    let group = dh.group().number();
    vec![
        Payload::Sa(vec![Proposal {
            num: 1,
            protocol: protocol::IKE,
            spi: spi_i.to_be_bytes().to_vec(),
            transforms: our_transforms(group).to_vec(),
        }]),
        Payload::Nonce(nonce_i.to_vec()),
        Payload::Ke {
            group,
            data: dh.public().to_vec(),
        },
    ]
}

/// The responder's SPI from its answer to our IKE proposal in `group`: exactly one proposal,
/// protocol IKE, an 8-byte nonzero SPI, exactly our three transforms.
fn answered_spi(sa: &[Proposal], group: u16) -> Option<u64> {
    let [p] = sa else {
        return None;
    };
    let spi = <[u8; 8]>::try_from(p.spi.as_slice())
        .ok()
        .map(u64::from_be_bytes)
        .filter(|s| *s != 0)?;
    let want = our_transforms(group);
    let exact = p.transforms.len() == want.len() && want.iter().all(|w| p.transforms.contains(w));
    (p.num == 1 && p.protocol == protocol::IKE && exact).then_some(spi)
}

/// Our IKE proposal for a rekey answer: the transforms of IKE_SA_INIT with the peer's group.
fn ike_choice(props: &[Proposal], group: u16) -> Option<(Proposal, u64)> {
    let want = [
        Transform::AES256_GCM16,
        Transform::PRF_SHA256,
        Transform::dh(group),
    ];
    props.iter().find_map(|p| {
        let spi = <[u8; 8]>::try_from(p.spi.as_slice())
            .ok()
            .map(u64::from_be_bytes)?;
        let ok = p.protocol == protocol::IKE
            && spi != 0
            && want.iter().all(|w| p.transforms.contains(w))
            && !p
                .transforms
                .iter()
                .any(|t| t.kind == tf::INTEG && t.id != 0);
        ok.then(|| {
            (
                Proposal {
                    num: p.num,
                    protocol: protocol::IKE,
                    spi: Vec::new(),
                    transforms: want.to_vec(),
                },
                spi,
            )
        })
    })
}

impl IkeSa {
    pub(super) fn answer_ike_rekey(
        &mut self,
        inner: &[Payload],
        rng: &mut dyn Entropy,
    ) -> (Vec<Payload>, Vec<SaEvent>) {
        let refuse =
            |n: u16, data: Vec<u8>| (vec![Payload::Notify(Notify::ike(n, data))], Vec::new());
        let mut sa = None;
        let mut nonce = None;
        let mut ke = None;
        for p in inner {
            match p {
                Payload::Sa(s) => sa = Some(s),
                Payload::Nonce(n) => nonce = Some(n),
                Payload::Ke { group, data } => ke = Some((*group, data)),
                _ => {}
            }
        }
        let (Some(sa), Some(ni), Some((group, kei))) = (sa, nonce, ke) else {
            return refuse(nt::INVALID_SYNTAX, Vec::new());
        };
        if !(16..=256).contains(&ni.len()) {
            return refuse(nt::INVALID_SYNTAX, Vec::new());
        }
        let Some(g) = DhGroup::from_number(group) else {
            // Ask for X25519 (RFC 7296 1.3.2: INVALID_KE_PAYLOAD names the group we want).
            return refuse(
                nt::INVALID_KE_PAYLOAD,
                DhGroup::Curve25519.number().to_be_bytes().to_vec(),
            );
        };
        let Some((mut chosen, spi_i)) = ike_choice(sa, group) else {
            return refuse(nt::NO_PROPOSAL_CHOSEN, Vec::new());
        };
        let mut spi_r = [0u8; 8];
        while u64::from_be_bytes(spi_r) == 0 {
            rng.fill(&mut spi_r);
        }
        let spi_r = u64::from_be_bytes(spi_r);
        let mut nr = vec![0u8; self.cfg.nonce_len.clamp(16, 256)];
        rng.fill(&mut nr);
        let Ok(private) = DhPrivate::generate(g) else {
            return refuse(nt::TEMPORARY_FAILURE, Vec::new());
        };
        let ker = private.public().to_vec();
        let Ok(shared) = private.agree(kei) else {
            return refuse(nt::INVALID_SYNTAX, Vec::new());
        };
        let Ok(keys) = derive_rekeyed(&self.keys.sk_d, &shared, ni, &nr, spi_i, spi_r) else {
            return refuse(nt::TEMPORARY_FAILURE, Vec::new());
        };
        chosen.spi = spi_r.to_be_bytes().to_vec();
        let new = NewIke { spi_i, spi_r, keys };
        let reply = vec![
            Payload::Sa(vec![chosen]),
            Payload::Nonce(nr.clone()),
            Payload::Ke { group, data: ker },
        ];
        if matches!(
            self.outstanding.as_ref().map(|o| &o.request),
            Some(Request::IkeRekey { .. })
        ) {
            // Both of us rekey the IKE SA (RFC 7296 2.8.2): decided when our answer arrives.
            let low = ni.min(&nr).clone();
            self.collided_ike = Some(Box::new(Collided { new, low }));
            return (reply, Vec::new());
        }
        self.pending_ike = Some(Box::new(new));
        (
            reply,
            vec![SaEvent::IkeRekeyed {
                spi_i,
                spi_r,
                ours: false,
            }],
        )
    }

    /// Moves to `next`: the current IKE SA retires (with our Delete of it if `delete_old`);
    /// `initiator`: we started the exchange that created `next`. The child SA moves over.
    pub(super) fn switch_to(
        &mut self,
        next: NewIke,
        initiator: bool,
        delete_old: bool,
        now: Instant,
    ) -> Vec<SaEvent> {
        let mut old = Retiring::new(
            self.spi_i,
            self.spi_r,
            std::mem::replace(&mut self.keys, next.keys),
            self.initiator,
            self.next_in,
            self.next_out,
            self.iv,
            self.last_response.take(),
        );
        let mut ev = Vec::new();
        if delete_old && let Some(b) = old.start_delete(self.cfg.retransmit, now) {
            ev.push(SaEvent::Send(b));
        }
        self.retire(old);
        self.spi_i = next.spi_i;
        self.spi_r = next.spi_r;
        // The rekey's initiator is the new IKE SA's original initiator (RFC 7296 2.18).
        self.initiator = initiator;
        self.next_out = 0;
        self.next_in = 0;
        self.iv = 0;
        // A request of ours outstanding on the old SA is started again on the new one.
        if let Some(o) = self.outstanding.take() {
            self.queue.push_front(o.request);
        }
        // The IKE SA is new: a queued rekey of it is moot, the lifetime starts again.
        self.queue
            .retain(|r| !matches!(r, Request::IkeRekey { .. }));
        self.ike_rekey_at = self.ike_rekey_every.map(|e| now + e);
        ev
    }

    fn retire(&mut self, r: Retiring) {
        if self.retiring.len() >= MAX_RETIRING {
            self.retiring.remove(0);
        }
        self.retiring.push(r);
    }

    /// Rekeys the IKE SA every `every` (from its creation, then from each rekey), with a KE in
    /// `group` (the one IKE_SA_INIT used is a good choice).
    pub fn with_ike_rekey(mut self, every: Duration, group: DhGroup) -> IkeSa {
        self.ike_rekey_every = Some(every);
        self.ike_rekey_at = Some(self.born + every);
        self.group = group;
        self
    }

    /// Whether our IKE SA rekey or a collision with the peer's is in progress.
    pub fn ike_rekeying(&self) -> bool {
        self.collided_ike.is_some()
            || self
                .queue
                .iter()
                .chain(self.outstanding.as_ref().map(|o| &o.request))
                .any(|r| matches!(r, Request::IkeRekey { .. }))
    }

    /// Whether the IKE SA's lifetime says to rekey it now.
    pub fn ike_rekey_due(&self, now: Instant) -> bool {
        !self.closed && !self.ike_rekeying() && self.ike_rekey_at.is_some_and(|t| now >= t)
    }

    /// Queues our IKE SA rekey (sent by the next [`IkeSa::tick`] once no other request of
    /// ours is outstanding). False if one is in progress, the SA is closed, or no DH key pair
    /// could be made (tried again after a while).
    pub fn start_ike_rekey(&mut self, rng: &mut dyn Entropy, now: Instant) -> bool {
        if self.closed || self.ike_rekeying() {
            return false;
        }
        let Ok(dh) = DhPrivate::generate(self.group) else {
            self.ike_rekey_at = Some(now + RETRY_AFTER);
            return false;
        };
        let mut spi = [0u8; 8];
        while u64::from_be_bytes(spi) == 0 {
            rng.fill(&mut spi);
        }
        let mut nonce_i = vec![0u8; self.cfg.nonce_len.clamp(16, 256)];
        rng.fill(&mut nonce_i);
        self.queue.push_back(Request::IkeRekey {
            spi_i: u64::from_be_bytes(spi),
            nonce_i,
            dh,
        });
        true
    }

    /// Our rekey did not make a new IKE SA: adopt the peer's if it collided with ours, else
    /// keep the old one and try again later.
    fn ike_rekey_failed(&mut self, notify: u16, now: Instant) -> Vec<SaEvent> {
        let mut ev = vec![SaEvent::IkeRekeyRefused(notify)];
        if let Some(c) = self.collided_ike.take() {
            let (spi_i, spi_r) = (c.new.spi_i, c.new.spi_r);
            ev.extend(self.switch_to(c.new, false, false, now));
            ev.push(SaEvent::IkeRekeyed {
                spi_i,
                spi_r,
                ours: false,
            });
            return ev;
        }
        let retry = self
            .ike_rekey_every
            .map_or(RETRY_AFTER, |e| e.min(RETRY_AFTER));
        self.ike_rekey_at = Some(now + retry);
        ev
    }

    /// The peer deleted the current IKE SA while our rekey and its (answered) one crossed:
    /// the peer's new SA is the successor; the deleted one is gone (its Delete is answered),
    /// and our rekey's answer, if any still comes, finds no SA.
    pub(super) fn adopt_collided_after_delete(
        &mut self,
        c: Collided,
        now: Instant,
    ) -> Vec<SaEvent> {
        let (old_i, old_r) = (self.spi_i, self.spi_r);
        let (spi_i, spi_r) = (c.new.spi_i, c.new.spi_r);
        let mut ev = self.switch_to(c.new, false, false, now);
        self.retiring
            .retain(|r| (r.spi_i, r.spi_r) != (old_i, old_r));
        ev.push(SaEvent::OldIkeDeleted {
            spi_i: old_i,
            spi_r: old_r,
        });
        ev.push(SaEvent::IkeRekeyed {
            spi_i,
            spi_r,
            ours: false,
        });
        ev
    }

    /// The answer to our IKE SA rekey.
    pub(super) fn on_ike_rekey_response(
        &mut self,
        spi_i: u64,
        nonce_i: Vec<u8>,
        dh: DhPrivate,
        inner: &[Payload],
        exch: u8,
        now: Instant,
    ) -> Vec<SaEvent> {
        if exch != exchange::CREATE_CHILD_SA {
            return self.ike_rekey_failed(nt::INVALID_SYNTAX, now);
        }
        let group = dh.group();
        if let Some(n) = inner.iter().find_map(|p| match p {
            Payload::Notify(n) if n.is_error() => Some(n),
            _ => None,
        }) {
            // The peer wants another group (RFC 7296 1.3.2): once, if it is one of ours.
            let wanted = <[u8; 2]>::try_from(n.data.as_slice())
                .ok()
                .and_then(|b| DhGroup::from_number(u16::from_be_bytes(b)));
            if n.kind == nt::INVALID_KE_PAYLOAD
                && let Some(g) = wanted.filter(|g| *g != group && *g != self.group)
                && let Ok(dh) = DhPrivate::generate(g)
            {
                self.group = g;
                self.queue
                    .push_front(Request::IkeRekey { spi_i, nonce_i, dh });
                return Vec::new();
            }
            return self.ike_rekey_failed(n.kind, now);
        }
        let mut sa = None;
        let mut nonce = None;
        let mut ke = None;
        for p in inner {
            match p {
                Payload::Sa(s) => sa = Some(s),
                Payload::Nonce(n) => nonce = Some(n),
                Payload::Ke { group, data } => ke = Some((*group, data)),
                _ => {}
            }
        }
        let (Some(sa), Some(nr), Some((ke_group, ker))) = (sa, nonce, ke) else {
            return self.ike_rekey_failed(nt::INVALID_SYNTAX, now);
        };
        let Some(spi_r) = answered_spi(sa, group.number()) else {
            return self.ike_rekey_failed(nt::NO_PROPOSAL_CHOSEN, now);
        };
        if !(16..=256).contains(&nr.len()) {
            return self.ike_rekey_failed(nt::INVALID_SYNTAX, now);
        }
        if ke_group != group.number() {
            return self.ike_rekey_failed(nt::INVALID_KE_PAYLOAD, now);
        }
        let Ok(shared) = dh.agree(ker) else {
            return self.ike_rekey_failed(nt::INVALID_SYNTAX, now);
        };
        let Ok(keys) = derive_rekeyed(&self.keys.sk_d, &shared, &nonce_i, nr, spi_i, spi_r) else {
            return self.ike_rekey_failed(nt::TEMPORARY_FAILURE, now);
        };
        let ours = NewIke { spi_i, spi_r, keys };
        let our_low = nonce_i.as_slice().min(nr.as_slice());
        let mut ev = Vec::new();
        match self.collided_ike.take() {
            Some(c) if our_low < c.low.as_slice() => {
                // Ours has the lowest nonce: redundant, we delete it; the peer's is the
                // successor and the peer deletes the old one.
                let mut redundant = Retiring::new(spi_i, spi_r, ours.keys, true, 0, 0, 0, None);
                if let Some(b) = redundant.start_delete(self.cfg.retransmit, now) {
                    ev.push(SaEvent::Send(b));
                }
                let (ti, tr) = (c.new.spi_i, c.new.spi_r);
                ev.extend(self.switch_to(c.new, false, false, now));
                self.retire(redundant);
                ev.push(SaEvent::IkeRekeyed {
                    spi_i: ti,
                    spi_r: tr,
                    ours: false,
                });
            }
            collided => {
                // Ours survives: we delete the old SA; a colliding one of the peer's is
                // redundant and the peer deletes it (we answer that Delete).
                ev.extend(self.switch_to(ours, true, true, now));
                if let Some(c) = collided {
                    let r =
                        Retiring::new(c.new.spi_i, c.new.spi_r, c.new.keys, false, 0, 0, 0, None);
                    self.retire(r);
                }
                ev.push(SaEvent::IkeRekeyed {
                    spi_i,
                    spi_r,
                    ours: true,
                });
            }
        }
        ev
    }
}
