use std::time::{Duration, SystemTime};

use lm_api::{LeaseServer, MacAddr, Tunnel};
use lm_pki::{Authority, RevokedCert, check_crl};

use super::*;
use crate::record::RequestedLease;

const NOW: i64 = 1_800_000_000;
const IMAGE: &str = "0123456789abcdef0123456789abcdef";

fn lease_id() -> LeaseId {
    LeaseId::from_random(0xaa)
}

fn peer(identity: &str, serial: &str, not_after: i64) -> PeerCert {
    PeerCert {
        identity: identity.parse().unwrap(),
        serial_hex: serial.into(),
        not_after_unix: not_after,
    }
}

fn agent() -> AgentCert {
    agent_of(&peer(
        "urn:lease-appliance:agent:l-00000000000000aa:vm1",
        "51",
        NOW + 3600,
    ))
    .unwrap()
}

fn view(state: LeaseState) -> LeaseView {
    LeaseView {
        id: lease_id(),
        tenant: "acme".parse().unwrap(),
        state,
        reason: None,
        count: 2,
        waiting: 0,
        servers: vec![
            LeaseServer {
                name: "vm1".into(),
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                state: "tunneling".into(),
                cert_serial: Some("51".into()),
            },
            LeaseServer {
                name: "vm2".into(),
                mac: MacAddr([2, 0, 0, 0, 0, 2]),
                state: "waking".into(),
                cert_serial: None,
            },
        ],
        tunnel: Tunnel::Wireguard,
        role: None,
        image: Some(IMAGE.into()),
        gateway: None,
        created_ms: 0,
        starts_ms: 0,
        ends_ms: 1,
        ended_ms: None,
        renewals: 0,
    }
}

fn record() -> Record {
    let mut r = Record::default();
    r.add(RequestedLease {
        id: lease_id(),
        requested_ms: 0,
        count: 2,
        duration_s: 3600,
        tunnel: Tunnel::Wireguard,
        role: None,
        image: Some(IMAGE.into()),
        released_ms: None,
    });
    r
}

fn crl(revoked: &[u64]) -> CrlState {
    let ca = Authority::generate(SystemTime::now(), 1u64.into())
        .unwrap()
        .0;
    let now = SystemTime::now();
    let list: Vec<RevokedCert> = revoked
        .iter()
        .map(|s| RevokedCert {
            serial: (*s).into(),
            revoked_at: now,
        })
        .collect();
    let der = ca
        .crl(&list, 1, now, now + Duration::from_secs(3600))
        .unwrap();
    CrlState {
        crl: check_crl(&der, ca.cert_der()).unwrap(),
        fetched_unix: NOW - 5,
    }
}

struct World {
    record: Record,
    lease: Option<LeaseView>,
    tenant: Name,
    crl: Option<CrlState>,
}

impl World {
    fn good() -> Self {
        Self {
            record: record(),
            lease: Some(view(LeaseState::Active)),
            tenant: "acme".parse().unwrap(),
            crl: Some(crl(&[0x99])),
        }
    }

    fn facts(&self) -> Facts<'_> {
        Facts {
            record: &self.record,
            lease: self.lease.as_ref(),
            tenant: &self.tenant,
            crl: self.crl.as_ref(),
            crl_max_age_secs: 60,
            now_unix: NOW,
        }
    }
}

#[test]
fn an_approved_agent_is_admitted() {
    let w = World::good();
    assert_eq!(admit(&agent(), &w.facts()).unwrap().id, lease_id());
    let mut w = World::good();
    w.lease = Some(view(LeaseState::Provisioning));
    assert!(admit(&agent(), &w.facts()).is_ok());
}

