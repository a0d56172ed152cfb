//! The IKE_AUTH initiator against an in-memory responder built from this crate's codec and
//! ring: what we send (opened with SK_ei, our AUTH checked as a responder would), acceptance
//! with the child SA's SPIs and keys, every refusal notify, every way the responder can be
//! wrong, malformed and unauthenticated responses dropped without a panic, and retransmission.

#[path = "support/pki.rs"]
mod pki;

use std::time::{Duration, Instant, SystemTime};

use agent_ike::cert::sha256;
use agent_ike::consts::{auth, cert as ct, cfg, exchange, flags, id, notify as nt};
use agent_ike::signature::{PublicKey, SigningKey, verify};
use agent_ike::{
    AuthAction, AuthConfig, AuthDrop, AuthFailure, AuthInitiator, AuthStartError, CertError,
    ChildFailure, Config, ConfigAttribute, DhGroup, Header, Identity, LocalCredential,
    NatDetection, Notify, Payload, PeerTrust, Proposal, Refusal, RetransmitPolicy, SaInitDone,
    SeededEntropy, SignatureError, Timeout, TrafficSelector, Transform, decode, derive,
    derive_child_keys, encode_message, signed_octets, sk,
};
use pki::{Ca, Leaf};
use proptest::prelude::*;

const SPI_I: u64 = 0x1111_2222_3333_4444;
const SPI_R: u64 = 0x5555_6666_7777_8888;
const RESPONDER_SPI: u32 = 0xc0de_0001;

fn ni() -> Vec<u8> {
    vec![0x11; 32]
}
fn nr() -> Vec<u8> {
    vec![0x22; 32]
}

/// What IKE_SA_INIT left behind (the messages stand in for the real ones: only their bytes
/// are signed).
fn sa_init_done(peer_hashes: Vec<u16>) -> SaInitDone {
    SaInitDone {
        spi_i: SPI_I,
        spi_r: SPI_R,
        group: DhGroup::Curve25519,
        nonce_i: ni(),
        nonce_r: nr(),
        keys: derive(&ni(), &nr(), &[0x33; 32], SPI_I, SPI_R).unwrap(),
        request: b"IKE_SA_INIT request bytes".to_vec(),
        response: b"IKE_SA_INIT response bytes".to_vec(),
        cert_requested: true,
        peer_signature_hashes: peer_hashes,
        nat: NatDetection::default(),
    }
}

struct World {
    ca: Ca,
    agent: Leaf,
    fw: Leaf,
}

impl World {
    fn new() -> World {
        let ca = Ca::new("tenant CA");
        let agent = ca.issue("agent", "agent.test");
        let fw = ca.issue("firewall", "fw.tenant.test");
        World { ca, agent, fw }
    }

    fn config(&self, trust: PeerTrust) -> AuthConfig {
        AuthConfig {
            credential: LocalCredential::new(&self.agent.der, &self.agent.pkcs8).unwrap(),
            trust,
            peer_id: None,
            local_ts: vec![TrafficSelector::v4([10, 30, 0, 5], [10, 30, 0, 5])],
            remote_ts: vec![TrafficSelector::v4([10, 0, 0, 0], [10, 255, 255, 255])],
            initial_contact: true,
            request_address: false,
            retransmit: RetransmitPolicy {
                initial: Duration::from_secs(1),
                factor_percent: 200,
                max: Duration::from_secs(4),
                tries: 2,
            },
        }
    }

    fn started(&self, trust: PeerTrust) -> (AuthInitiator, Vec<u8>, Instant) {
        let mut a = AuthInitiator::new(
            sa_init_done(vec![2, 3]),
            self.config(trust),
            &mut SeededEntropy::new(9),
        )
        .unwrap();
        let now = Instant::now();
        let req = a.start(now).unwrap();
        (a, req, now)
    }

    fn ca_trust(&self) -> PeerTrust {
        PeerTrust::Ca(self.ca.der.clone())
    }
}

fn keys() -> agent_ike::IkeKeys {
    sa_init_done(vec![]).keys
}

fn fw_identity(fw: &Leaf) -> Identity {
    let c =
        agent_ike::cert::check_peer(&fw.der, &PeerTrust::Pin(sha256(&fw.der)), SystemTime::now())
            .unwrap();
    Identity {
        id_type: id::DER_ASN1_DN,
        data: c.subject,
    }
}

