//! The IKE_SA_INIT initiator against an in-memory responder built from this crate's codec:
//! acceptance with matching keys on both sides, cookie and INVALID_KE rounds, every drop
//! reason, the retransmission timer, and arbitrary bytes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agent_ike::consts::{exchange, flags, notify};
use agent_ike::{
    Action, DhGroup, DhPrivate, DropReason, Header, IkeKeys, InitiatorConfig, Notify, Payload,
    Proposal, Resend, RetransmitPolicy, SaInitiator, SeededEntropy, Timeout, Transform, decode,
    derive, encode_message,
};
use proptest::prelude::*;

fn cfg(groups: Vec<DhGroup>) -> InitiatorConfig {
    InitiatorConfig {
        groups,
        local: "10.0.0.1:500".parse::<SocketAddr>().unwrap(),
        remote: "10.0.0.2:500".parse::<SocketAddr>().unwrap(),
        nonce_len: 32,
        retransmit: RetransmitPolicy {
            initial: Duration::from_secs(1),
            factor_percent: 200,
            max: Duration::from_secs(3),
            tries: 3,
        },
    }
}

fn response_header(spi_i: u64, spi_r: u64) -> Header {
    Header {
        spi_i,
        spi_r,
        exchange: exchange::IKE_SA_INIT,
        flags: flags::RESPONSE,
        msg_id: 0,
    }
}

fn sa(group: u16) -> Payload {
    Payload::Sa(vec![Proposal {
        num: 1,
        protocol: 1,
        spi: vec![],
        transforms: vec![
            Transform::AES256_GCM16,
            Transform::PRF_SHA256,
            Transform::dh(group),
        ],
    }])
}

/// A responder that accepts the request: its response and its own view of the keys.
fn respond(request: &[u8], spi_r: u64) -> (Vec<u8>, IkeKeys) {
    let m = decode(request).unwrap();
    let (mut ke, mut ni) = (None, None);
    for p in &m.payloads {
        match p {
            Payload::Ke { group, data } => ke = Some((*group, data.clone())),
            Payload::Nonce(n) => ni = Some(n.clone()),
            _ => {}
        }
    }
    let (group, ke_i) = ke.unwrap();
    let dh = DhPrivate::generate(DhGroup::from_number(group).unwrap()).unwrap();
    let nr = vec![0x77; 24];
    let payloads = [
        sa(group),
        Payload::Ke {
            group,
            data: dh.public().to_vec(),
        },
        Payload::Nonce(nr.clone()),
    ];
    let bytes = encode_message(&response_header(m.header.spi_i, spi_r), &payloads).unwrap();
    let shared = dh.agree(&ke_i).unwrap();
    let keys = derive(&ni.unwrap(), &nr, &shared, m.header.spi_i, spi_r).unwrap();
    (bytes, keys)
}

fn notify_response(spi_i: u64, kind: u16, data: Vec<u8>) -> Vec<u8> {
    encode_message(
        &response_header(spi_i, 0),
        &[Payload::Notify(Notify::ike(kind, data))],
    )
    .unwrap()
}

fn started(groups: Vec<DhGroup>) -> (SaInitiator, Vec<u8>, Instant) {
    let now = Instant::now();
    let mut i = SaInitiator::new(cfg(groups), &mut SeededEntropy::new(42)).unwrap();
    let req = i.start(now).unwrap();
    (i, req, now)
}

#[test]
fn accepts_and_both_sides_hold_the_same_keys() {
    for g in [DhGroup::Curve25519, DhGroup::Ecp256] {
        let (mut i, req, now) = started(vec![g]);
        let (resp, theirs) = respond(&req, 0xabcd);
        let Action::Established(done) = i.on_message(&resp, now) else {
            panic!("not established")
        };
        assert_eq!(done.keys, theirs);
        assert_eq!((done.group, done.spi_r), (g, 0xabcd));
        assert_eq!((done.request, done.response), (req, resp.clone()));
        assert!(matches!(
            i.on_message(&resp, now),
            Action::Drop(DropReason::NotExpecting)
        ));
        assert_eq!(i.next_timeout(now), Timeout::Idle);
    }
}