#[test]
fn every_refusal_of_a_registration() {
    type Mutate = fn(&mut World, &mut AgentCert);
    let cases: Vec<(&str, Mutate, ErrorCode)> = vec![
        (
            "unapproved-lease",
            |w, _| w.record = Record::default(),
            ErrorCode::NotApproved,
        ),
        (
            "released-lease",
            |w, _| {
                w.record.mark_released(lease_id(), 1);
            },
            ErrorCode::NotApproved,
        ),
        (
            "lease-not-live",
            |w, _| w.lease = Some(view(LeaseState::Releasing)),
            ErrorCode::LeaseNotLive,
        ),
        (
            "lease-not-live",
            |w, _| w.lease = Some(view(LeaseState::Ended)),
            ErrorCode::LeaseNotLive,
        ),
        (
            "lease-not-live",
            |w, _| w.lease = Some(view(LeaseState::Failed)),
            ErrorCode::LeaseNotLive,
        ),
        (
            "lease-not-live",
            |w, _| w.lease = Some(view(LeaseState::Requested)),
            ErrorCode::LeaseNotLive,
        ),
        (
            "unknown-lease",
            |w, _| w.lease = None,
            ErrorCode::UnknownLease,
        ),
        (
            "foreign-lease",
            |w, _| w.tenant = "other".parse().unwrap(),
            ErrorCode::UnknownLease,
        ),
        (
            "revoked-certificate",
            |w, _| w.crl = Some(crl(&[0x51])),
            ErrorCode::Revoked,
        ),
        ("no-crl", |w, _| w.crl = None, ErrorCode::Unavailable),
        (
            "stale-crl",
            |w, _| {
                if let Some(c) = w.crl.as_mut() {
                    c.fetched_unix = NOW - 61;
                }
            },
            ErrorCode::Unavailable,
        ),
        (
            "expired-certificate",
            |_, c| c.not_after_unix = NOW,
            ErrorCode::Expired,
        ),
        (
            "server-not-in-lease",
            |_, c| c.server = "vm9".parse().unwrap(),
            ErrorCode::WrongServer,
        ),
        (
            "server-not-serving",
            |_, c| c.server = "vm2".parse().unwrap(),
            ErrorCode::WrongServer,
        ),
        (
            "stale-certificate",
            |_, c| c.serial_hex = "52".into(),
            ErrorCode::Revoked,
        ),
        (
            "unapproved-lease",
            |_, c| c.lease = LeaseId::from_random(0xbb),
            ErrorCode::NotApproved,
        ),
    ];
    for (reason, mutate, code) in cases {
        let mut w = World::good();
        let mut c = agent();
        mutate(&mut w, &mut c);
        let r = admit(&c, &w.facts()).expect_err(reason);
        assert_eq!(r.reason(), reason, "{r}");
        assert_eq!(r.code(), code, "{reason}");
        assert!(!r.to_string().is_empty());
    }
}

#[test]
fn a_lease_the_lm_shows_for_another_id_is_unknown() {
    let mut w = World::good();
    let mut v = view(LeaseState::Active);
    v.id = LeaseId::from_random(0xcc);
    w.lease = Some(v);
    assert_eq!(
        admit(&agent(), &w.facts()).unwrap_err().reason(),
        "unknown-lease"
    );
}

#[test]
fn only_agent_certificates_speak_for_a_server() {
    for id in [
        "urn:lease-appliance:tenant:acme",
        "urn:lease-appliance:operator:root",
    ] {
        let r = agent_of(&peer(id, "1", NOW + 1)).unwrap_err();
        assert_eq!(r.code(), ErrorCode::NotAnAgent, "{id}");
    }
}

#[test]
fn keys_go_to_the_leased_image_through_the_tunnel_only() {
    let w = World::good();
    let img: ImageRef = IMAGE.parse().unwrap();
    let tunnel = Ipv4Addr::new(10, 99, 0, 2);
    let src = IpAddr::V4(tunnel);
    admit_key(&agent(), &img, src, Some(tunnel), &w.facts()).unwrap();

    let other: ImageRef = "ff".repeat(16).parse().unwrap();
    let r = admit_key(&agent(), &other, src, Some(tunnel), &w.facts()).unwrap_err();
    assert_eq!(r.reason(), "wrong-image");
    assert_eq!(r.code(), ErrorCode::WrongImage);

    // The LM's lease names the image but the record does not (or the other way round).
    let mut w2 = World::good();
    if let Some(l) = w2.record.leases.get_mut(&lease_id()) {
        l.image = None;
    }
    assert_eq!(
        admit_key(&agent(), &img, src, Some(tunnel), &w2.facts())
            .unwrap_err()
            .reason(),
        "wrong-image"
    );
    let mut w3 = World::good();
    if let Some(l) = w3.lease.as_mut() {
        l.image = None;
    }
    assert!(
        admit_key(&agent(), &img, src, Some(tunnel), &w3.facts())
            .unwrap_err()
            .to_string()
            .contains("names no image")
    );

    let dc = IpAddr::V4(Ipv4Addr::new(10, 77, 0, 50));
    let r = admit_key(&agent(), &img, dc, Some(tunnel), &w.facts()).unwrap_err();
    assert_eq!(r.code(), ErrorCode::NotFromTunnel);
    let r = admit_key(&agent(), &img, src, None, &w.facts()).unwrap_err();
    assert_eq!(r.code(), ErrorCode::NotFromTunnel);

    // Every registration refusal holds for keys too.
    let mut w4 = World::good();
    w4.lease = Some(view(LeaseState::Releasing));
    assert_eq!(
        admit_key(&agent(), &img, src, Some(tunnel), &w4.facts())
            .unwrap_err()
            .code(),
        ErrorCode::LeaseNotLive
    );
}

