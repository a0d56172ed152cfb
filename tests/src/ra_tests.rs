//! Unit tests of `ra`: known-answer bytes (checksums computed independently with Python's
//! `ipaddress`/`struct`), round trips, and hostile input. No IO.

use super::*;

const ROUTER_MAC: MacAddr = MacAddr([0x02, 0x77, 0, 0, 0, 0x01]);

fn lab_prefix() -> Ipv6Addr {
    "fd77::".parse().unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn link_local_is_eui64() {
    assert_eq!(
        link_local_from_mac(ROUTER_MAC),
        "fe80::77:ff:fe00:1".parse::<Ipv6Addr>().unwrap()
    );
    let mac = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    assert_eq!(
        link_local_from_mac(mac),
        "fe80::5054:ff:fe12:3456".parse::<Ipv6Addr>().unwrap()
    );
}

#[test]
fn lab_advert_bytes_are_exact() {
    let src = link_local_from_mac(ROUTER_MAC);
    let bytes = RouterAdvert::for_lab(ROUTER_MAC, lab_prefix(), 64).to_bytes(src, ALL_NODES);
    let expected = hex("86 00 6e19 40 00 0000  00000000  00000000
         01 01 027700000001
         03 04 40 c0 00015180 00003840 00000000 fd770000000000000000000000000000");
    assert_eq!(bytes, expected);
    assert_eq!(
        checksum(src, ALL_NODES, &bytes),
        0,
        "a correct message sums to zero"
    );
    assert_ne!(
        checksum(src, ALL_ROUTERS, &bytes),
        0,
        "the pseudo-header covers the destination"
    );
}

#[test]
fn solicit_bytes_are_exact() {
    let src: Ipv6Addr = "fe80::2".parse().unwrap();
    let mac = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    let bytes = RouterSolicit {
        source_mac: Some(mac),
    }
    .to_bytes(src, ALL_ROUTERS);
    assert_eq!(bytes, hex("85 00 f56f 00000000 01 01 525400123456"));
    assert_eq!(RouterSolicit::parse(&bytes).unwrap().source_mac, Some(mac));
    let anon = RouterSolicit { source_mac: None }.to_bytes(Ipv6Addr::UNSPECIFIED, ALL_ROUTERS);
    assert_eq!(anon.len(), 8);
    assert_eq!(RouterSolicit::parse(&anon).unwrap().source_mac, None);
}

#[test]
fn advert_round_trips_with_all_fields_and_masks_the_prefix() {
    let ra = RouterAdvert {
        cur_hop_limit: 255,
        managed: true,
        other_config: true,
        router_lifetime: 1800,
        reachable_time: 30_000,
        retrans_timer: 1_000,
        source_mac: Some(ROUTER_MAC),
        mtu: Some(1500),
        prefixes: vec![PrefixInfo {
            prefix: "fd77:1:2:3:4:5:6:7".parse().unwrap(),
            len: 48,
            on_link: false,
            autonomous: true,
            valid_lifetime: u32::MAX,
            preferred_lifetime: 7,
        }],
    };
    let bytes = ra.to_bytes(Ipv6Addr::LOCALHOST, ALL_NODES);
    let back = RouterAdvert::parse(&bytes).unwrap();
    let mut expected = ra.clone();
    expected.prefixes[0].prefix = "fd77:1:2::".parse().unwrap();
    assert_eq!(back, expected);
    let mut host = ra;
    host.prefixes[0].len = 0;
    let zero = RouterAdvert::parse(&host.to_bytes(Ipv6Addr::LOCALHOST, ALL_NODES)).unwrap();
    assert_eq!(zero.prefixes[0].prefix, Ipv6Addr::UNSPECIFIED);
}

#[test]
fn hostile_messages_are_rejected_without_panic() {
    let good = RouterAdvert::for_lab(ROUTER_MAC, lab_prefix(), 64)
        .to_bytes(Ipv6Addr::LOCALHOST, ALL_NODES);
    for cut in 0..good.len() {
        // a cut at an option boundary is a valid, shorter RA; any other cut is an error
        match (cut, RouterAdvert::parse(&good[..cut])) {
            (16, Ok(ra)) => assert_eq!((ra.source_mac, ra.prefixes.len()), (None, 0)),
            (24, Ok(ra)) => assert_eq!((ra.source_mac, ra.prefixes.len()), (Some(ROUTER_MAC), 0)),
            (_, Err(_)) => {}
            (_, Ok(ra)) => panic!("accepted {cut} bytes as {ra:?}"),
        }
    }
    assert!(matches!(
        RouterAdvert::parse(&[]),
        Err(NdError::Truncated { .. })
    ));
    assert!(matches!(
        RouterAdvert::parse(&hex("85 00 0000 00000000")),
        Err(NdError::WrongType {
            found: 133,
            expected: 134
        })
    ));
    let mut coded = good.clone();
    coded[1] = 1;
    assert_eq!(RouterAdvert::parse(&coded), Err(NdError::BadCode(1)));
    let mut zero_len = good.clone();
    zero_len[17] = 0; // the source link-layer option claims 0 units: would loop forever
    assert!(matches!(
        RouterAdvert::parse(&zero_len),
        Err(NdError::BadOption { offset: 16, .. })
    ));
    let mut overrun = good.clone();
    overrun[25] = 5; // prefix option claims 40 bytes, 32 remain
    assert!(matches!(
        RouterAdvert::parse(&overrun),
        Err(NdError::BadOption { offset: 24, .. })
    ));
    let mut long_prefix = good.clone();
    long_prefix[26] = 129;
    assert!(matches!(
        RouterAdvert::parse(&long_prefix),
        Err(NdError::BadOption { .. })
    ));
    let mut short_pio = hex("86 00 0000 40 00 0000 00000000 00000000");
    short_pio.extend(hex("03 01 40 c0 00000000"));
    assert!(matches!(
        RouterAdvert::parse(&short_pio),
        Err(NdError::BadOption { .. })
    ));
    let mut odd = good.clone();
    odd.push(0);
    assert!(
        RouterAdvert::parse(&odd).is_err(),
        "a trailing byte is a cut-off option header"
    );
    // unknown options are skipped
    let mut unknown = good.clone();
    unknown.extend(hex("fe 01 000000000000"));
    assert_eq!(RouterAdvert::parse(&unknown).unwrap().prefixes.len(), 1);
    assert!(RouterSolicit::parse(&hex("85 00 0000 000000")).is_err());
    assert!(RouterSolicit::parse(&hex("85 00 0000 00000000 01 00 000000000000")).is_err());
}