#[test]
fn seeded_entropy_gives_the_same_spi_and_nonce() {
    let a = SaInitiator::new(cfg(vec![DhGroup::Curve25519]), &mut SeededEntropy::new(7)).unwrap();
    let b = SaInitiator::new(cfg(vec![DhGroup::Curve25519]), &mut SeededEntropy::new(7)).unwrap();
    assert_eq!(a.spi_i(), b.spi_i());
}

#[test]
fn cookie_is_sent_back_first_with_the_same_spi() {
    let (mut i, req, now) = started(vec![DhGroup::Curve25519]);
    let spi = i.spi_i();
    let Action::Send { request, why } =
        i.on_message(&notify_response(spi, notify::COOKIE, vec![3; 20]), now)
    else {
        panic!()
    };
    assert_eq!(why, Resend::Cookie);
    let m = decode(&request).unwrap();
    assert_eq!(m.header.spi_i, spi);
    assert_eq!(
        m.payloads[0],
        Payload::Notify(Notify::ike(notify::COOKIE, vec![3; 20]))
    );
    assert_eq!(decode(&req).unwrap().payloads, m.payloads[1..]);
    let (resp, theirs) = respond(&request, 5);
    let Action::Established(done) = i.on_message(&resp, now) else {
        panic!()
    };
    assert_eq!(done.keys, theirs);
    // Bad cookies and endless cookie rounds.
    let (mut i, _, now) = started(vec![DhGroup::Curve25519]);
    let spi = i.spi_i();
    let big = notify_response(spi, notify::COOKIE, vec![1; 65]);
    assert_eq!(
        unwrap_drop(i.on_message(&big, now)),
        DropReason::BadCookie { len: 65 }
    );
    for _ in 0..3 {
        assert!(matches!(
            i.on_message(&notify_response(spi, notify::COOKIE, vec![1]), now),
            Action::Send { .. }
        ));
    }
    let again = i.on_message(&notify_response(spi, notify::COOKIE, vec![1]), now);
    assert_eq!(unwrap_drop(again), DropReason::TooManyCookies);
}

fn unwrap_drop(a: Action) -> DropReason {
    match a {
        Action::Drop(r) => r,
        other => panic!("expected a drop, got {other:?}"),
    }
}

#[test]
fn invalid_ke_retries_once_per_offered_group() {
    let (mut i, _, now) = started(vec![DhGroup::Ecp256, DhGroup::Curve25519]);
    let spi = i.spi_i();
    let want31 = notify_response(
        spi,
        notify::INVALID_KE_PAYLOAD,
        31u16.to_be_bytes().to_vec(),
    );
    let Action::Send { request, why } = i.on_message(&want31, now) else {
        panic!()
    };
    assert_eq!(why, Resend::InvalidKe { group: 31 });
    let m = decode(&request).unwrap();
    assert!(m.payloads.contains(&Payload::Ke {
        group: 31,
        data: match &m.payloads[1] {
            Payload::Ke { data, .. } => data.clone(),
            _ => panic!(),
        }
    }));
    assert_eq!(
        m.payloads[0],
        sa_offer(&[19, 31]),
        "the full offer stays (no downgrade)"
    );
    assert_eq!(
        unwrap_drop(i.on_message(&want31, now)),
        DropReason::GroupAlreadyTried(31)
    );
    let want19 = notify_response(
        spi,
        notify::INVALID_KE_PAYLOAD,
        19u16.to_be_bytes().to_vec(),
    );
    assert_eq!(
        unwrap_drop(i.on_message(&want19, now)),
        DropReason::GroupAlreadyTried(19)
    );
    let want14 = notify_response(
        spi,
        notify::INVALID_KE_PAYLOAD,
        14u16.to_be_bytes().to_vec(),
    );
    assert_eq!(
        unwrap_drop(i.on_message(&want14, now)),
        DropReason::GroupNotOffered(14)
    );
    let (resp, theirs) = respond(&request, 9);
    let Action::Established(done) = i.on_message(&resp, now) else {
        panic!()
    };
    assert_eq!((done.group, done.keys), (DhGroup::Curve25519, theirs));
}

