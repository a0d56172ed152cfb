//! Child SA rekeying (RFC 7296 1.3.3, 2.8): the peer's rekey answered, the answer to ours,
//! and the collision of the two (2.8.1) decided by the lowest of the four nonces.

use crate::child::{ChildKeys, ChildSa, chosen_spi, derive_child_keys, offer};
use crate::consts::{exchange, notify as nt, protocol};
use crate::entropy::Entropy;
use crate::payload::{Notify, Payload, Proposal};

use super::{ChildIds, IkeSa, REKEY_SA, Request, SaEvent, draw_spi, notify_of};

impl IkeSa {
    pub(super) fn answer_create_child(
        &mut self,
        inner: &[Payload],
        rng: &mut dyn Entropy,
    ) -> (Vec<Payload>, Vec<SaEvent>) {
        let refuse = |n: u16| {
            (
                vec![Payload::Notify(Notify::ike(n, Vec::new()))],
                Vec::new(),
            )
        };
        let Some(rekey) = notify_of(inner, REKEY_SA) else {
            let ike = inner.iter().any(|p| {
                matches!(p, Payload::Sa(props) if props.iter().any(|p| p.protocol == protocol::IKE))
            });
            if ike {
                return self.answer_ike_rekey(inner, rng);
            }
            // A new child SA: not supported.
            return refuse(nt::NO_ADDITIONAL_SAS);
        };
        let rekeyed = <[u8; 4]>::try_from(rekey.spi.as_slice())
            .ok()
            .map(u32::from_be_bytes);
        if rekey.protocol != protocol::ESP || rekeyed != Some(self.child.spi_out) {
            return (
                vec![Payload::Notify(Notify {
                    protocol: rekey.protocol,
                    spi: rekey.spi.clone(),
                    kind: 11, // CHILD_SA_NOT_FOUND (RFC 7296 3.10.1)
                    data: Vec::new(),
                })],
                Vec::new(),
            );
        }
        let mut sa = None;
        let mut nonce = None;
        let mut tsi = None;
        let mut tsr = None;
        for p in inner {
            match p {
                Payload::Sa(s) => sa = Some(s),
                Payload::Nonce(n) => nonce = Some(n),
                Payload::TsI(t) => tsi = Some(t),
                Payload::TsR(t) => tsr = Some(t),
                Payload::Ke { .. } => return refuse(nt::NO_PROPOSAL_CHOSEN),
                _ => {}
            }
        }
        let (Some(sa), Some(ni), Some(tsi), Some(tsr)) = (sa, nonce, tsi, tsr) else {
            return refuse(nt::INVALID_SYNTAX);
        };
        if !(16..=256).contains(&ni.len()) {
            return refuse(nt::INVALID_SYNTAX);
        }
        let ours = offer(draw_spi(rng));
        let Some((chosen, peer_spi)) = sa.iter().find_map(|p| {
            let mut c = ours.clone();
            c.num = p.num;
            chosen_spi(std::slice::from_ref(p), &c).ok().map(|s| (c, s))
        }) else {
            return refuse(nt::NO_PROPOSAL_CHOSEN);
        };
        let mut nr = vec![0u8; self.cfg.nonce_len.clamp(16, 256)];
        rng.fill(&mut nr);
        // The peer initiated: KEYMAT's first half is peer->us (what we open with).
        let Ok(k) = derive_child_keys(&self.keys.sk_d, ni, &nr) else {
            return refuse(nt::TEMPORARY_FAILURE);
        };
        let keys = ChildKeys {
            initiator_to_responder: k.responder_to_initiator.clone(),
            responder_to_initiator: k.initiator_to_responder.clone(),
        };
        let mut spi_in = [0u8; 4];
        spi_in.copy_from_slice(&chosen.spi);
        let new = ChildSa {
            spi_in: u32::from_be_bytes(spi_in),
            spi_out: peer_spi,
            keys,
            local_ts: tsr.clone(),
            remote_ts: tsi.clone(),
            esn: false,
        };
        let old_spi_in = self.child.spi_in;
        let colliding = matches!(
            self.outstanding.as_ref().map(|o| &o.request),
            Some(Request::Rekey { old, .. }) if old.spi_in == old_spi_in
        );
        if colliding {
            // Both of us rekey this pair (RFC 7296 2.8.1): decided when our answer arrives.
            self.collided_child = Some((ChildIds::of(&new), ni.min(&nr).clone()));
        }
        self.retired.push((self.child.spi_in, self.child.spi_out));
        self.child = ChildIds::of(&new);
        let reply = vec![
            Payload::Sa(vec![chosen]),
            Payload::Nonce(nr),
            Payload::TsI(tsi.clone()),
            Payload::TsR(tsr.clone()),
        ];
        // The peer deletes the old pair with its own INFORMATIONAL; until then it stays.
        (reply, vec![SaEvent::ChildRekeyed { old_spi_in, new }])
    }

