//! The established IKE SA against an in-memory responder: liveness checks both ways, Delete of
//! the child and the IKE SA, our rekey and the responder's, retransmission and give-up, replays
//! and out-of-window message ids, and hostile bytes.

use std::time::{Duration, Instant};

use agent_ike::consts::{exchange, flags, notify as nt, payload as pt, protocol};
use agent_ike::ike_sa::{REKEY_SA, delete_body, parse_delete};
use agent_ike::{
    ChildIds, Entropy, Header, IkeKeys, IkeSa, IkeSaConfig, Notify, Payload, RetransmitPolicy,
    SaDrop, SaEvent, SeededEntropy, SkKey, TrafficSelector, decode, derive_child_keys,
};

const SPI_I: u64 = 0x1111_2222_3333_4444;
const SPI_R: u64 = 0x5555_6666_7777_8888;

fn keys() -> IkeKeys {
    IkeKeys {
        sk_d: [7; 32],
        sk_ei: SkKey::from_bytes(&[1; 36]),
        sk_er: SkKey::from_bytes(&[2; 36]),
        sk_pi: [3; 32],
        sk_pr: [4; 32],
    }
}

fn cfg() -> IkeSaConfig {
    IkeSaConfig {
        dpd_idle: Duration::from_secs(10),
        retransmit: RetransmitPolicy {
            initial: Duration::from_secs(1),
            factor_percent: 200,
            max: Duration::from_secs(8),
            tries: 2,
        },
        nonce_len: 32,
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
    IkeSa::new(SPI_I, SPI_R, keys(), 2, child(), cfg(), t0)
}

/// The responder's side: seals with SK_er, opens with SK_ei.
struct Peer {
    iv: u64,
}

impl Peer {
    fn send(&mut self, exch: u8, response: bool, id: u32, inner: &[Payload]) -> Vec<u8> {
        self.iv += 1;
        let h = Header {
            spi_i: SPI_I,
            spi_r: SPI_R,
            exchange: exch,
            flags: if response { flags::RESPONSE } else { 0 },
            msg_id: id,
        };
        agent_ike::sk::seal(&h, inner, &SkKey::from_bytes(&[2; 36]), self.iv).unwrap()
    }
    fn open(bytes: &[u8]) -> (Header, Vec<Payload>) {
        let m = decode(bytes).unwrap();
        let p = agent_ike::sk::open(bytes, &m, &SkKey::from_bytes(&[1; 36])).unwrap();
        (m.header, p)
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

#[test]
fn liveness_check_is_answered_and_replays_get_the_same_answer() {
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut rng = SeededEntropy::new(1);
    let mut p = Peer { iv: 0 };
    let req = p.send(exchange::INFORMATIONAL, false, 0, &[]);
    let ev = s.on_message(&req, t0, &mut rng).unwrap();
    let out = sends(&ev);
    assert_eq!(out.len(), 1);
    let (h, inner) = Peer::open(&out[0]);
    assert_eq!(h.msg_id, 0);
    assert_eq!(h.exchange, exchange::INFORMATIONAL);
    assert_eq!(h.flags, flags::INITIATOR | flags::RESPONSE);
    assert!(inner.is_empty());
    // The same request again: the same bytes.
    let again = s.on_message(&req, t0, &mut rng).unwrap();
    assert_eq!(sends(&again), out);
    // An old id and one from the future are dropped.
    let future = p.send(exchange::INFORMATIONAL, false, 5, &[]);
    assert_eq!(
        s.on_message(&future, t0, &mut rng).unwrap_err(),
        SaDrop::RequestOutOfWindow {
            got: 5,
            expected: 1
        }
    );
    let next = p.send(exchange::INFORMATIONAL, false, 1, &[]);
    assert_eq!(sends(&s.on_message(&next, t0, &mut rng).unwrap()).len(), 1);
    let stale = p.send(exchange::INFORMATIONAL, false, 0, &[]);
    assert!(matches!(
        s.on_message(&stale, t0, &mut rng),
        Err(SaDrop::RequestOutOfWindow { got: 0, .. })
    ));
    assert_eq!(s.message_ids(), (2, 2));
}

#[test]
fn our_liveness_check_after_silence_then_peer_dead() {
    let t0 = Instant::now();
    let mut s = sa(t0);
    let (ev, next) = s.tick(t0);
    assert!(ev.is_empty());
    assert_eq!(next, t0 + Duration::from_secs(10));
    let t1 = t0 + Duration::from_secs(10);
    let (ev, _) = s.tick(t1);
    let out = sends(&ev);
    let (h, inner) = Peer::open(&out[0]);
    assert_eq!(
        (h.msg_id, h.exchange, h.flags),
        (2, exchange::INFORMATIONAL, flags::INITIATOR)
    );
    assert!(inner.is_empty());
    // Retransmitted the same bytes after 1 s, then 2 s, then given up after 4 s more.
    let (ev, _) = s.tick(t1 + Duration::from_secs(1));
    assert_eq!(sends(&ev), out);
    let (ev, _) = s.tick(t1 + Duration::from_secs(3));
    assert_eq!(sends(&ev), out);
    let (ev, _) = s.tick(t1 + Duration::from_secs(7));
    assert!(matches!(ev[..], [SaEvent::PeerDead { tries: 2 }]));
    assert!(s.is_closed());
}

#[test]
fn answered_liveness_check_keeps_the_sa() {
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut rng = SeededEntropy::new(2);
    let mut p = Peer { iv: 0 };
    let t1 = t0 + Duration::from_secs(10);
    let (ev, _) = s.tick(t1);
    assert_eq!(sends(&ev).len(), 1);
    // A response with a wrong id or unauthentic bytes is dropped.
    let wrong = p.send(exchange::INFORMATIONAL, true, 3, &[]);
    assert!(matches!(
        s.on_message(&wrong, t1, &mut rng),
        Err(SaDrop::UnexpectedResponse { got: 3 })
    ));
    let mut forged = p.send(exchange::INFORMATIONAL, true, 2, &[]);
    let n = forged.len();
    forged[n - 1] ^= 1;
    assert!(matches!(
        s.on_message(&forged, t1, &mut rng),
        Err(SaDrop::Undecryptable(_))
    ));
    let resp = p.send(exchange::INFORMATIONAL, true, 2, &[]);
    assert!(s.on_message(&resp, t1, &mut rng).unwrap().is_empty());
    // Answered: no retransmission, the next check 10 s after the answer.
    let (ev, next) = s.tick(t1 + Duration::from_secs(5));
    assert!(ev.is_empty());
    assert_eq!(next, t1 + Duration::from_secs(10));
    // The same response again answers nothing outstanding.
    assert!(s.on_message(&resp, t1, &mut rng).is_err());
}

#[test]
fn peer_deletes_the_child_then_the_ike_sa() {
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut rng = SeededEntropy::new(3);
    let mut p = Peer { iv: 0 };
    let del = p.send(
        exchange::INFORMATIONAL,
        false,
        0,
        &[delete_body(protocol::ESP, &[0x2000])],
    );
    let ev = s.on_message(&del, t0, &mut rng).unwrap();
    assert!(matches!(
        ev[1],
        SaEvent::ChildDeleted {
            spi_in: 0x1000,
            spi_out: 0x2000
        }
    ));
    let (_, inner) = Peer::open(&sends(&ev)[0]);
    let [Payload::Unknown { kind, body }] = &inner[..] else {
        panic!("{inner:?}")
    };
    assert_eq!(*kind, pt::DELETE);
    assert_eq!(parse_delete(body), Some((protocol::ESP, vec![0x1000])));
    let del_ike = p.send(
        exchange::INFORMATIONAL,
        false,
        1,
        &[delete_body(protocol::IKE, &[])],
    );
    let ev = s.on_message(&del_ike, t0, &mut rng).unwrap();
    assert!(matches!(ev[..], [SaEvent::Send(_), SaEvent::IkeDeleted]));
    assert!(s.is_closed());
    assert_eq!(
        s.on_message(&del_ike, t0, &mut rng).unwrap_err(),
        SaDrop::Closed
    );
}

#[test]
fn our_rekey_installs_new_keys_and_deletes_the_old_child() {
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut rng = SeededEntropy::new(4);
    let mut p = Peer { iv: 0 };
    s.start_rekey(&mut rng);
    s.start_rekey(&mut rng); // once only
    assert!(s.rekeying());
    let (ev, _) = s.tick(t0);
    let out = sends(&ev);
    assert_eq!(out.len(), 1);
    let (h, inner) = Peer::open(&out[0]);
    assert_eq!((h.msg_id, h.exchange), (2, exchange::CREATE_CHILD_SA));
    let Payload::Notify(n) = &inner[0] else {
        panic!()
    };
    assert_eq!(
        (n.kind, n.protocol, &n.spi[..]),
        (REKEY_SA, protocol::ESP, &0x1000u32.to_be_bytes()[..])
    );
    let Payload::Sa(props) = &inner[1] else {
        panic!()
    };
    assert!(
        !inner.iter().any(|p| matches!(p, Payload::Ke { .. })),
        "no PFS"
    );
    let Payload::Nonce(ni) = &inner[2] else {
        panic!()
    };
    let mut chosen = props[0].clone();
    let new_in = u32::from_be_bytes(chosen.spi[..].try_into().unwrap());
    chosen.spi = 0x3000u32.to_be_bytes().to_vec();
    let nr = vec![9u8; 32];
    let resp = p.send(
        exchange::CREATE_CHILD_SA,
        true,
        2,
        &[
            Payload::Sa(vec![chosen]),
            Payload::Nonce(nr.clone()),
            inner[3].clone(),
            inner[4].clone(),
        ],
    );
    let ev = s.on_message(&resp, t0, &mut rng).unwrap();
    let [SaEvent::ChildRekeyed { old_spi_in, new }] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(*old_spi_in, 0x1000);
    assert_eq!((new.spi_in, new.spi_out), (new_in, 0x3000));
    let want = derive_child_keys(&[7; 32], ni, &nr).unwrap();
    assert_eq!(new.keys, want);
    assert_eq!(s.child().spi_in, new_in);
    // Next: the Delete of the old pair (our old inbound SPI), then its acknowledgement.
    let (ev, _) = s.tick(t0);
    let (h, inner) = Peer::open(&sends(&ev)[0]);
    assert_eq!((h.msg_id, h.exchange), (3, exchange::INFORMATIONAL));
    let [Payload::Unknown { body, .. }] = &inner[..] else {
        panic!()
    };
    assert_eq!(parse_delete(body), Some((protocol::ESP, vec![0x1000])));
    let ack = p.send(
        exchange::INFORMATIONAL,
        true,
        3,
        &[delete_body(protocol::ESP, &[0x2000])],
    );
    let ev = s.on_message(&ack, t0, &mut rng).unwrap();
    assert!(matches!(
        ev[..],
        [SaEvent::ChildDeleted {
            spi_in: 0x1000,
            spi_out: 0x2000
        }]
    ));
}

#[test]
fn refused_rekey_is_reported_and_the_old_child_stays() {
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut rng = SeededEntropy::new(5);
    let mut p = Peer { iv: 0 };
    s.start_rekey(&mut rng);
    let _ = s.tick(t0);
    let resp = p.send(
        exchange::CREATE_CHILD_SA,
        true,
        2,
        &[Payload::Notify(Notify::ike(
            nt::TEMPORARY_FAILURE,
            Vec::new(),
        ))],
    );
    let ev = s.on_message(&resp, t0, &mut rng).unwrap();
    assert!(matches!(
        ev[..],
        [SaEvent::RekeyRefused(nt::TEMPORARY_FAILURE)]
    ));
    assert_eq!(s.child().spi_in, 0x1000);
    assert!(!s.rekeying());
}

fn peer_rekey(ni: &[u8], spi: u32, with_ke: bool) -> Vec<Payload> {
    let c = child();
    let mut v = vec![
        Payload::Notify(Notify {
            protocol: protocol::ESP,
            spi: spi.to_be_bytes().to_vec(),
            kind: REKEY_SA,
            data: Vec::new(),
        }),
        Payload::Sa(vec![agent_ike::child::offer(0x4000)]),
        Payload::Nonce(ni.to_vec()),
    ];
    if with_ke {
        v.push(Payload::Ke {
            group: 31,
            data: vec![1; 32],
        });
    }
    v.push(Payload::TsI(c.remote_ts));
    v.push(Payload::TsR(c.local_ts));
    v
}

#[test]
fn responder_rekey_is_answered_with_keys_split_its_way() {
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut rng = SeededEntropy::new(6);
    let mut p = Peer { iv: 0 };
    let ni = vec![5u8; 32];
    let req = p.send(
        exchange::CREATE_CHILD_SA,
        false,
        0,
        &peer_rekey(&ni, 0x2000, false),
    );
    let ev = s.on_message(&req, t0, &mut rng).unwrap();
    let (h, inner) = Peer::open(&sends(&ev)[0]);
    assert_eq!((h.msg_id, h.flags), (0, flags::INITIATOR | flags::RESPONSE));
    let Payload::Sa(chosen) = &inner[0] else {
        panic!("{inner:?}")
    };
    let Payload::Nonce(nr) = &inner[1] else {
        panic!()
    };
    let SaEvent::ChildRekeyed { old_spi_in, new } = &ev[1] else {
        panic!()
    };
    assert_eq!(*old_spi_in, 0x1000);
    assert_eq!(new.spi_out, 0x4000);
    assert_eq!(new.spi_in.to_be_bytes().to_vec(), chosen[0].spi);
    let k = derive_child_keys(&[7; 32], &ni, nr).unwrap();
    // The peer initiated: it seals with the first half, we with the second.
    assert_eq!(new.keys.responder_to_initiator, k.initiator_to_responder);
    assert_eq!(new.keys.initiator_to_responder, k.responder_to_initiator);
    assert_eq!(new.local_ts, child().local_ts);
    // Its Delete of the old pair next.
    let del = p.send(
        exchange::INFORMATIONAL,
        false,
        1,
        &[delete_body(protocol::ESP, &[0x2000])],
    );
    let ev = s.on_message(&del, t0, &mut rng).unwrap();
    // The old pair goes: our old inbound SPI in the answer, and reported for removal.
    let (_, inner) = Peer::open(&sends(&ev)[0]);
    let [Payload::Unknown { body, .. }] = &inner[..] else {
        panic!("{inner:?}")
    };
    assert_eq!(parse_delete(body), Some((protocol::ESP, vec![0x1000])));
    assert!(matches!(
        ev[1],
        SaEvent::ChildDeleted {
            spi_in: 0x1000,
            spi_out: 0x2000
        }
    ));
}

#[test]
fn responder_requests_we_do_not_support_are_refused() {
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut rng = SeededEntropy::new(7);
    let mut p = Peer { iv: 0 };
    let cases: [(Vec<Payload>, u16); 3] = [
        (peer_rekey(&[5; 32], 0x2000, true), nt::NO_PROPOSAL_CHOSEN),
        (peer_rekey(&[5; 32], 0x9999, false), 11),
        (
            peer_rekey(&[5; 32], 0x2000, false)[1..].to_vec(),
            nt::NO_ADDITIONAL_SAS,
        ),
    ];
    for (id, (payloads, want)) in cases.into_iter().enumerate() {
        let req = p.send(exchange::CREATE_CHILD_SA, false, id as u32, &payloads);
        let ev = s.on_message(&req, t0, &mut rng).unwrap();
        assert_eq!(ev.len(), 1);
        let (_, inner) = Peer::open(&sends(&ev)[0]);
        let [Payload::Notify(n)] = &inner[..] else {
            panic!("{inner:?}")
        };
        assert_eq!(n.kind, want);
    }
    assert_eq!(s.child().spi_in, 0x1000);
}

#[test]
fn hostile_bytes_never_panic() {
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut rng = SeededEntropy::new(8);
    let mut p = Peer { iv: 0 };
    let req = p.send(
        exchange::CREATE_CHILD_SA,
        false,
        0,
        &peer_rekey(&[5; 32], 0x2000, false),
    );
    for i in 0..req.len() {
        for bit in 0..8 {
            let mut b = req.clone();
            b[i] ^= 1 << bit;
            assert!(
                s.on_message(&b, t0, &mut rng).is_err(),
                "byte {i} bit {bit}"
            );
        }
        assert!(s.on_message(&req[..i], t0, &mut rng).is_err());
    }
    let mut junk = [0u8; 300];
    for seed in 0..500u64 {
        SeededEntropy::new(seed).fill(&mut junk);
        let _ = s.on_message(&junk[..(seed as usize % 300)], t0, &mut rng);
    }
    assert_eq!(s.message_ids(), (2, 0));
    assert!(s.on_message(&req, t0, &mut rng).is_ok());
}

#[test]
fn responder_rekeys_the_ike_sa_and_deletes_the_old_one() {
    use agent_ike::{DhGroup, DhPrivate, Proposal, Transform, derive_rekeyed};
    let t0 = Instant::now();
    let mut s = sa(t0);
    let mut rng = SeededEntropy::new(10);
    let mut p = Peer { iv: 0 };
    let dh = DhPrivate::generate(DhGroup::Curve25519).unwrap();
    let new_spi_i: u64 = 0xaaaa_bbbb_cccc_dddd;
    let ni = vec![6u8; 32];
    let req = p.send(
        exchange::CREATE_CHILD_SA,
        false,
        0,
        &[
            Payload::Sa(vec![Proposal {
                num: 1,
                protocol: protocol::IKE,
                spi: new_spi_i.to_be_bytes().to_vec(),
                transforms: vec![
                    Transform::AES256_GCM16,
                    Transform::PRF_SHA256,
                    Transform::dh(31),
                ],
            }]),
            Payload::Nonce(ni.clone()),
            Payload::Ke {
                group: 31,
                data: dh.public().to_vec(),
            },
        ],
    );
    let ev = s.on_message(&req, t0, &mut rng).unwrap();
    let [
        SaEvent::Send(resp),
        SaEvent::IkeRekeyed {
            spi_i,
            spi_r,
            ours: false,
        },
    ] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(*spi_i, new_spi_i);
    assert_eq!(s.spis(), (*spi_i, *spi_r));
    // The response is sealed with the old keys.
    let (h, inner) = Peer::open(resp);
    assert_eq!((h.spi_i, h.msg_id), (SPI_I, 0));
    let [
        Payload::Sa(chosen),
        Payload::Nonce(nr),
        Payload::Ke { group: 31, data },
    ] = &inner[..]
    else {
        panic!("{inner:?}")
    };
    assert_eq!(chosen[0].spi, spi_r.to_be_bytes().to_vec());
    let shared = dh.agree(data).unwrap();
    let k = derive_rekeyed(&[7; 32], &shared, &ni, nr, *spi_i, *spi_r).unwrap();
    // On the new SA the peer is the original initiator: it seals with SK_ei, flags I.
    let h = Header {
        spi_i: *spi_i,
        spi_r: *spi_r,
        exchange: exchange::INFORMATIONAL,
        flags: flags::INITIATOR,
        msg_id: 0,
    };
    let dpd = agent_ike::sk::seal(&h, &[], &k.sk_ei, 1).unwrap();
    let ev = s.on_message(&dpd, t0, &mut rng).unwrap();
    let out = sends(&ev);
    let m = decode(&out[0]).unwrap();
    assert_eq!(m.header.flags, flags::RESPONSE);
    assert_eq!((m.header.spi_i, m.header.msg_id), (*spi_i, 0));
    assert!(
        agent_ike::sk::open(&out[0], &m, &k.sk_er)
            .unwrap()
            .is_empty()
    );
    // The Delete of the old IKE SA on the old SPIs: answered, not reported as our end.
    let del = p.send(
        exchange::INFORMATIONAL,
        false,
        1,
        &[delete_body(protocol::IKE, &[])],
    );
    let ev = s.on_message(&del, t0, &mut rng).unwrap();
    assert!(matches!(
        ev[..],
        [
            SaEvent::Send(_),
            SaEvent::OldIkeDeleted { spi_i: SPI_I, .. }
        ]
    ));
    assert!(!s.is_closed());
    assert!(
        s.on_message(&del, t0, &mut rng).is_err(),
        "the old SA is gone"
    );
    // Our own liveness check runs on the new SA with id 0 and without the I flag.
    let (ev, _) = s.tick(t0 + Duration::from_secs(10));
    let out = sends(&ev);
    let m = decode(&out[0]).unwrap();
    assert_eq!(
        (m.header.spi_r, m.header.msg_id, m.header.flags),
        (*spi_r, 0, 0)
    );
    assert!(agent_ike::sk::open(&out[0], &m, &k.sk_er).is_ok());
}