/// The responder's AUTH payload: method 14 over ResponderSignedOctets with `signer`.
fn responder_auth(signer: &Leaf, idr: &Identity) -> Payload {
    let key = SigningKey::from_pkcs8(&signer.pkcs8).unwrap();
    let octets = signed_octets(b"IKE_SA_INIT response bytes", &ni(), &keys().sk_pr, idr);
    let (method, data) = key.auth(&octets, &[2]).unwrap();
    Payload::Auth { method, data }
}

fn esp_sa(spi: u32) -> Payload {
    Payload::Sa(vec![Proposal {
        num: 1,
        protocol: 3,
        spi: spi.to_be_bytes().to_vec(),
        transforms: vec![Transform::AES256_GCM16, agent_ike::child::ESN_NONE],
    }])
}

/// A complete accepting response's inner payloads.
fn accepting(fw: &Leaf) -> Vec<Payload> {
    let idr = fw_identity(fw);
    vec![
        Payload::IdR(idr.clone()),
        Payload::Cert {
            encoding: ct::X509_SIGNATURE,
            data: fw.der.clone(),
        },
        responder_auth(fw, &idr),
        esp_sa(RESPONDER_SPI),
        Payload::TsI(vec![TrafficSelector::v4([10, 30, 0, 5], [10, 30, 0, 5])]),
        Payload::TsR(vec![TrafficSelector::v4(
            [10, 20, 0, 0],
            [10, 20, 255, 255],
        )]),
    ]
}

fn response_header() -> Header {
    Header {
        spi_i: SPI_I,
        spi_r: SPI_R,
        exchange: exchange::IKE_AUTH,
        flags: flags::RESPONSE,
        msg_id: 1,
    }
}

fn seal(inner: &[Payload]) -> Vec<u8> {
    sk::seal(&response_header(), inner, &keys().sk_er, 1).unwrap()
}

fn established(a: AuthAction) -> Box<agent_ike::AuthDone> {
    match a {
        AuthAction::Established(d) => d,
        other => panic!("not established: {other:?}"),
    }
}

#[test]
fn the_request_is_what_a_responder_expects() {
    let w = World::new();
    let (a, req, _) = w.started(w.ca_trust());
    let msg = decode(&req).unwrap();
    assert_eq!(
        msg.header,
        Header {
            spi_i: SPI_I,
            spi_r: SPI_R,
            exchange: exchange::IKE_AUTH,
            flags: flags::INITIATOR,
            msg_id: 1
        }
    );
    let inner = sk::open(&req, &msg, &keys().sk_ei).unwrap();
    let kinds: Vec<u8> = inner.iter().map(Payload::kind).collect();
    assert_eq!(kinds, vec![35, 37, 41, 38, 39, 33, 44, 45]);
    let Payload::IdI(idi) = &inner[0] else {
        panic!()
    };
    assert_eq!(idi.id_type, id::DER_ASN1_DN);
    assert!(matches!(&inner[1], Payload::Cert { encoding: 4, data } if *data == w.agent.der));
    assert!(matches!(&inner[2], Payload::Notify(n) if n.kind == nt::INITIAL_CONTACT));
    let want_certreq = agent_ike::cert::certreq_hash(&w.ca.der).unwrap();
    assert!(matches!(&inner[3], Payload::CertReq { encoding: 4, data } if *data == want_certreq));
    // The AUTH verifies over InitiatorSignedOctets with the agent certificate's key.
    let Payload::Auth { method, data } = &inner[4] else {
        panic!()
    };
    assert_eq!(*method, auth::DIGITAL_SIGNATURE);
    let key = SigningKey::from_pkcs8(&w.agent.pkcs8).unwrap();
    let octets = signed_octets(b"IKE_SA_INIT request bytes", &nr(), &keys().sk_pi, idi);
    verify(
        *method,
        data,
        &PublicKey::EcdsaP256(key.public_key().to_vec()),
        &octets,
    )
    .unwrap();
    let Payload::Sa(props) = &inner[5] else {
        panic!()
    };
    assert_eq!(props, &vec![agent_ike::child::offer(a.spi_in())]);
    assert!(a.spi_in() >= 256);
    // With a pin, CERTREQ is empty (it still asks for the certificate).
    let (_, req, _) = w.started(PeerTrust::Pin([0; 32]));
    let msg = decode(&req).unwrap();
    let inner = sk::open(&req, &msg, &keys().sk_ei).unwrap();
    assert!(inner.contains(&Payload::CertReq {
        encoding: 4,
        data: vec![]
    }));
}

