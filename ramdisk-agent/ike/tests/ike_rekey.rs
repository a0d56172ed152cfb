//! Our IKE SA rekey (RFC 7296 1.3.2, 2.18) against an in-memory responder with real X25519
//! exchanges: the request, the switch to the new SA, the Delete of the old one; hostile and
//! malformed answers refused without a panic; rekey collisions (2.8.1, 2.8.2) of child SAs and
//! of the IKE SA decided by the nonce rule both ways.

use std::time::{Duration, Instant};

use agent_ike::consts::{exchange, flags, notify as nt, protocol};
use agent_ike::ike_sa::{REKEY_SA, delete_body, parse_delete};
use agent_ike::{
    ChildIds, DhGroup, DhPrivate, Header, IkeKeys, IkeSa, IkeSaConfig, Notify, Payload, Proposal,
    RetransmitPolicy, SaDrop, SaEvent, SeededEntropy, SkKey, TrafficSelector, Transform, decode,
    derive_rekeyed,
};

const SPI_I: u64 = 0x1111_2222_3333_4444;
const SPI_R: u64 = 0x5555_6666_7777_8888;
const PEER_NEW_SPI: u64 = 0x9999_aaaa_bbbb_cccc;
const EVERY: Duration = Duration::from_secs(60);

fn keys() -> IkeKeys {
    IkeKeys {
        sk_d: [7; 32],
        sk_ei: SkKey::from_bytes(&[1; 36]),
        sk_er: SkKey::from_bytes(&[2; 36]),
        sk_pi: [3; 32],
        sk_pr: [4; 32],
    }
}

fn child() -> ChildIds {
    ChildIds {
        spi_in: 0x1000,
        spi_out: 0x2000,
        local_ts: vec![TrafficSelector::v4([10, 30, 0, 5], [10, 30, 0, 5])],
        remote_ts: vec![TrafficSelector::v4([10, 20, 0, 0], [10, 20, 255, 255])],
    }
}

fn sa(t0: Instant) -> IkeSa {
    let cfg = IkeSaConfig {
        dpd_idle: Duration::from_secs(600),
        retransmit: RetransmitPolicy {
            initial: Duration::from_secs(1),
            factor_percent: 200,
            max: Duration::from_secs(8),
            tries: 2,
        },
        nonce_len: 32,
    };
    IkeSa::new(SPI_I, SPI_R, keys(), 2, child(), cfg, t0).with_ike_rekey(EVERY, DhGroup::Curve25519)
}

/// The peer's view of one IKE SA: which SPIs, keys, and whether it is the SA's initiator.
struct Side {
    spi_i: u64,
    spi_r: u64,
    keys: IkeKeys,
    peer_initiator: bool,
    iv: u64,
}

impl Side {
    fn original() -> Side {
        Side {
            spi_i: SPI_I,
            spi_r: SPI_R,
            keys: keys(),
            peer_initiator: false,
            iv: 0,
        }
    }
    fn send(&mut self, exch: u8, response: bool, id: u32, inner: &[Payload]) -> Vec<u8> {
        self.iv += 1;
        let h = Header {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            exchange: exch,
            flags: if self.peer_initiator {
                flags::INITIATOR
            } else {
                0
            } | if response { flags::RESPONSE } else { 0 },
            msg_id: id,
        };
        let k = if self.peer_initiator {
            &self.keys.sk_ei
        } else {
            &self.keys.sk_er
        };
        agent_ike::sk::seal(&h, inner, k, self.iv).unwrap()
    }
    fn open(&self, bytes: &[u8]) -> (Header, Vec<Payload>) {
        let m = decode(bytes).unwrap();
        assert_eq!((m.header.spi_i, m.header.spi_r), (self.spi_i, self.spi_r));
        let k = if self.peer_initiator {
            &self.keys.sk_er
        } else {
            &self.keys.sk_ei
        };
        (m.header, agent_ike::sk::open(bytes, &m, k).unwrap())
    }
}

