use super::*;

use agent_ike::{ChildKeys, derive_child_keys};
use proptest::prelude::*;

fn net(s: &str) -> Ipv4Net {
    let (a, l) = s.split_once('/').unwrap();
    Ipv4Net::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
}

fn ip(s: &str) -> u32 {
    u32::from(s.parse::<Ipv4Addr>().unwrap())
}

#[test]
fn nat_decides_the_float_and_encapsulation() {
    let faked = NatDetection {
        peer_supports: true,
        local_behind_nat: false,
        remote_behind_nat: true,
    };
    assert_eq!(
        after_sa_init(&faked),
        Ok(AfterSaInit {
            ike_port: 4500,
            udp_encapsulated_esp: true
        })
    );
    let ours = NatDetection {
        local_behind_nat: true,
        remote_behind_nat: false,
        ..faked
    };
    assert!(after_sa_init(&ours).is_ok());
    let none = NatDetection {
        peer_supports: true,
        ..NatDetection::default()
    };
    assert_eq!(after_sa_init(&none), Err(PlanError::NoNat));
    assert_eq!(
        after_sa_init(&NatDetection::default()),
        Err(PlanError::PeerWithoutNatT)
    );
}

#[test]
fn ranges_become_exact_prefixes() {
    assert_eq!(
        range_to_prefixes(ip("10.20.0.0"), ip("10.20.255.255")),
        vec![net("10.20.0.0/16")]
    );
    assert_eq!(
        range_to_prefixes(ip("10.30.0.5"), ip("10.30.0.5")),
        vec![net("10.30.0.5/32")]
    );
    assert_eq!(
        range_to_prefixes(ip("10.0.0.1"), ip("10.0.0.6")),
        vec![
            net("10.0.0.1/32"),
            net("10.0.0.2/31"),
            net("10.0.0.4/31"),
            net("10.0.0.6/32")
        ]
    );
    assert_eq!(range_to_prefixes(0, u32::MAX), vec![net("0.0.0.0/0")]);
    assert_eq!(
        range_to_prefixes(u32::MAX, u32::MAX),
        vec![net("255.255.255.255/32")]
    );
    assert_eq!(
        range_to_prefixes(1, u32::MAX).len(),
        32,
        "1..=max is 32 blocks"
    );
}

proptest! {
    /// The prefixes cover exactly the range, in order, without overlap, and are the fewest
    /// (no two neighbours could merge into one aligned block).
    #[test]
    fn prefixes_cover_the_range_exactly(a in any::<u32>(), b in any::<u32>()) {
        let (s, e) = (a.min(b), a.max(b));
        let p = range_to_prefixes(s, e);
        prop_assert!(!p.is_empty() && p.len() <= 62);
        let mut next = u64::from(s);
        for n in &p {
            let size = 1u64 << (32 - n.prefix_len());
            prop_assert_eq!(u64::from(u32::from(n.addr())), next);
            next += size;
        }
        prop_assert_eq!(next, u64::from(e) + 1);
        for w in p.windows(2) {
            let merged = w[0].prefix_len() == w[1].prefix_len()
                && w[0].prefix_len() > 0
                && Ipv4Net::new(w[0].addr(), w[0].prefix_len() - 1).unwrap().addr() == w[0].addr();
            prop_assert!(!merged, "{} and {} merge", w[0], w[1]);
        }
    }
}

#[test]
fn routes_take_narrowed_tsr_and_refuse_what_cannot_be_routed() {
    let tsr = vec![
        TrafficSelector::v4([10, 20, 0, 0], [10, 20, 255, 255]),
        TrafficSelector::v4([10, 20, 0, 0], [10, 20, 255, 255]),
        TrafficSelector::v4([192, 168, 1, 7], [192, 168, 1, 7]),
    ];
    assert_eq!(
        routes(&tsr),
        Ok(vec![net("10.20.0.0/16"), net("192.168.1.7/32")])
    );
    assert_eq!(routes(&[]), Err(PlanError::NoSelectors { which: "TSr" }));
    let mut v6 = TrafficSelector::v4([0; 4], [0; 4]);
    v6.ts_type = ts::IPV6_ADDR_RANGE;
    v6.start = vec![0; 16];
    v6.end = vec![0xff; 16];
    assert_eq!(
        routes(&[tsr[0].clone(), v6]),
        Err(PlanError::NotIpv4 {
            index: 1,
            ts_type: ts::IPV6_ADDR_RANGE
        })
    );
    let mut short = tsr[0].clone();
    short.end = vec![10, 20, 255];
    assert!(matches!(routes(&[short]), Err(PlanError::NotIpv4 { .. })));
    let backwards = TrafficSelector::v4([10, 0, 0, 9], [10, 0, 0, 1]);
    assert_eq!(
        routes(&[backwards]),
        Err(PlanError::EmptyRange { index: 0 })
    );
}