#[test]
fn method_9_when_the_responder_announced_no_sha2_256() {
    let w = World::new();
    let mut a = AuthInitiator::new(
        sa_init_done(vec![]),
        w.config(w.ca_trust()),
        &mut SeededEntropy::new(1),
    )
    .unwrap();
    let req = a.start(Instant::now()).unwrap();
    let inner = sk::open(&req, &decode(&req).unwrap(), &keys().sk_ei).unwrap();
    assert!(inner.iter().any(
        |p| matches!(p, Payload::Auth { method, data } if *method == auth::ECDSA_SHA256_P256 && data.len() == 64)
    ));
}

#[test]
fn accepts_and_hands_out_the_child_sa() {
    let w = World::new();
    for trust in [w.ca_trust(), PeerTrust::Pin(sha256(&w.fw.der))] {
        let (mut a, _, now) = w.started(trust);
        let resp = seal(&accepting(&w.fw));
        let done = established(a.on_message(&resp, SystemTime::now()));
        assert_eq!(
            (done.spi_i, done.spi_r, done.next_msg_id),
            (SPI_I, SPI_R, 2)
        );
        assert_eq!(done.peer_auth_method, auth::DIGITAL_SIGNATURE);
        assert_eq!(done.peer_cert.der, w.fw.der);
        assert_eq!(done.keys, keys());
        let child = done.child.as_ref().unwrap();
        assert_eq!((child.spi_in, child.spi_out), (a.spi_in(), RESPONDER_SPI));
        assert_eq!(
            child.keys,
            derive_child_keys(&keys().sk_d, &ni(), &nr()).unwrap()
        );
        assert_eq!(
            child.remote_ts,
            vec![TrafficSelector::v4([10, 20, 0, 0], [10, 20, 255, 255])]
        );
        assert!(!child.esn);
        // Done: the same response again is dropped, the timer is idle.
        assert!(matches!(
            a.on_message(&resp, SystemTime::now()),
            AuthAction::Drop(AuthDrop::NotExpecting)
        ));
        assert_eq!(a.next_timeout(now + Duration::from_secs(60)), Timeout::Idle);
    }
}

#[test]
fn every_refusal_notify_is_typed() {
    let w = World::new();
    let all = [
        (nt::AUTHENTICATION_FAILED, Refusal::AuthenticationFailed),
        (nt::NO_PROPOSAL_CHOSEN, Refusal::NoProposalChosen),
        (nt::TS_UNACCEPTABLE, Refusal::TsUnacceptable),
        (nt::SINGLE_PAIR_REQUIRED, Refusal::SinglePairRequired),
        (
            nt::INTERNAL_ADDRESS_FAILURE,
            Refusal::InternalAddressFailure,
        ),
        (nt::FAILED_CP_REQUIRED, Refusal::FailedCpRequired),
        (nt::INVALID_SYNTAX, Refusal::InvalidSyntax),
        (
            nt::UNSUPPORTED_CRITICAL_PAYLOAD,
            Refusal::UnsupportedCriticalPayload,
        ),
        (nt::TEMPORARY_FAILURE, Refusal::TemporaryFailure),
        (nt::INVALID_SELECTORS, Refusal::Other(nt::INVALID_SELECTORS)),
        (12345, Refusal::Other(12345)),
    ];
    for (kind, refusal) in all {
        // Alone: the IKE SA failed.
        let (mut a, _, _) = w.started(w.ca_trust());
        let only = seal(&[Payload::Notify(Notify::ike(kind, vec![]))]);
        match a.on_message(&only, SystemTime::now()) {
            AuthAction::Failed(AuthFailure::Refused(r)) => assert_eq!(r, refusal),
            other => panic!("{kind}: {other:?}"),
        }
        // After a good IDr/CERT/AUTH: the IKE SA stands, the child is refused
        // (AUTHENTICATION_FAILED always fails the IKE SA).
        let (mut a, _, _) = w.started(w.ca_trust());
        let mut inner: Vec<Payload> = accepting(&w.fw).into_iter().take(3).collect();
        inner.push(Payload::Notify(Notify::ike(kind, vec![])));
        let out = a.on_message(&seal(&inner), SystemTime::now());
        if kind == nt::AUTHENTICATION_FAILED {
            assert!(matches!(
                out,
                AuthAction::Failed(AuthFailure::Refused(Refusal::AuthenticationFailed))
            ));
        } else {
            let done = established(out);
            assert_eq!(done.child.unwrap_err(), ChildFailure::Refused(refusal));
        }
    }
    // Status notifies (>= 16384) are no refusal.
    let (mut a, _, _) = w.started(w.ca_trust());
    let mut inner = accepting(&w.fw);
    inner.push(Payload::Notify(Notify::ike(16393, vec![])));
    assert!(
        established(a.on_message(&seal(&inner), SystemTime::now()))
            .child
            .is_ok()
    );
}