fn sa_offer(groups: &[u16]) -> Payload {
    let mut t = vec![Transform::AES256_GCM16, Transform::PRF_SHA256];
    t.extend(groups.iter().map(|g| Transform::dh(*g)));
    Payload::Sa(vec![Proposal {
        num: 1,
        protocol: 1,
        spi: vec![],
        transforms: t,
    }])
}

#[test]
fn wrong_or_unexpected_responses_are_dropped_with_a_reason() {
    let (mut i, req, now) = started(vec![DhGroup::Curve25519]);
    let spi = i.spi_i();
    let (good, _) = respond(&req, 77);
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (
            edit(&|b| b[0] ^= 1),
            DropReason::WrongSpi {
                got: spi ^ (1 << 56),
            },
        ),
        (
            edit(&|b| b[19] = flags::INITIATOR),
            DropReason::NotAResponse {
                flags: flags::INITIATOR,
            },
        ),
        (
            edit(&|b| b[18] = exchange::IKE_AUTH),
            DropReason::WrongExchange(exchange::IKE_AUTH),
        ),
        (edit(&|b| b[23] = 1), DropReason::WrongMessageId(1)),
        (edit(&|b| b[8..16].fill(0)), DropReason::ZeroResponderSpi),
        (
            good[..40].to_vec(),
            DropReason::Malformed(agent_ike::DecodeError::LengthMismatch {
                declared: good.len() as u32,
                got: 40,
            }),
        ),
    ];
    for (bytes, why) in cases {
        assert_eq!(unwrap_drop(i.on_message(&bytes, now)), why);
    }
    let h = response_header(spi, 77);
    let resp = |p: &[Payload]| encode_message(&h, p).unwrap();
    let ke = Payload::Ke {
        group: 31,
        data: vec![9; 32],
    };
    let nonce = Payload::Nonce(vec![1; 32]);
    let cases = vec![
        (
            resp(&[
                sa(19),
                Payload::Ke {
                    group: 19,
                    data: vec![9; 64],
                },
                nonce.clone(),
            ]),
            DropReason::NotOffered("a transform we did not offer"),
        ),
        (
            resp(&[
                sa(31),
                Payload::Ke {
                    group: 19,
                    data: vec![9; 64],
                },
                nonce.clone(),
            ]),
            DropReason::KeGroupMismatch { ke: 19, chosen: 31 },
        ),
        (
            resp(&[ke.clone(), nonce.clone()]),
            DropReason::Missing("SA"),
        ),
        (resp(&[sa(31), nonce.clone()]), DropReason::Missing("KE")),
        (
            resp(&[sa(31), ke.clone(), Payload::Nonce(vec![1; 15])]),
            DropReason::BadNonce(15),
        ),
        (
            resp(&[sa_offer(&[31, 31]), ke.clone(), nonce.clone()]),
            DropReason::NotOffered("two transforms of one type"),
        ),
        (
            resp(&[sa(31), ke.clone(), nonce.clone(), sa(31)]),
            DropReason::Unexpected("two SA payloads"),
        ),
    ];
    for (bytes, why) in cases {
        assert_eq!(unwrap_drop(i.on_message(&bytes, now)), why);
    }
    // After all that, the real response still completes the exchange.
    assert!(matches!(i.on_message(&good, now), Action::Established(_)));
}