#[test]
fn inner_address_must_stay_inside_narrowed_tsi() {
    let inner: Ipv4Addr = "10.30.0.5".parse().unwrap();
    assert_eq!(
        inner_selector(inner),
        TrafficSelector::v4([10, 30, 0, 5], [10, 30, 0, 5])
    );
    assert!(check_inner(&[inner_selector(inner)], inner).is_ok());
    assert!(
        check_inner(
            &[TrafficSelector::v4([10, 30, 0, 0], [10, 30, 0, 255])],
            inner
        )
        .is_ok()
    );
    assert_eq!(
        check_inner(
            &[TrafficSelector::v4([10, 30, 0, 6], [10, 30, 0, 9])],
            inner
        ),
        Err(PlanError::InnerOutsideTsi { inner })
    );
    assert_eq!(
        check_inner(&[], inner),
        Err(PlanError::NoSelectors { which: "TSi" })
    );
}

fn child(spi_in: u32, spi_out: u32, keys: ChildKeys) -> ChildSa {
    ChildSa {
        spi_in,
        spi_out,
        keys,
        local_ts: vec![],
        remote_ts: vec![],
        esn: false,
    }
}

/// Our outbound SA seals what the responder's view (its inbound = our i->r key under its own
/// SPI) opens, and the other way round: the directions are not swapped.
#[test]
fn esp_sas_use_the_right_key_and_spi_per_direction() {
    let keys = derive_child_keys(&[7; 32], &[1; 32], &[2; 32]).unwrap();
    let now = Instant::now();
    let limits = LifetimeLimits::default();
    let ours = child(0x1000, 0x2000, keys.clone());
    let (mut out, mut inb) = esp_sas(&ours, limits, now).unwrap();
    assert_eq!((out.spi(), inb.spi()), (0x2000, 0x1000));
    // The responder's pair: it opens with i->r under its SPI 0x2000, seals r->i to 0x1000.
    let theirs = child(
        0x2000,
        0x1000,
        ChildKeys {
            initiator_to_responder: keys.responder_to_initiator.clone(),
            responder_to_initiator: keys.initiator_to_responder.clone(),
        },
    );
    let (mut r_out, mut r_in) = esp_sas(&theirs, limits, now).unwrap();
    let mut packet = vec![
        0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 30, 0, 5, 10, 20, 0, 1,
    ];
    let mut wire = Vec::new();
    out.encapsulate(&packet, &mut wire, now).unwrap();
    assert!(matches!(
        r_in.decapsulate(&mut wire, now),
        Ok(agent_esp::Decapsulated::Ipv4(p)) if p == packet.as_slice()
    ));
    packet[12..20].rotate_left(4);
    r_out.encapsulate(&packet, &mut wire, now).unwrap();
    assert!(matches!(
        inb.decapsulate(&mut wire, now),
        Ok(agent_esp::Decapsulated::Ipv4(p)) if p == packet.as_slice()
    ));
    // Our own outbound packet does not open with our inbound SA (wrong SPI/key).
    out.encapsulate(&packet, &mut wire, now).unwrap();
    assert!(inb.decapsulate(&mut wire, now).is_err());
}

#[test]
fn reserved_spis_from_the_peer_are_refused() {
    let keys = derive_child_keys(&[7; 32], &[1; 32], &[2; 32]).unwrap();
    let r = esp_sas(
        &child(0x1000, 255, keys),
        LifetimeLimits::default(),
        Instant::now(),
    );
    assert!(matches!(
        r,
        Err(PlanError::Sa(SaError::ReservedSpi { spi: 255 }))
    ));
}

#[test]
fn the_inner_address_is_fixed_or_assigned() {
    let fixed: Ipv4Addr = "10.30.0.5".parse().unwrap();
    let pool: Ipv4Addr = "10.62.0.2".parse().unwrap();
    assert_eq!(
        local_selector(InnerAddress::Fixed(fixed)),
        TrafficSelector::v4([10, 30, 0, 5], [10, 30, 0, 5])
    );
    assert_eq!(
        local_selector(InnerAddress::FromResponder),
        TrafficSelector::v4([0; 4], [255; 4])
    );
    // A fixed address wins over anything the responder says.
    assert_eq!(
        inner_address(InnerAddress::Fixed(fixed), Some(pool)),
        Ok(fixed)
    );
    assert_eq!(inner_address(InnerAddress::Fixed(fixed), None), Ok(fixed));
    assert_eq!(
        inner_address(InnerAddress::FromResponder, Some(pool)),
        Ok(pool)
    );
    assert_eq!(
        inner_address(InnerAddress::FromResponder, None),
        Err(PlanError::NoAssignedAddress)
    );
    // The assigned address must lie in the narrowed TSi (the responder narrows 0/0 to it).
    let narrowed = [TrafficSelector::v4([10, 62, 0, 2], [10, 62, 0, 2])];
    assert_eq!(check_inner(&narrowed, pool), Ok(()));
    assert_eq!(
        check_inner(&narrowed, "10.62.0.3".parse().unwrap()),
        Err(PlanError::InnerOutsideTsi {
            inner: "10.62.0.3".parse().unwrap()
        })
    );
}