/// Runs one response (inner payloads) through a fresh initiator with `trust`.
fn outcome(w: &World, trust: PeerTrust, inner: &[Payload]) -> AuthAction {
    let (mut a, _, _) = w.started(trust);
    a.on_message(&seal(inner), SystemTime::now())
}

#[test]
fn a_wrong_responder_is_refused() {
    let w = World::new();
    let good = accepting(&w.fw);
    let idr = fw_identity(&w.fw);
    let failed = |inner: &[Payload], trust: PeerTrust| match outcome(&w, trust, inner) {
        AuthAction::Failed(f) => f,
        other => panic!("not failed: {other:?}"),
    };
    // Signed by another key (a certificate of the same CA).
    let other = w.ca.issue("other", "other.test");
    let mut bad = good.clone();
    bad[2] = responder_auth(&other, &idr);
    assert_eq!(
        failed(&bad, w.ca_trust()),
        AuthFailure::PeerAuth(SignatureError::BadSignature)
    );
    // Signed over another identity than the IDr sent.
    let mut bad = good.clone();
    bad[2] = responder_auth(
        &w.fw,
        &Identity {
            id_type: id::FQDN,
            data: b"fw.tenant.test".to_vec(),
        },
    );
    assert_eq!(
        failed(&bad, w.ca_trust()),
        AuthFailure::PeerAuth(SignatureError::BadSignature)
    );
    // IDr naming something the certificate does not.
    let mut bad = good.clone();
    bad[0] = Payload::IdR(Identity {
        id_type: id::FQDN,
        data: b"evil.test".to_vec(),
    });
    assert!(matches!(
        failed(&bad, w.ca_trust()),
        AuthFailure::PeerIdentity(_)
    ));
    // IDr that is the certificate's FQDN but not the one the caller expects.
    let mut cfg = w.config(w.ca_trust());
    cfg.peer_id = Some(Identity {
        id_type: id::FQDN,
        data: b"fw.tenant.test".to_vec(),
    });
    let mut a = AuthInitiator::new(sa_init_done(vec![2]), cfg, &mut SeededEntropy::new(3)).unwrap();
    a.start(Instant::now()).unwrap();
    assert!(matches!(
        a.on_message(&seal(&good), SystemTime::now()),
        AuthAction::Failed(AuthFailure::PeerIdentity(_))
    ));
    // Certificates: another CA, another pin, missing, not X.509, expired.
    let rogue = Ca::new("rogue").issue("firewall", "fw.tenant.test");
    let mut bad = good.clone();
    bad[1] = Payload::Cert {
        encoding: 4,
        data: rogue.der.clone(),
    };
    assert!(matches!(
        failed(&bad, w.ca_trust()),
        AuthFailure::PeerCert(CertError::WrongIssuer { .. })
    ));
    assert!(matches!(
        failed(&good, PeerTrust::Pin(sha256(&rogue.der))),
        AuthFailure::PeerCert(CertError::NotPinned { .. })
    ));
    let mut bad = good.clone();
    bad.remove(1);
    assert_eq!(
        failed(&bad, w.ca_trust()),
        AuthFailure::Missing("an X.509 CERT")
    );
    let mut bad = good.clone();
    bad[1] = Payload::Cert {
        encoding: 4,
        data: b"junk".to_vec(),
    };
    assert!(matches!(
        failed(&bad, w.ca_trust()),
        AuthFailure::PeerCert(CertError::Parse { .. })
    ));
    let (mut a, _, _) = w.started(w.ca_trust());
    let far = SystemTime::now() + Duration::from_secs(3000 * 365 * 86400);
    assert!(matches!(
        a.on_message(&seal(&good), far),
        AuthAction::Failed(AuthFailure::PeerCert(CertError::Expired { .. }))
    ));
    // Missing or doubled payloads.
    let mut bad = good.clone();
    bad.remove(0);
    assert_eq!(failed(&bad, w.ca_trust()), AuthFailure::Missing("IDr"));
    let mut bad = good.clone();
    bad.remove(2);
    assert_eq!(failed(&bad, w.ca_trust()), AuthFailure::Missing("AUTH"));
    for i in [0, 2, 3, 4, 5] {
        let mut bad = good.clone();
        bad.push(good[i].clone());
        assert!(matches!(
            failed(&bad, w.ca_trust()),
            AuthFailure::Unexpected(_)
        ));
    }
    // An unsupported AUTH method.
    let mut bad = good.clone();
    bad[2] = Payload::Auth {
        method: auth::SHARED_KEY_MIC,
        data: vec![0; 32],
    };
    assert_eq!(
        failed(&bad, w.ca_trust()),
        AuthFailure::PeerAuth(SignatureError::UnsupportedMethod(2))
    );
}