fn sends(ev: &[SaEvent]) -> Vec<Vec<u8>> {
    ev.iter()
        .filter_map(|e| match e {
            SaEvent::Send(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

fn ike_sa_payload(spi: u64, group: u16) -> Payload {
    Payload::Sa(vec![Proposal {
        num: 1,
        protocol: protocol::IKE,
        spi: spi.to_be_bytes().to_vec(),
        transforms: vec![
            Transform::AES256_GCM16,
            Transform::PRF_SHA256,
            Transform::dh(group),
        ],
    }])
}

/// Our rekey request, sent at `t`: (its message id, our new SPI, Ni, KEi data).
fn our_request(s: &mut IkeSa, t: Instant, peer: &Side) -> (u32, u64, Vec<u8>, Vec<u8>) {
    assert!(s.ike_rekey_due(t));
    assert!(s.start_ike_rekey(&mut SeededEntropy::new(77), t));
    assert!(!s.ike_rekey_due(t), "in progress");
    let (ev, _) = s.tick(t);
    let out = sends(&ev);
    assert_eq!(out.len(), 1);
    let (h, inner) = peer.open(&out[0]);
    assert_eq!(h.exchange, exchange::CREATE_CHILD_SA);
    let [
        Payload::Sa(props),
        Payload::Nonce(ni),
        Payload::Ke { group: 31, data },
    ] = &inner[..]
    else {
        panic!("{inner:?}")
    };
    let [p] = &props[..] else { panic!() };
    assert_eq!(p.protocol, protocol::IKE);
    assert_eq!(
        p.transforms,
        vec![
            Transform::AES256_GCM16,
            Transform::PRF_SHA256,
            Transform::dh(31)
        ]
    );
    let spi = u64::from_be_bytes(p.spi[..].try_into().unwrap());
    assert_ne!(spi, 0);
    assert_eq!(data.len(), 32);
    (h.msg_id, spi, ni.clone(), data.clone())
}

/// The peer's answer to our rekey: (the payloads, the new SA's keys).
fn answer(spi_i: u64, ni: &[u8], kei: &[u8], nr: &[u8]) -> (Vec<Payload>, IkeKeys) {
    let dh = DhPrivate::generate(DhGroup::Curve25519).unwrap();
    let ker = dh.public().to_vec();
    let shared = dh.agree(kei).unwrap();
    let k = derive_rekeyed(&[7; 32], &shared, ni, nr, spi_i, PEER_NEW_SPI).unwrap();
    (
        vec![
            ike_sa_payload(PEER_NEW_SPI, 31),
            Payload::Nonce(nr.to_vec()),
            Payload::Ke {
                group: 31,
                data: ker,
            },
        ],
        k,
    )
}

#[test]
fn our_ike_rekey_moves_to_the_new_sa_and_deletes_the_old_one() {
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut rng = SeededEntropy::new(1);
    let mut old = Side::original();
    assert!(!s.ike_rekey_due(t0 + EVERY - Duration::from_millis(1)));
    let t1 = t0 + EVERY;
    let (id, spi_i, ni, kei) = our_request(&mut s, t1, &old);
    assert_eq!(id, 2);
    let (inner, k) = answer(spi_i, &ni, &kei, &[0x5a; 32]);
    let resp = old.send(exchange::CREATE_CHILD_SA, true, id, &inner);
    let ev = s.on_message(&resp, t1, &mut rng).unwrap();
    let [
        SaEvent::Send(del),
        SaEvent::IkeRekeyed {
            spi_i: a,
            spi_r: b,
            ours: true,
        },
    ] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!((*a, *b), (spi_i, PEER_NEW_SPI));
    assert_eq!(s.spis(), (spi_i, PEER_NEW_SPI));
    assert_eq!(s.message_ids(), (0, 0));
    assert_eq!(s.child(), &child(), "the child SA moved over");
    // The Delete of the old IKE SA, on the old SPIs with the old keys, next old id.
    let (h, dinner) = old.open(del);
    assert_eq!(
        (h.msg_id, h.exchange, h.flags),
        (3, exchange::INFORMATIONAL, flags::INITIATOR)
    );
    let [Payload::Unknown { body, .. }] = &dinner[..] else {
        panic!()
    };
    assert_eq!(parse_delete(body), Some((protocol::IKE, vec![])));
    // Retransmitted until answered; the answer ends the old SA.
    let (ev, _) = s.tick(t1 + Duration::from_secs(1));
    assert_eq!(sends(&ev), vec![del.clone()]);
    let ack = old.send(exchange::INFORMATIONAL, true, 3, &[]);
    let ev = s.on_message(&ack, t1, &mut rng).unwrap();
    assert!(matches!(
        ev[..],
        [SaEvent::OldIkeDeleted {
            spi_i: SPI_I,
            spi_r: SPI_R
        }]
    ));
    assert!(s.on_message(&ack, t1, &mut rng).is_err(), "gone");
    // On the new SA we are the original initiator: flags I, SK_ei, ids from 0.
    let mut new = Side {
        spi_i,
        spi_r: PEER_NEW_SPI,
        keys: k,
        peer_initiator: false,
        iv: 0,
    };
    let dpd = new.send(exchange::INFORMATIONAL, false, 0, &[]);
    let ev = s.on_message(&dpd, t1, &mut rng).unwrap();
    let (h, _) = new.open(&sends(&ev)[0]);
    assert_eq!((h.msg_id, h.flags), (0, flags::INITIATOR | flags::RESPONSE));
    // A child rekey now runs on the new SA and its keys come from the new SK_d.
    s.start_rekey(&mut rng);
    let (ev, _) = s.tick(t1 + Duration::from_secs(2));
    let (h, inner) = new.open(&sends(&ev)[0]);
    assert_eq!((h.msg_id, h.exchange), (0, exchange::CREATE_CHILD_SA));
    assert!(matches!(&inner[0], Payload::Notify(n) if n.kind == REKEY_SA));
    // The next IKE rekey is due a lifetime after this one.
    assert!(!s.ike_rekey_due(t1 + EVERY - Duration::from_millis(1)));
    assert!(s.ike_rekey_due(t1 + EVERY));
}

/// Starts our rekey on a fresh SA and feeds the peer's answer `inner` (sealed on the old SA
/// with the right id); returns the SA and the events.
fn answered_with(inner: &[Payload]) -> (IkeSa, Vec<SaEvent>) {
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut old = Side::original();
    let (id, ..) = our_request(&mut s, t0 + EVERY, &old);
    let resp = old.send(exchange::CREATE_CHILD_SA, true, id, inner);
    let ev = s
        .on_message(&resp, t0 + EVERY, &mut SeededEntropy::new(3))
        .unwrap();
    (s, ev)
}

#[test]
fn malformed_rekey_answers_keep_the_old_sa() {
    let ke = |g: u16, n: usize| Payload::Ke {
        group: g,
        data: vec![9; n],
    };
    let nonce = Payload::Nonce(vec![1; 32]);
    let mut two = ike_sa_payload(PEER_NEW_SPI, 31);
    if let Payload::Sa(p) = &mut two {
        p.push(p[0].clone());
        p[1].num = 2;
    }
    let esp = Payload::Sa(vec![agent_ike::child::offer(0x3000)]);
    let mut short_spi = ike_sa_payload(PEER_NEW_SPI, 31);
    let mut zero_spi = ike_sa_payload(0, 31);
    let mut integ = ike_sa_payload(PEER_NEW_SPI, 31);
    if let (Payload::Sa(a), Payload::Sa(c)) = (&mut short_spi, &mut integ) {
        a[0].spi = vec![1, 2, 3, 4];
        c[0].transforms.push(Transform {
            kind: 3,
            id: 12,
            key_bits: None,
        });
    }
    if let Payload::Sa(z) = &mut zero_spi {
        z[0].num = 1;
    }
    let good_sa = ike_sa_payload(PEER_NEW_SPI, 31);
    let cases: Vec<(&str, Vec<Payload>, u16)> = vec![
        (
            "4-byte SPI",
            vec![short_spi, nonce.clone(), ke(31, 32)],
            nt::NO_PROPOSAL_CHOSEN,
        ),
        (
            "SPI zero",
            vec![zero_spi, nonce.clone(), ke(31, 32)],
            nt::NO_PROPOSAL_CHOSEN,
        ),
        (
            "two proposals",
            vec![two, nonce.clone(), ke(31, 32)],
            nt::NO_PROPOSAL_CHOSEN,
        ),
        (
            "ESP proposal",
            vec![esp, nonce.clone(), ke(31, 32)],
            nt::NO_PROPOSAL_CHOSEN,
        ),
        (
            "extra INTEG",
            vec![integ, nonce.clone(), ke(31, 32)],
            nt::NO_PROPOSAL_CHOSEN,
        ),
        (
            "other group in SA",
            vec![ike_sa_payload(PEER_NEW_SPI, 19), nonce.clone(), ke(19, 64)],
            nt::NO_PROPOSAL_CHOSEN,
        ),
        (
            "no KE",
            vec![good_sa.clone(), nonce.clone()],
            nt::INVALID_SYNTAX,
        ),
        (
            "no nonce",
            vec![good_sa.clone(), ke(31, 32)],
            nt::INVALID_SYNTAX,
        ),
        ("no SA", vec![nonce.clone(), ke(31, 32)], nt::INVALID_SYNTAX),
        (
            "short nonce",
            vec![good_sa.clone(), Payload::Nonce(vec![1; 8]), ke(31, 32)],
            nt::INVALID_SYNTAX,
        ),
        (
            "KE of group 19",
            vec![good_sa.clone(), nonce.clone(), ke(19, 64)],
            nt::INVALID_KE_PAYLOAD,
        ),
        (
            "KE of 31 bytes",
            vec![good_sa.clone(), nonce.clone(), ke(31, 31)],
            nt::INVALID_SYNTAX,
        ),
        ("empty", vec![], nt::INVALID_SYNTAX),
        (
            "refused",
            vec![Payload::Notify(Notify::ike(nt::NO_PROPOSAL_CHOSEN, vec![]))],
            nt::NO_PROPOSAL_CHOSEN,
        ),
        (
            "INVALID_KE for an unknown group",
            vec![Payload::Notify(Notify::ike(
                nt::INVALID_KE_PAYLOAD,
                vec![0, 14],
            ))],
            nt::INVALID_KE_PAYLOAD,
        ),
        (
            "INVALID_KE for the group we used",
            vec![Payload::Notify(Notify::ike(
                nt::INVALID_KE_PAYLOAD,
                vec![0, 31],
            ))],
            nt::INVALID_KE_PAYLOAD,
        ),
        (
            "INVALID_KE with 3 bytes",
            vec![Payload::Notify(Notify::ike(
                nt::INVALID_KE_PAYLOAD,
                vec![0, 0, 19],
            ))],
            nt::INVALID_KE_PAYLOAD,
        ),
    ];
    for (what, inner, want) in cases {
        let (s, ev) = answered_with(&inner);
        assert!(
            matches!(ev[..], [SaEvent::IkeRekeyRefused(n)] if n == want),
            "{what}: {ev:?}"
        );
        assert_eq!(s.spis(), (SPI_I, SPI_R), "{what}: the old SA stays");
        assert!(!s.ike_rekeying(), "{what}");
        // Tried again after 30 s (the lifetime is longer).
        let t = Instant::now() + EVERY;
        assert!(!s.ike_rekey_due(t + Duration::from_secs(1)), "{what}");
        assert!(s.ike_rekey_due(t + Duration::from_secs(31)), "{what}");
    }
}

#[test]
fn invalid_ke_naming_group_19_is_retried_once_with_it() {
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut rng = SeededEntropy::new(5);
    let mut old = Side::original();
    let t1 = t0 + EVERY;
    let (id, spi, ni, _) = our_request(&mut s, t1, &old);
    let want19 = Payload::Notify(Notify::ike(nt::INVALID_KE_PAYLOAD, vec![0, 19]));
    let resp = old.send(
        exchange::CREATE_CHILD_SA,
        true,
        id,
        std::slice::from_ref(&want19),
    );
    assert!(s.on_message(&resp, t1, &mut rng).unwrap().is_empty());
    let (ev, _) = s.tick(t1);
    let (h, inner) = old.open(&sends(&ev)[0]);
    assert_eq!(h.msg_id, id + 1);
    let [
        Payload::Sa(p),
        Payload::Nonce(n2),
        Payload::Ke { group: 19, data },
    ] = &inner[..]
    else {
        panic!("{inner:?}")
    };
    assert_eq!(data.len(), 64);
    assert_eq!(p[0].spi, spi.to_be_bytes().to_vec());
    assert_eq!(p[0].transforms[2], Transform::dh(19));
    assert_eq!(n2, &ni);
    // Asked again for 19 (or back for 31): refused, no loop.
    let resp = old.send(exchange::CREATE_CHILD_SA, true, id + 1, &[want19]);
    let ev = s.on_message(&resp, t1, &mut rng).unwrap();
    assert!(matches!(
        ev[..],
        [SaEvent::IkeRekeyRefused(nt::INVALID_KE_PAYLOAD)]
    ));
}

#[test]
fn unexpected_ids_exchanges_and_bytes_during_our_rekey_are_dropped() {
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut rng = SeededEntropy::new(6);
    let mut old = Side::original();
    let t1 = t0 + EVERY;
    let (id, spi, ni, kei) = our_request(&mut s, t1, &old);
    let (inner, _) = answer(spi, &ni, &kei, &[0x11; 32]);
    // A response with another id, a request from the future, an IKE_AUTH, garbage.
    let wrong = old.send(exchange::CREATE_CHILD_SA, true, id + 1, &inner);
    assert_eq!(
        s.on_message(&wrong, t1, &mut rng).unwrap_err(),
        SaDrop::UnexpectedResponse { got: id + 1 }
    );
    let future = old.send(exchange::CREATE_CHILD_SA, false, 7, &inner);
    assert!(matches!(
        s.on_message(&future, t1, &mut rng),
        Err(SaDrop::RequestOutOfWindow { got: 7, .. })
    ));
    let auth = old.send(exchange::IKE_AUTH, true, id, &inner);
    assert_eq!(
        s.on_message(&auth, t1, &mut rng).unwrap_err(),
        SaDrop::WrongExchange(exchange::IKE_AUTH)
    );
    let resp = old.send(exchange::CREATE_CHILD_SA, true, id, &inner);
    for n in 0..resp.len() {
        let _ = s.on_message(&resp[..n], t1, &mut rng);
    }
    let mut flipped = resp.clone();
    let l = flipped.len();
    flipped[l - 3] ^= 0x40;
    assert!(matches!(
        s.on_message(&flipped, t1, &mut rng),
        Err(SaDrop::Undecryptable(_))
    ));
    assert!(s.ike_rekeying(), "still waiting for the real answer");
    // An INFORMATIONAL answer to our CREATE_CHILD_SA: refused, the old SA stays.
    let info = old.send(exchange::INFORMATIONAL, true, id, &[]);
    let ev = s.on_message(&info, t1, &mut rng).unwrap();
    assert!(matches!(
        ev[..],
        [SaEvent::IkeRekeyRefused(nt::INVALID_SYNTAX)]
    ));
    assert_eq!(s.spis(), (SPI_I, SPI_R));
}

/// The peer's IKE SA rekey request on the old SA (its id 0) with nonce `ni`.
fn peer_ike_rekey(old: &mut Side, ni: &[u8]) -> (Vec<u8>, DhPrivate) {
    let dh = DhPrivate::generate(DhGroup::Curve25519).unwrap();
    let req = old.send(
        exchange::CREATE_CHILD_SA,
        false,
        0,
        &[
            ike_sa_payload(PEER_NEW_SPI ^ 0xff, 31),
            Payload::Nonce(ni.to_vec()),
            Payload::Ke {
                group: 31,
                data: dh.public().to_vec(),
            },
        ],
    );
    (req, dh)
}

/// Both rekey the IKE SA; `peer_ni` and `peer_nr` (its nonce in our exchange) pick the winner.
fn ike_collision(peer_ni: u8, peer_nr: u8) -> (IkeSa, Vec<SaEvent>, Side, IkeKeys, IkeKeys, u64) {
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut rng = SeededEntropy::new(8);
    let mut old = Side::original();
    let t1 = t0 + EVERY;
    let (id, spi, ni, kei) = our_request(&mut s, t1, &old);
    // The peer's rekey crosses ours: answered on the old SA, not switched to yet.
    let (req, dh) = peer_ike_rekey(&mut old, &[peer_ni; 32]);
    let ev = s.on_message(&req, t1, &mut rng).unwrap();
    let out = sends(&ev);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(s.spis(), (SPI_I, SPI_R));
    assert!(s.ike_rekeying());
    let (h, inner) = old.open(&out[0]);
    assert_eq!((h.msg_id, h.flags), (0, flags::INITIATOR | flags::RESPONSE));
    let [
        Payload::Sa(p),
        Payload::Nonce(our_nr),
        Payload::Ke { data, .. },
    ] = &inner[..]
    else {
        panic!("{inner:?}")
    };
    let their_r = u64::from_be_bytes(p[0].spi[..].try_into().unwrap());
    let shared = dh.agree(data).unwrap();
    let theirs = derive_rekeyed(
        &[7; 32],
        &shared,
        &[peer_ni; 32],
        our_nr,
        PEER_NEW_SPI ^ 0xff,
        their_r,
    )
    .unwrap();
    // Then the answer to ours.
    let (inner, ours) = answer(spi, &ni, &kei, &[peer_nr; 32]);
    let resp = old.send(exchange::CREATE_CHILD_SA, true, id, &inner);
    let ev = s.on_message(&resp, t1, &mut rng).unwrap();
    assert!(!s.ike_rekeying());
    (s, ev, old, ours, theirs, their_r)
}

#[test]
fn ike_rekey_collision_lost_deletes_our_new_sa() {
    // Our exchange holds the lowest nonce (the peer's Nr of zeros): ours is redundant.
    let (mut s, ev, mut old, ours, theirs, their_r) = ike_collision(0xff, 0x00);
    let mut rng = SeededEntropy::new(9);
    let [
        SaEvent::Send(del),
        SaEvent::IkeRekeyed {
            spi_i,
            spi_r,
            ours: false,
        },
    ] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!((*spi_i, *spi_r), (PEER_NEW_SPI ^ 0xff, their_r));
    assert_eq!(s.spis(), (*spi_i, *spi_r));
    // Our Delete goes on our redundant SA (we are its initiator, id 0).
    let m = decode(del).unwrap();
    assert_eq!(m.header.spi_r, PEER_NEW_SPI);
    assert_eq!((m.header.msg_id, m.header.flags), (0, flags::INITIATOR));
    let inner = agent_ike::sk::open(del, &m, &ours.sk_ei).unwrap();
    let [Payload::Unknown { body, .. }] = &inner[..] else {
        panic!()
    };
    assert_eq!(parse_delete(body), Some((protocol::IKE, vec![])));
    // The peer (winner) deletes the old SA: answered.
    let d = old.send(
        exchange::INFORMATIONAL,
        false,
        1,
        &[delete_body(protocol::IKE, &[])],
    );
    let ev = s.on_message(&d, Instant::now(), &mut rng).unwrap();
    assert!(matches!(
        ev[..],
        [SaEvent::Send(_), SaEvent::OldIkeDeleted { .. }]
    ));
    // On the surviving SA the peer is the initiator; we answer with SK_er, no I flag.
    let mut new = Side {
        spi_i: *spi_i,
        spi_r: *spi_r,
        keys: theirs,
        peer_initiator: true,
        iv: 0,
    };
    let dpd = new.send(exchange::INFORMATIONAL, false, 0, &[]);
    let ev = s.on_message(&dpd, Instant::now(), &mut rng).unwrap();
    let (h, _) = new.open(&sends(&ev)[0]);
    assert_eq!(h.flags, flags::RESPONSE);
    assert!(!s.is_closed());
}

#[test]
fn ike_rekey_collision_won_keeps_ours_and_deletes_the_old_sa() {
    // The peer's exchange holds the lowest nonce (its Ni of zeros): its SA is redundant.
    let (mut s, ev, old, ours, theirs, their_r) = ike_collision(0x00, 0xff);
    let mut rng = SeededEntropy::new(10);
    let [
        SaEvent::Send(del),
        SaEvent::IkeRekeyed {
            spi_r, ours: true, ..
        },
    ] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(*spi_r, PEER_NEW_SPI);
    let (h, inner) = old.open(del);
    assert_eq!(h.msg_id, 3);
    assert!(matches!(&inner[..], [Payload::Unknown { body, .. }]
        if parse_delete(body) == Some((protocol::IKE, vec![]))));
    // The peer deletes its redundant SA: we answer on it (it is that SA's initiator).
    let mut red = Side {
        spi_i: PEER_NEW_SPI ^ 0xff,
        spi_r: their_r,
        keys: theirs,
        peer_initiator: true,
        iv: 0,
    };
    let d = red.send(
        exchange::INFORMATIONAL,
        false,
        0,
        &[delete_body(protocol::IKE, &[])],
    );
    let ev = s.on_message(&d, Instant::now(), &mut rng).unwrap();
    let [
        SaEvent::Send(ack),
        SaEvent::OldIkeDeleted { spi_r: gone, .. },
    ] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(*gone, their_r);
    let (h, _) = red.open(ack);
    assert_eq!(h.flags, flags::RESPONSE);
    // Our own SA is the current one: the peer talks to it with its keys.
    let mut cur = Side {
        spi_i: s.spis().0,
        spi_r: PEER_NEW_SPI,
        keys: ours,
        peer_initiator: false,
        iv: 0,
    };
    let dpd = cur.send(exchange::INFORMATIONAL, false, 0, &[]);
    let ev = s.on_message(&dpd, Instant::now(), &mut rng).unwrap();
    assert_eq!(sends(&ev).len(), 1);
}

#[test]
fn ike_rekey_refused_in_a_collision_adopts_the_peers() {
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut rng = SeededEntropy::new(11);
    let mut old = Side::original();
    let t1 = t0 + EVERY;
    let (id, ..) = our_request(&mut s, t1, &old);
    let (req, _dh) = peer_ike_rekey(&mut old, &[0x33; 32]);
    s.on_message(&req, t1, &mut rng).unwrap();
    let busy = Payload::Notify(Notify::ike(nt::TEMPORARY_FAILURE, vec![]));
    let resp = old.send(exchange::CREATE_CHILD_SA, true, id, &[busy]);
    let ev = s.on_message(&resp, t1, &mut rng).unwrap();
    assert!(
        matches!(
            ev[..],
            [
                SaEvent::IkeRekeyRefused(nt::TEMPORARY_FAILURE),
                SaEvent::IkeRekeyed { ours: false, .. }
            ]
        ),
        "{ev:?}"
    );
    assert_eq!(s.spis().0, PEER_NEW_SPI ^ 0xff);
}

/// The peer's rekey of our child SA (its outbound SPI 0x2000) with nonce `ni`.
fn peer_child_rekey(old: &mut Side, id: u32, ni: &[u8]) -> Vec<u8> {
    let c = child();
    old.send(
        exchange::CREATE_CHILD_SA,
        false,
        id,
        &[
            Payload::Notify(Notify {
                protocol: protocol::ESP,
                spi: 0x2000u32.to_be_bytes().to_vec(),
                kind: REKEY_SA,
                data: Vec::new(),
            }),
            Payload::Sa(vec![agent_ike::child::offer(0x4000)]),
            Payload::Nonce(ni.to_vec()),
            Payload::TsI(c.remote_ts),
            Payload::TsR(c.local_ts),
        ],
    )
}

/// Both rekey the child SA: (the SA, events of our answer, our new inbound SPI, the peer's new
/// pair's inbound SPI on our side).
fn child_collision(peer_ni: u8, peer_nr: u8) -> (IkeSa, Vec<SaEvent>, Side, u32, u32) {
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut rng = SeededEntropy::new(12);
    let mut old = Side::original();
    s.start_rekey(&mut rng);
    let (ev, _) = s.tick(t0);
    let (h, inner) = old.open(&sends(&ev)[0]);
    let Payload::Sa(props) = &inner[1] else {
        panic!()
    };
    let ours_in = u32::from_be_bytes(props[0].spi[..].try_into().unwrap());
    // The peer's rekey of the same pair crosses ours: answered and installed.
    let req = peer_child_rekey(&mut old, 0, &[peer_ni; 32]);
    let ev = s.on_message(&req, t0, &mut rng).unwrap();
    let [SaEvent::Send(_), SaEvent::ChildRekeyed { new: theirs, .. }] = &ev[..] else {
        panic!("{ev:?}")
    };
    let theirs_in = theirs.spi_in;
    let mut chosen = props[0].clone();
    chosen.spi = 0x3000u32.to_be_bytes().to_vec();
    let resp = old.send(
        exchange::CREATE_CHILD_SA,
        true,
        h.msg_id,
        &[
            Payload::Sa(vec![chosen]),
            Payload::Nonce(vec![peer_nr; 32]),
            inner[3].clone(),
            inner[4].clone(),
        ],
    );
    let ev = s.on_message(&resp, t0, &mut rng).unwrap();
    (s, ev, old, ours_in, theirs_in)
}

#[test]
fn child_rekey_collision_lost_deletes_our_new_pair() {
    let (mut s, ev, mut old, ours_in, theirs_in) = child_collision(0xff, 0x00);
    assert!(
        matches!(ev[..], [SaEvent::ChildCollisionLost { spi_in }] if spi_in == ours_in),
        "{ev:?}"
    );
    assert_eq!(s.child().spi_in, theirs_in, "the peer's pair stays");
    // We delete our redundant pair, not the old one (the winner does that).
    let (ev, _) = s.tick(Instant::now());
    let (h, inner) = old.open(&sends(&ev)[0]);
    let [Payload::Unknown { body, .. }] = &inner[..] else {
        panic!()
    };
    assert_eq!(parse_delete(body), Some((protocol::ESP, vec![ours_in])));
    // The peer deletes the old pair: answered with our old inbound SPI.
    let d = old.send(
        exchange::INFORMATIONAL,
        false,
        1,
        &[delete_body(protocol::ESP, &[0x2000])],
    );
    let ev = s
        .on_message(&d, Instant::now(), &mut SeededEntropy::new(1))
        .unwrap();
    assert!(matches!(
        ev[..],
        [
            SaEvent::Send(_),
            SaEvent::ChildDeleted { spi_in: 0x1000, .. }
        ]
    ));
    let ack = old.send(
        exchange::INFORMATIONAL,
        true,
        h.msg_id,
        &[delete_body(protocol::ESP, &[0x3000])],
    );
    let ev = s
        .on_message(&ack, Instant::now(), &mut SeededEntropy::new(1))
        .unwrap();
    assert!(matches!(
        ev[..],
        [SaEvent::ChildDeleted {
            spi_out: 0x3000,
            ..
        }]
    ));
    assert_eq!(s.child().spi_in, theirs_in);
}

#[test]
fn child_rekey_collision_won_installs_ours_and_answers_the_peers_delete() {
    let (mut s, ev, mut old, ours_in, theirs_in) = child_collision(0x00, 0xff);
    assert!(
        matches!(&ev[..], [SaEvent::ChildRekeyed { old_spi_in: 0x1000, new }] if new.spi_in == ours_in),
        "{ev:?}"
    );
    assert_eq!(s.child().spi_in, ours_in);
    // We delete the old pair.
    let (ev, _) = s.tick(Instant::now());
    let (_, inner) = old.open(&sends(&ev)[0]);
    let [Payload::Unknown { body, .. }] = &inner[..] else {
        panic!()
    };
    assert_eq!(parse_delete(body), Some((protocol::ESP, vec![0x1000])));
    // The peer deletes its redundant pair (its inbound SPI 0x4000): answered with ours.
    let d = old.send(
        exchange::INFORMATIONAL,
        false,
        1,
        &[delete_body(protocol::ESP, &[0x4000])],
    );
    let ev = s
        .on_message(&d, Instant::now(), &mut SeededEntropy::new(1))
        .unwrap();
    let [SaEvent::Send(ack), SaEvent::ChildDeleted { spi_in, .. }] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(*spi_in, theirs_in);
    let (_, inner) = old.open(ack);
    let [Payload::Unknown { body, .. }] = &inner[..] else {
        panic!()
    };
    assert_eq!(parse_delete(body), Some((protocol::ESP, vec![theirs_in])));
    assert_eq!(s.child().spi_in, ours_in);
}

/// A child collision with these nonces of the peer (`seed` varies ours): (we lost, the
/// nonce rule says we should have).
fn child_decision(peer_ni: &[u8], peer_nr: &[u8], seed: u64) -> (bool, bool) {
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut rng = SeededEntropy::new(seed);
    let mut old = Side::original();
    s.start_rekey(&mut rng);
    let (ev, _) = s.tick(t0);
    let (h, inner) = old.open(&sends(&ev)[0]);
    let (Payload::Sa(props), Payload::Nonce(our_ni)) = (&inner[1], &inner[2]) else {
        panic!("{inner:?}")
    };
    let req = peer_child_rekey(&mut old, 0, peer_ni);
    let ev = s.on_message(&req, t0, &mut rng).unwrap();
    let (_, answer) = old.open(&sends(&ev)[0]);
    let Some(Payload::Nonce(our_nr)) = answer.iter().find(|p| matches!(p, Payload::Nonce(_)))
    else {
        panic!("{answer:?}")
    };
    let mut chosen = props[0].clone();
    chosen.spi = 0x3000u32.to_be_bytes().to_vec();
    let resp = old.send(
        exchange::CREATE_CHILD_SA,
        true,
        h.msg_id,
        &[
            Payload::Sa(vec![chosen]),
            Payload::Nonce(peer_nr.to_vec()),
            inner[3].clone(),
            inner[4].clone(),
        ],
    );
    let ev = s.on_message(&resp, t0, &mut rng).unwrap();
    let lost = matches!(ev[..], [SaEvent::ChildCollisionLost { .. }]);
    let won = matches!(ev[..], [SaEvent::ChildRekeyed { .. }]);
    assert!(lost != won, "{ev:?}");
    let ours_low = our_ni.min(&peer_nr.to_vec()).clone();
    let theirs_low = peer_ni.to_vec().min(our_nr.clone());
    (lost, ours_low < theirs_low)
}

/// An IKE SA collision with these nonces of the peer: (we lost, the rule says we should have).
fn ike_decision(peer_ni: &[u8], peer_nr: &[u8]) -> (bool, bool) {
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut rng = SeededEntropy::new(13);
    let mut old = Side::original();
    let t1 = t0 + EVERY;
    let (id, spi, ni, kei) = our_request(&mut s, t1, &old);
    let (req, _dh) = peer_ike_rekey(&mut old, peer_ni);
    let ev = s.on_message(&req, t1, &mut rng).unwrap();
    let (_, answer_to_peer) = old.open(&sends(&ev)[0]);
    let Payload::Nonce(our_nr) = &answer_to_peer[1] else {
        panic!("{answer_to_peer:?}")
    };
    let (inner, _) = answer(spi, &ni, &kei, peer_nr);
    let resp = old.send(exchange::CREATE_CHILD_SA, true, id, &inner);
    let ev = s.on_message(&resp, t1, &mut rng).unwrap();
    let lost = ev
        .iter()
        .any(|e| matches!(e, SaEvent::IkeRekeyed { ours: false, .. }));
    let won = ev
        .iter()
        .any(|e| matches!(e, SaEvent::IkeRekeyed { ours: true, .. }));
    assert!(lost != won, "{ev:?}");
    // Either way exactly one Delete goes out: of our redundant SA or of the old one.
    assert_eq!(sends(&ev).len(), 1);
    let ours_low = ni.clone().min(peer_nr.to_vec());
    let theirs_low = peer_ni.to_vec().min(our_nr.clone());
    (lost, ours_low < theirs_low)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    #[test]
    fn child_collisions_follow_the_lowest_nonce(
        peer_ni in proptest::collection::vec(proptest::prelude::any::<u8>(), 16..48),
        peer_nr in proptest::collection::vec(proptest::prelude::any::<u8>(), 16..48),
        seed in proptest::prelude::any::<u64>(),
    ) {
        let (lost, should) = child_decision(&peer_ni, &peer_nr, seed);
        proptest::prop_assert_eq!(lost, should);
    }

    #[test]
    fn ike_collisions_follow_the_lowest_nonce(
        peer_ni in proptest::collection::vec(proptest::prelude::any::<u8>(), 16..48),
        peer_nr in proptest::collection::vec(proptest::prelude::any::<u8>(), 16..48),
    ) {
        let (lost, should) = ike_decision(&peer_ni, &peer_nr);
        proptest::prop_assert_eq!(lost, should);
    }
}

#[test]
fn peer_deleting_the_old_sa_in_a_collision_makes_its_new_sa_current() {
    // charon, having won, deleted the old SA before our answer came (it then answered our
    // rekey with TEMPORARY_FAILURE): the tunnel must not end.
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut rng = SeededEntropy::new(14);
    let mut old = Side::original();
    let t1 = t0 + EVERY;
    let (id, ..) = our_request(&mut s, t1, &old);
    let (req, dh) = peer_ike_rekey(&mut old, &[0x44; 32]);
    let ev = s.on_message(&req, t1, &mut rng).unwrap();
    let (_, inner) = old.open(&sends(&ev)[0]);
    let [
        Payload::Sa(p),
        Payload::Nonce(our_nr),
        Payload::Ke { data, .. },
    ] = &inner[..]
    else {
        panic!("{inner:?}")
    };
    let their_r = u64::from_be_bytes(p[0].spi[..].try_into().unwrap());
    let shared = dh.agree(data).unwrap();
    let theirs = derive_rekeyed(
        &[7; 32],
        &shared,
        &[0x44; 32],
        our_nr,
        PEER_NEW_SPI ^ 0xff,
        their_r,
    )
    .unwrap();
    let del = old.send(
        exchange::INFORMATIONAL,
        false,
        1,
        &[delete_body(protocol::IKE, &[])],
    );
    let ev = s.on_message(&del, t1, &mut rng).unwrap();
    assert!(
        matches!(
            ev[..],
            [
                SaEvent::Send(_),
                SaEvent::OldIkeDeleted { spi_i: SPI_I, .. },
                SaEvent::IkeRekeyed { ours: false, .. }
            ]
        ),
        "{ev:?}"
    );
    assert!(!s.is_closed());
    assert!(!s.ike_rekeying());
    assert_eq!(s.spis(), (PEER_NEW_SPI ^ 0xff, their_r));
    // The late answer to our rekey finds no SA.
    let busy = Payload::Notify(Notify::ike(nt::TEMPORARY_FAILURE, vec![]));
    let late = old.send(exchange::CREATE_CHILD_SA, true, id, &[busy]);
    assert!(matches!(
        s.on_message(&late, t1, &mut rng),
        Err(SaDrop::WrongSpi { .. })
    ));
    // The peer's SA works: its liveness check is answered.
    let mut new = Side {
        spi_i: PEER_NEW_SPI ^ 0xff,
        spi_r: their_r,
        keys: theirs,
        peer_initiator: true,
        iv: 0,
    };
    let dpd = new.send(exchange::INFORMATIONAL, false, 0, &[]);
    let ev = s.on_message(&dpd, t1, &mut rng).unwrap();
    let (h, _) = new.open(&sends(&ev)[0]);
    assert_eq!(h.flags, flags::RESPONSE);
    // No rekey of ours is left queued; the next one is a lifetime away.
    let (ev, _) = s.tick(t1 + Duration::from_secs(1));
    assert!(sends(&ev).is_empty());
    assert!(!s.ike_rekey_due(t1 + EVERY - Duration::from_millis(1)));
}
