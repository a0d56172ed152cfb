//! An IKE SA on its way out after a rekey (RFC 7296 1.3.2, 2.8): the one replaced, or a
//! redundant one a rekey collision created (2.8.2). It answers the peer's requests on it (its
//! Delete ends it; a CREATE_CHILD_SA gets TEMPORARY_FAILURE, 2.25) and, when we must delete it, carries our INFORMATIONAL Delete, retransmitted
//! until answered (then it is gone; if never answered it is dropped quietly, RFC 7296 1.4.1).

use std::time::Instant;

use crate::consts::{exchange, flags, notify as nt, payload as pt, protocol};
use crate::decode::Message;
use crate::keys::IkeKeys;
use crate::payload::{Notify, Payload};
use crate::retransmit::{Due, Retransmit, RetransmitPolicy};
use crate::sk;

use super::{SaDrop, SaEvent, delete_body, parse_delete};

#[derive(Debug)]
struct OurDelete {
    msg_id: u32,
    bytes: Vec<u8>,
    timer: Retransmit,
}

#[derive(Debug)]
pub(super) struct Retiring {
    pub(super) spi_i: u64,
    pub(super) spi_r: u64,
    pub(super) keys: IkeKeys,
    /// We are this IKE SA's original initiator (flags, which SK_e seals).
    pub(super) initiator: bool,
    pub(super) next_in: u32,
    pub(super) next_out: u32,
    pub(super) iv: u64,
    pub(super) last_response: Option<Vec<u8>>,
    delete: Option<OurDelete>,
}

/// What a tick of a retiring SA asks for.
pub(super) enum RetireTick {
    Idle(Option<Instant>),
    Resend(Vec<u8>, Instant),
    GiveUp,
}

impl Retiring {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        spi_i: u64,
        spi_r: u64,
        keys: IkeKeys,
        initiator: bool,
        next_in: u32,
        next_out: u32,
        iv: u64,
        last_response: Option<Vec<u8>>,
    ) -> Retiring {
        Retiring {
            spi_i,
            spi_r,
            keys,
            initiator,
            next_in,
            next_out,
            iv,
            last_response,
            delete: None,
        }
    }

    fn header(&self, exch: u8, response: bool, msg_id: u32) -> crate::encode::Header {
        crate::encode::Header {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            exchange: exch,
            flags: if self.initiator { flags::INITIATOR } else { 0 }
                | if response { flags::RESPONSE } else { 0 },
            msg_id,
        }
    }

    fn seal_key(&self) -> &sk::SkKey {
        if self.initiator {
            &self.keys.sk_ei
        } else {
            &self.keys.sk_er
        }
    }

    fn open_key(&self) -> &sk::SkKey {
        if self.initiator {
            &self.keys.sk_er
        } else {
            &self.keys.sk_ei
        }
    }

    /// Starts our Delete of this IKE SA; the bytes to send (None: not encodable, left to die).
    pub(super) fn start_delete(
        &mut self,
        policy: RetransmitPolicy,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let msg_id = self.next_out;
        let header = self.header(exchange::INFORMATIONAL, false, msg_id);
        self.iv += 1;
        let inner = [delete_body(protocol::IKE, &[])];
        let bytes = sk::seal(&header, &inner, self.seal_key(), self.iv).ok()?;
        self.next_out = self.next_out.wrapping_add(1);
        self.delete = Some(OurDelete {
            msg_id,
            bytes: bytes.clone(),
            timer: Retransmit::sent(policy, now),
        });
        Some(bytes)
    }

    pub(super) fn tick(&mut self, now: Instant) -> RetireTick {
        let Some(d) = &mut self.delete else {
            return RetireTick::Idle(None);
        };
        match d.timer.poll(now) {
            Due::WaitUntil(t) => RetireTick::Idle(Some(t)),
            Due::Resend => RetireTick::Resend(d.bytes.clone(), now + d.timer.wait()),
            Due::GiveUp { .. } => RetireTick::GiveUp,
        }
    }

    /// A message on this SA's SPIs: the answer to our Delete (then gone), or a request of the
    /// peer answered empty (its Delete of the IKE SA: then gone).
    pub(super) fn on_message(
        &mut self,
        bytes: &[u8],
        msg: &Message,
    ) -> Result<(Vec<SaEvent>, bool), SaDrop> {
        let h = msg.header;
        if msg.is_response() {
            match &self.delete {
                Some(d) if d.msg_id == h.msg_id => {
                    sk::open(bytes, msg, self.open_key()).map_err(SaDrop::Undecryptable)?;
                    return Ok((Vec::new(), true));
                }
                _ => return Err(SaDrop::UnexpectedResponse { got: h.msg_id }),
            }
        }
        if h.msg_id.wrapping_add(1) == self.next_in {
            sk::open(bytes, msg, self.open_key()).map_err(SaDrop::Undecryptable)?;
            let ev = self.last_response.iter().cloned().map(SaEvent::Send);
            return Ok((ev.collect(), false));
        }
        if h.msg_id != self.next_in {
            return Err(SaDrop::RequestOutOfWindow {
                got: h.msg_id,
                expected: self.next_in,
            });
        }
        let inner = sk::open(bytes, msg, self.open_key()).map_err(SaDrop::Undecryptable)?;
        let gone = inner.iter().any(|p| {
            matches!(p, Payload::Unknown { kind, body } if *kind == pt::DELETE
                && parse_delete(body).is_some_and(|(proto, _)| proto == protocol::IKE))
        });
        // Nothing new is created on an SA being replaced (RFC 7296 2.25).
        let reply = if h.exchange == exchange::CREATE_CHILD_SA {
            vec![Payload::Notify(Notify::ike(
                nt::TEMPORARY_FAILURE,
                Vec::new(),
            ))]
        } else {
            Vec::new()
        };
        let header = self.header(h.exchange, true, h.msg_id);
        self.iv += 1;
        let b = sk::seal(&header, &reply, self.seal_key(), self.iv).map_err(|_| SaDrop::Closed)?;
        self.next_in = self.next_in.wrapping_add(1);
        self.last_response = Some(b.clone());
        Ok((vec![SaEvent::Send(b)], gone))
    }
}