#[test]
fn error_notify_is_kept_and_reported_at_give_up() {
    let (mut i, req, t0) = started(vec![DhGroup::Curve25519]);
    let spi = i.spi_i();
    let e = notify_response(spi, notify::NO_PROPOSAL_CHOSEN, vec![]);
    assert_eq!(
        unwrap_drop(i.on_message(&e, t0)),
        DropReason::ErrorNotify(14)
    );
    let s = Duration::from_secs;
    assert_eq!(i.next_timeout(t0), Timeout::WaitUntil(t0 + s(1)));
    assert_eq!(i.next_timeout(t0 + s(1)), Timeout::Resend(req.clone()));
    assert_eq!(i.next_timeout(t0 + s(2)), Timeout::WaitUntil(t0 + s(3)));
    assert_eq!(i.next_timeout(t0 + s(3)), Timeout::Resend(req.clone()));
    assert_eq!(
        i.next_timeout(t0 + s(5)),
        Timeout::WaitUntil(t0 + s(6)),
        "capped at max 3 s"
    );
    assert_eq!(i.next_timeout(t0 + s(6)), Timeout::Resend(req));
    assert_eq!(
        i.next_timeout(t0 + s(9)),
        Timeout::GiveUp {
            tries: 3,
            last_error: Some(14)
        }
    );
    assert_eq!(i.next_timeout(t0 + s(10)), Timeout::Idle);
}

#[test]
fn config_errors_are_typed() {
    let mut rng = SeededEntropy::new(1);
    assert!(SaInitiator::new(cfg(vec![]), &mut rng).is_err());
    let mut c = cfg(vec![DhGroup::Ecp256]);
    c.nonce_len = 8;
    assert!(SaInitiator::new(c, &mut rng).is_err());
    let (mut i, _, now) = started(vec![DhGroup::Ecp256]);
    assert!(i.start(now).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_establish(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (mut i, _, now) = started(vec![DhGroup::Curve25519]);
        let established = matches!(i.on_message(&b, now), Action::Established(_));
        prop_assert!(!established);
    }
}

#[test]
fn announces_sha2_256_and_identity_and_reads_the_responders_hashes_and_nat_detection() {
    use agent_ike::nat::nat_detection_hash;
    let (mut i, req, now) = started(vec![DhGroup::Curve25519]);
    let m = decode(&req).unwrap();
    assert!(
        m.notifies()
            .any(|n| n.kind == notify::SIGNATURE_HASH_ALGORITHMS && n.data == [0, 2, 0, 5])
    );
    let (resp, _) = respond(&req, 0xabcd);
    let base = decode(&resp).unwrap();
    let local = "10.0.0.1:500".parse::<SocketAddr>().unwrap();
    let seen_remote = "192.0.2.7:4500".parse::<SocketAddr>().unwrap();
    let mut payloads = base.payloads.clone();
    payloads.push(Payload::Notify(Notify::ike(
        notify::SIGNATURE_HASH_ALGORITHMS,
        vec![0, 2, 0, 3, 9],
    )));
    payloads.push(Payload::Notify(Notify::ike(
        notify::NAT_DETECTION_SOURCE_IP,
        nat_detection_hash(m.header.spi_i, 0xabcd, seen_remote),
    )));
    payloads.push(Payload::Notify(Notify::ike(
        notify::NAT_DETECTION_DESTINATION_IP,
        nat_detection_hash(m.header.spi_i, 0xabcd, local),
    )));
    let resp = encode_message(&base.header, &payloads).unwrap();
    let Action::Established(done) = i.on_message(&resp, now) else {
        panic!("not established")
    };
    assert_eq!(
        done.peer_signature_hashes,
        vec![2, 3],
        "odd trailing byte ignored"
    );
    assert!(done.nat.peer_supports && done.nat.remote_behind_nat && !done.nat.local_behind_nat);
    // Without the notifies: no hashes, NAT support unknown.
    let (mut i, req, now) = started(vec![DhGroup::Curve25519]);
    let (resp, _) = respond(&req, 0xabcd);
    let Action::Established(done) = i.on_message(&resp, now) else {
        panic!("not established")
    };
    assert!(done.peer_signature_hashes.is_empty());
    assert!(!done.nat.peer_supports && !done.nat.detected());
}