#[test]
fn a_wireguard_registration_needs_a_wireguard_lease_at_a_wireguard_gateway() {
    let w = World::good();
    assert_eq!(
        admit_wireguard(&agent(), Tunnel::Wireguard, &w.facts())
            .unwrap()
            .id,
        lease_id()
    );
    let set = |w: &mut World, requested: Tunnel, listed: Tunnel| {
        let mut r = Record::default();
        let mut l = record().approved(lease_id()).unwrap().clone();
        l.tunnel = requested;
        r.add(l);
        w.record = r;
        if let Some(v) = w.lease.as_mut() {
            v.tunnel = listed;
        }
    };
    let cases = [
        (
            Tunnel::Ipsec,
            Tunnel::Ipsec,
            "asked for tunnel ipsec, not wireguard",
        ),
        (
            Tunnel::Wireguard,
            Tunnel::Ipsec,
            "requested here with tunnel wireguard but the Lease Manager lists it with ipsec",
        ),
        (
            Tunnel::Ipsec,
            Tunnel::Wireguard,
            "requested here with tunnel ipsec but the Lease Manager lists it with wireguard",
        ),
    ];
    for (requested, listed, says) in cases {
        let mut w = World::good();
        set(&mut w, requested, listed);
        let r = admit_wireguard(&agent(), Tunnel::Wireguard, &w.facts()).unwrap_err();
        assert_eq!(r.code(), ErrorCode::WrongTunnel, "{r}");
        assert_eq!(r.reason(), "wrong-tunnel");
        let text = r.to_string();
        assert!(
            text.contains(says) && text.contains(&lease_id().to_string()),
            "{text}"
        );
    }
    // The other checks come first: an unapproved lease is refused as such, whatever its tunnel.
    let mut w = World::good();
    set(&mut w, Tunnel::Ipsec, Tunnel::Ipsec);
    w.crl = Some(crl(&[0x51]));
    assert_eq!(
        admit_wireguard(&agent(), Tunnel::Wireguard, &w.facts())
            .unwrap_err()
            .code(),
        ErrorCode::Revoked
    );
    // A gateway in IPsec mode registers no WireGuard peer, whatever the lease asked for.
    for t in [Tunnel::Wireguard, Tunnel::Ipsec] {
        let mut w = World::good();
        set(&mut w, t, t);
        let r = admit_wireguard(&agent(), Tunnel::Ipsec, &w.facts()).unwrap_err();
        assert_eq!(r.code(), ErrorCode::WrongTunnel);
        assert_eq!(r.reason(), "gateway-tunnel");
        assert!(
            r.to_string().contains("gateway.tunnel = \"ipsec\"")
                && r.to_string().contains("not a WireGuard peer"),
            "{r}"
        );
    }
}

#[test]
fn an_ipsec_registration_needs_an_ipsec_lease_at_an_ipsec_gateway() {
    let set = |w: &mut World, t: Tunnel| {
        let mut r = Record::default();
        let mut l = record().approved(lease_id()).unwrap().clone();
        l.tunnel = t;
        r.add(l);
        w.record = r;
        if let Some(v) = w.lease.as_mut() {
            v.tunnel = t;
        }
    };
    let mut w = World::good();
    set(&mut w, Tunnel::Ipsec);
    assert!(admit_registration(&agent(), Tunnel::Ipsec, Tunnel::Ipsec, &w.facts()).is_ok());
    // A WireGuard lease cannot register without a key at an IPsec gateway ...
    let mut w = World::good();
    set(&mut w, Tunnel::Wireguard);
    let r = admit_registration(&agent(), Tunnel::Ipsec, Tunnel::Ipsec, &w.facts()).unwrap_err();
    assert_eq!(r.reason(), "wrong-tunnel", "{r}");
    // ... and no registration without a key is taken at a WireGuard gateway.
    let mut w = World::good();
    set(&mut w, Tunnel::Ipsec);
    let r = admit_registration(&agent(), Tunnel::Wireguard, Tunnel::Ipsec, &w.facts()).unwrap_err();
    assert_eq!(r.reason(), "gateway-tunnel", "{r}");
    assert!(r.to_string().contains("not ipsec"), "{r}");
}

#[test]
fn check_tunnel_admits_only_when_record_lm_and_offer_agree() {
    let all = [Tunnel::Wireguard, Tunnel::Ipsec];
    for requested in all {
        for listed in all {
            for offered in all {
                let got = check_tunnel(lease_id(), requested, listed, offered);
                assert_eq!(
                    got.is_ok(),
                    requested == offered && listed == offered,
                    "{requested:?} {listed:?} {offered:?}"
                );
                if let Err(r) = got {
                    assert_eq!(r.code(), ErrorCode::WrongTunnel);
                }
            }
            assert_eq!(
                check_gateway_tunnel(requested, listed).is_ok(),
                requested == listed
            );
        }
    }
}