#[test]
fn a_wrong_child_sa_leaves_the_ike_sa_up() {
    let w = World::new();
    let good = accepting(&w.fw);
    let child = |inner: &[Payload]| established(outcome(&w, w.ca_trust(), inner)).child;
    let mut bad = good.clone();
    bad[3] = esp_sa(5);
    assert!(matches!(child(&bad), Err(ChildFailure::NotOffered(_))));
    let mut bad = good.clone();
    bad[3] = Payload::Sa(vec![Proposal {
        num: 1,
        protocol: 3,
        spi: RESPONDER_SPI.to_be_bytes().to_vec(),
        transforms: vec![Transform {
            key_bits: Some(128),
            ..Transform::AES256_GCM16
        }],
    }]);
    assert!(matches!(child(&bad), Err(ChildFailure::NotOffered(_))));
    let mut bad = good.clone();
    bad[5] = Payload::TsR(vec![TrafficSelector::v4(
        [0, 0, 0, 0],
        [255, 255, 255, 255],
    )]);
    assert_eq!(child(&bad), Err(ChildFailure::NotNarrowed("TSr")));
    let mut bad = good.clone();
    bad[4] = Payload::TsI(vec![TrafficSelector::v4([10, 30, 0, 5], [10, 30, 0, 6])]);
    assert_eq!(child(&bad), Err(ChildFailure::NotNarrowed("TSi")));
    for (i, what) in [(3, "SA"), (4, "TSi"), (5, "TSr")] {
        let mut bad = good.clone();
        bad.remove(i);
        assert_eq!(child(&bad), Err(ChildFailure::Missing(what)));
    }
}

type DropCheck = fn(&AuthDrop) -> bool;

#[test]
fn unauthenticated_or_foreign_datagrams_are_dropped() {
    let w = World::new();
    let good = seal(&accepting(&w.fw));
    let with_header = |h: Header| sk::seal(&h, &accepting(&w.fw), &keys().sk_er, 1).unwrap();
    let cases: Vec<(Vec<u8>, DropCheck)> = vec![
        (vec![], |d| matches!(d, AuthDrop::Malformed(_))),
        (
            with_header(Header {
                exchange: exchange::INFORMATIONAL,
                ..response_header()
            }),
            |d| matches!(d, AuthDrop::WrongExchange(37)),
        ),
        (
            with_header(Header {
                flags: flags::INITIATOR,
                ..response_header()
            }),
            |d| matches!(d, AuthDrop::NotAResponse { .. }),
        ),
        (
            with_header(Header {
                spi_r: 1,
                ..response_header()
            }),
            |d| matches!(d, AuthDrop::WrongSpi { .. }),
        ),
        (
            with_header(Header {
                msg_id: 2,
                ..response_header()
            }),
            |d| matches!(d, AuthDrop::WrongMessageId(2)),
        ),
        (
            encode_message(
                &response_header(),
                &[Payload::Notify(Notify::ike(
                    nt::AUTHENTICATION_FAILED,
                    vec![],
                ))],
            )
            .unwrap(),
            |d| matches!(d, AuthDrop::NotEncrypted),
        ),
        (
            sk::seal(&response_header(), &accepting(&w.fw), &keys().sk_ei, 1).unwrap(),
            |d| matches!(d, AuthDrop::Undecryptable(_)),
        ),
    ];
    let (mut a, _, _) = w.started(w.ca_trust());
    for (bytes, want) in cases {
        match a.on_message(&bytes, SystemTime::now()) {
            AuthAction::Drop(d) => assert!(want(&d), "{d:?}"),
            other => panic!("not dropped: {other:?}"),
        }
    }
    // Every truncation and every flipped bit of a good response is dropped.
    for n in 0..good.len() {
        assert!(matches!(
            a.on_message(&good[..n], SystemTime::now()),
            AuthAction::Drop(_)
        ));
    }
    for i in 0..good.len() {
        let mut b = good.clone();
        b[i] ^= 0x04;
        assert!(
            matches!(a.on_message(&b, SystemTime::now()), AuthAction::Drop(_)),
            "bit flip at {i} accepted"
        );
    }
    // The exchange is still waiting: the good response completes it.
    assert!(
        established(a.on_message(&good, SystemTime::now()))
            .child
            .is_ok()
    );
}