    /// The answer to our child rekey.
    pub(super) fn on_child_rekey_response(
        &mut self,
        old: ChildIds,
        offered: Proposal,
        nonce_i: Vec<u8>,
        inner: &[Payload],
        exch: u8,
    ) -> Vec<SaEvent> {
        let collided = self.collided_child.take();
        if exch != exchange::CREATE_CHILD_SA {
            return vec![SaEvent::RekeyRefused(nt::INVALID_SYNTAX)];
        }
        if let Some(n) = inner.iter().find_map(|p| match p {
            Payload::Notify(n) if n.is_error() => Some(n.kind),
            _ => None,
        }) {
            return vec![SaEvent::RekeyRefused(n)];
        }
        let mut sa = None;
        let mut nonce = None;
        let mut tsi = None;
        let mut tsr = None;
        for p in inner {
            match p {
                Payload::Sa(s) => sa = Some(s),
                Payload::Nonce(n) => nonce = Some(n),
                Payload::TsI(t) => tsi = Some(t),
                Payload::TsR(t) => tsr = Some(t),
                _ => {}
            }
        }
        let (Some(sa), Some(nr), Some(tsi), Some(tsr)) = (sa, nonce, tsi, tsr) else {
            return vec![SaEvent::RekeyRefused(nt::INVALID_SYNTAX)];
        };
        let Ok(spi_out) = chosen_spi(sa, &offered) else {
            return vec![SaEvent::RekeyRefused(nt::NO_PROPOSAL_CHOSEN)];
        };
        if !(16..=256).contains(&nr.len())
            || !crate::child::narrowed(tsi, &old.local_ts)
            || !crate::child::narrowed(tsr, &old.remote_ts)
        {
            return vec![SaEvent::RekeyRefused(nt::TS_UNACCEPTABLE)];
        }
        let Ok(keys) = derive_child_keys(&self.keys.sk_d, &nonce_i, nr) else {
            return vec![SaEvent::RekeyRefused(nt::TEMPORARY_FAILURE)];
        };
        let mut b = [0u8; 4];
        b.copy_from_slice(&offered.spi);
        let new = ChildSa {
            spi_in: u32::from_be_bytes(b),
            spi_out,
            keys,
            local_ts: tsi.clone(),
            remote_ts: tsr.clone(),
            esn: false,
        };
        if let Some((theirs, low)) = collided {
            if *nonce_i.as_slice().min(nr.as_slice()) < *low {
                // Ours has the lowest nonce: redundant, we delete it; the peer's pair
                // (current already) stays, and the peer deletes the old one.
                self.queue.push_back(Request::DeleteChild {
                    spi_in: new.spi_in,
                    spi_out: new.spi_out,
                });
                return vec![SaEvent::ChildCollisionLost { spi_in: new.spi_in }];
            }
            // Theirs is redundant: the peer deletes it; we answer that Delete.
            self.retired.push((theirs.spi_in, theirs.spi_out));
        }
        if !self.retired.contains(&(old.spi_in, old.spi_out)) {
            self.retired.push((old.spi_in, old.spi_out));
        }
        self.child = ChildIds::of(&new);
        self.queue.push_back(Request::DeleteChild {
            spi_in: old.spi_in,
            spi_out: old.spi_out,
        });
        vec![SaEvent::ChildRekeyed {
            old_spi_in: old.spi_in,
            new,
        }]
    }
}