#[test]
fn retransmits_the_same_bytes_then_gives_up() {
    let w = World::new();
    let (mut a, req, t0) = w.started(w.ca_trust());
    assert_eq!(
        a.next_timeout(t0),
        Timeout::WaitUntil(t0 + Duration::from_secs(1))
    );
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(a.next_timeout(t1), Timeout::Resend(req.clone()));
    let t2 = t1 + Duration::from_secs(2);
    assert_eq!(a.next_timeout(t2), Timeout::Resend(req));
    let t3 = t2 + Duration::from_secs(4);
    assert_eq!(
        a.next_timeout(t3),
        Timeout::GiveUp {
            tries: 2,
            last_error: None
        }
    );
    assert!(matches!(
        a.on_message(&seal(&accepting(&w.fw)), SystemTime::now()),
        AuthAction::Drop(AuthDrop::NotExpecting)
    ));
}

#[test]
fn start_refuses_what_cannot_work() {
    let w = World::new();
    let (mut a, _, now) = w.started(w.ca_trust());
    assert_eq!(a.start(now), Err(AuthStartError::AlreadyStarted));
    let mut cfg = w.config(w.ca_trust());
    cfg.remote_ts.clear();
    assert_eq!(
        AuthInitiator::new(sa_init_done(vec![2]), cfg, &mut SeededEntropy::new(1)).unwrap_err(),
        AuthStartError::NoSelectors
    );
    struct Zeros;
    impl agent_ike::Entropy for Zeros {
        fn fill(&mut self, b: &mut [u8]) {
            b.fill(0);
        }
    }
    assert_eq!(
        AuthInitiator::new(sa_init_done(vec![2]), w.config(w.ca_trust()), &mut Zeros).unwrap_err(),
        AuthStartError::BadSpi
    );
    let mut a = AuthInitiator::new(
        sa_init_done(vec![2]),
        w.config(PeerTrust::Ca(b"not a CA".to_vec())),
        &mut SeededEntropy::new(1),
    )
    .unwrap();
    assert!(matches!(a.start(now), Err(AuthStartError::Ca(_))));
    // Keys never show in Debug output.
    let (a, _, _) = w.started(w.ca_trust());
    let shown = format!("{a:?}");
    assert!(shown.contains("IkeKeys(redacted)") && shown.contains("SigningKey(P-256, redacted)"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (mut a, _, _) = WORLD.with(|w| w.started(w.ca_trust()));
        prop_assert!(matches!(a.on_message(&bytes, SystemTime::now()), AuthAction::Drop(_)));
    }

    /// Arbitrary inner payloads, correctly sealed: any outcome but a panic.
    #[test]
    fn arbitrary_sealed_payloads_never_panic(
        picks in proptest::collection::vec(0usize..10, 0..12),
        spi in any::<u32>(),
    ) {
        WORLD.with(|w| {
            let good = accepting(&w.fw);
            let pool = [
                good[0].clone(), good[1].clone(), good[2].clone(), good[3].clone(),
                good[4].clone(), good[5].clone(), esp_sa(spi),
                Payload::Notify(Notify::ike(nt::TS_UNACCEPTABLE, vec![])),
                Payload::Cert { encoding: 4, data: vec![0x30] },
                Payload::Auth { method: 14, data: vec![200] },
            ];
            let inner: Vec<Payload> = picks.iter().map(|&i| pool[i].clone()).collect();
            let (mut a, _, _) = w.started(w.ca_trust());
            let _ = a.on_message(&seal(&inner), SystemTime::now());
        });
    }
}

thread_local! {
    static WORLD: World = World::new();
}

/// The agent asking for a virtual IP: TSi any IPv4 address, CP(CFG_REQUEST).
fn started_asking(w: &World) -> AuthInitiator {
    let mut cfg = w.config(w.ca_trust());
    cfg.request_address = true;
    cfg.local_ts = vec![TrafficSelector::v4([0; 4], [255; 4])];
    let mut a = AuthInitiator::new(sa_init_done(vec![2]), cfg, &mut SeededEntropy::new(5)).unwrap();
    let req = a.start(Instant::now()).unwrap();
    let inner = sk::open(&req, &decode(&req).unwrap(), &keys().sk_ei).unwrap();
    let kinds: Vec<u8> = inner.iter().map(Payload::kind).collect();
    // CP between AUTH and SA (RFC 7296 1.2 / 3.15), an empty INTERNAL_IP4_ADDRESS.
    assert_eq!(kinds, vec![35, 37, 41, 38, 39, 47, 33, 44, 45]);
    assert_eq!(
        inner[5],
        Payload::Cp(Config {
            cfg_type: cfg::CFG_REQUEST,
            attributes: vec![ConfigAttribute {
                kind: cfg::INTERNAL_IP4_ADDRESS,
                value: vec![]
            }]
        })
    );
    a
}

fn attr(kind: u16, value: &[u8]) -> ConfigAttribute {
    ConfigAttribute {
        kind,
        value: value.to_vec(),
    }
}

/// An accepting response from a responder that assigned 10.62.0.2: CP(CFG_REPLY) and TSi
/// narrowed to that address.
fn assigning(fw: &Leaf, cp: Option<Config>) -> Vec<Payload> {
    let mut inner = accepting(fw);
    inner[4] = Payload::TsI(vec![TrafficSelector::v4([10, 62, 0, 2], [10, 62, 0, 2])]);
    if let Some(cp) = cp {
        inner.insert(3, Payload::Cp(cp));
    }
    inner
}

fn reply(attributes: Vec<ConfigAttribute>) -> Config {
    Config {
        cfg_type: cfg::CFG_REPLY,
        attributes,
    }
}

#[test]
fn asks_for_an_address_and_takes_the_assigned_one() {
    let w = World::new();
    let mut a = started_asking(&w);
    let cp = reply(vec![
        attr(cfg::INTERNAL_IP4_NETMASK, &[255, 255, 255, 0]),
        attr(cfg::INTERNAL_IP4_ADDRESS, &[10, 62, 0, 2]),
        attr(cfg::INTERNAL_IP4_DNS, &[10, 62, 0, 1]),
        attr(0x4000, &[1, 2, 3]),
    ]);
    let done = established(a.on_message(&seal(&assigning(&w.fw, Some(cp))), SystemTime::now()));
    assert_eq!(
        done.internal_address,
        Some(std::net::Ipv4Addr::new(10, 62, 0, 2))
    );
    let child = done.child.unwrap();
    assert_eq!(
        child.local_ts,
        vec![TrafficSelector::v4([10, 62, 0, 2], [10, 62, 0, 2])]
    );
}

#[test]
fn without_asking_a_cp_reply_is_ignored() {
    let w = World::new();
    let (mut a, req, _) = w.started(w.ca_trust());
    let inner = sk::open(&req, &decode(&req).unwrap(), &keys().sk_ei).unwrap();
    assert!(!inner.iter().any(|p| matches!(p, Payload::Cp(_))));
    let mut resp = accepting(&w.fw);
    resp.insert(
        3,
        Payload::Cp(reply(vec![attr(
            cfg::INTERNAL_IP4_ADDRESS,
            &[10, 62, 0, 2],
        )])),
    );
    let done = established(a.on_message(&seal(&resp), SystemTime::now()));
    assert_eq!(done.internal_address, None);
    assert!(done.child.is_ok());
}

#[test]
fn a_missing_or_hostile_address_reply_fails_the_child_only() {
    let w = World::new();
    let addr = |v: &[u8]| attr(cfg::INTERNAL_IP4_ADDRESS, v);
    let cases: Vec<(Option<Config>, &str)> = vec![
        (None, "is missing"),
        (Some(reply(vec![])), "has no INTERNAL_IP4_ADDRESS"),
        (
            Some(reply(vec![attr(cfg::INTERNAL_IP4_NETMASK, &[255; 4])])),
            "has no INTERNAL_IP4_ADDRESS",
        ),
        (
            Some(Config {
                cfg_type: cfg::CFG_SET,
                attributes: vec![addr(&[10, 62, 0, 2])],
            }),
            "is not a CFG_REPLY",
        ),
        (Some(reply(vec![addr(&[])])), "not 4 bytes"),
        (Some(reply(vec![addr(&[10, 62, 0])])), "not 4 bytes"),
        (Some(reply(vec![addr(&[10, 62, 0, 2, 0])])), "not 4 bytes"),
        (
            Some(reply(vec![addr(&[
                0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            ])])),
            "not 4 bytes",
        ),
        (Some(reply(vec![addr(&[0, 0, 0, 0])])), "not a unicast"),
        (Some(reply(vec![addr(&[255; 4])])), "not a unicast"),
        (Some(reply(vec![addr(&[224, 0, 0, 1])])), "not a unicast"),
        (Some(reply(vec![addr(&[127, 0, 0, 1])])), "not a unicast"),
        (
            Some(reply(vec![addr(&[10, 62, 0, 2]), addr(&[10, 62, 0, 3])])),
            "several",
        ),
    ];
    for (cp, why) in cases {
        let mut a = started_asking(&w);
        let done =
            established(a.on_message(&seal(&assigning(&w.fw, cp.clone())), SystemTime::now()));
        assert_eq!(done.internal_address, None, "{cp:?}");
        match done.child {
            Err(ChildFailure::NoAddress(got)) => assert!(got.contains(why), "{got} for {cp:?}"),
            other => panic!("{cp:?}: {other:?}"),
        }
    }
    // Two CP payloads: the response is unexpected (the IKE SA fails).
    let mut a = started_asking(&w);
    let mut inner = assigning(&w.fw, Some(reply(vec![addr(&[10, 62, 0, 2])])));
    inner.insert(3, Payload::Cp(reply(vec![addr(&[10, 62, 0, 3])])));
    assert!(matches!(
        a.on_message(&seal(&inner), SystemTime::now()),
        AuthAction::Failed(AuthFailure::Unexpected(_))
    ));
    // INTERNAL_ADDRESS_FAILURE instead of a CP: the responder's refusal is what is reported.
    let mut a = started_asking(&w);
    let mut inner: Vec<Payload> = accepting(&w.fw).into_iter().take(3).collect();
    inner.push(Payload::Notify(Notify::ike(
        nt::INTERNAL_ADDRESS_FAILURE,
        vec![],
    )));
    let done = established(a.on_message(&seal(&inner), SystemTime::now()));
    assert_eq!(
        done.child.unwrap_err(),
        ChildFailure::Refused(Refusal::InternalAddressFailure)
    );
}

proptest! {
    /// Any CP(CFG_REPLY) attribute list: no panic; an address is reported only if exactly one
    /// well-formed unicast INTERNAL_IP4_ADDRESS came.
    #[test]
    fn arbitrary_cp_replies_never_panic(
        attrs in proptest::collection::vec(
            (prop_oneof![Just(1u16), Just(2u16), Just(3u16), any::<u16>().prop_map(|k| k & 0x7fff)],
             proptest::collection::vec(any::<u8>(), 0..6)),
            0..4)
    ) {
        let w = World::new();
        let mut a = started_asking(&w);
        let cp = reply(attrs.iter().map(|(k, v)| attr(*k, v)).collect());
        let done = established(a.on_message(&seal(&assigning(&w.fw, Some(cp))), SystemTime::now()));
        let ips: Vec<&Vec<u8>> = attrs.iter().filter(|(k, _)| *k == 1).map(|(_, v)| v).collect();
        if let Some(ip) = done.internal_address {
            prop_assert_eq!(ips.len(), 1);
            prop_assert_eq!(ip.octets().to_vec(), ips[0].clone());
        }
    }
}
