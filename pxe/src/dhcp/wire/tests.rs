//! Hostile-input tests of the guarded decoder and of `inspect`.

use dhcproto::v4;
use proptest::prelude::*;

use super::*;
use crate::dhcp::engine::Engine;
use crate::dhcp::table::LeaseTable;
use crate::dhcp::testutil::{config, ctx, discover, open};

/// A BOOTREQUEST header from 52:54:00:00:00:01 with the cookie, followed by `opts`.
fn raw(opts: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    b[28..34].copy_from_slice(&[0x52, 0x54, 0, 0, 0, 1]);
    b[236..240].copy_from_slice(&v4::MAGIC);
    b.extend_from_slice(opts);
    b
}

const DISCOVER: [u8; 3] = [53, 1, 1];

#[test]
fn a_plain_discover_decodes() {
    let mut o = DISCOVER.to_vec();
    o.push(255);
    let m = decode(&raw(&o)).unwrap();
    let (mac, t) = inspect(&m).unwrap();
    assert_eq!(
        (mac.to_string().as_str(), t),
        ("52:54:00:00:00:01", v4::MessageType::Discover)
    );
}

#[test]
fn truncated_and_oversized_datagrams() {
    for len in [0, 1, 100, 239] {
        assert_eq!(decode(&vec![1u8; len]), Err(Malformed::Truncated { len }));
    }
    let big = raw(&vec![0u8; MAX_MESSAGE_LEN]);
    assert!(matches!(decode(&big), Err(Malformed::TooLong { .. })));
}

#[test]
fn garbage_without_cookie() {
    let junk: Vec<u8> = (0..400u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(matches!(decode(&junk), Err(Malformed::BadCookie { .. })));
    let mut b = raw(&DISCOVER);
    b[236] = 0;
    assert_eq!(
        decode(&b),
        Err(Malformed::BadCookie {
            found: [0, 130, 83, 99]
        })
    );
}

#[test]
fn wrong_op_and_bad_hardware_fields() {
    let mut b = raw(&DISCOVER);
    b[0] = 2;
    assert_eq!(inspect(&decode(&b).unwrap()), Err(Malformed::WrongOp(2)));
    b[0] = 77;
    assert_eq!(inspect(&decode(&b).unwrap()), Err(Malformed::WrongOp(77)));

    let mut b = raw(&DISCOVER);
    b[2] = 200;
    let m = decode(&b).unwrap();
    assert_eq!(inspect(&m), Err(Malformed::HardwareLength(200)));
    let d = Engine::new(config()).handle(&m, &ctx(), &open(), &LeaseTable::new(), 0);
    assert_eq!(d.mac, None);
    assert!(matches!(
        d.silence(),
        Some(crate::dhcp::Silence::Malformed(Malformed::HardwareLength(
            200
        )))
    ));

    let mut b = raw(&DISCOVER);
    b[2] = 16;
    assert_eq!(
        inspect(&decode(&b).unwrap()),
        Err(Malformed::NotEthernet { htype: 1, hlen: 16 })
    );
    let mut b = raw(&DISCOVER);
    b[1] = 6;
    assert_eq!(
        inspect(&decode(&b).unwrap()),
        Err(Malformed::NotEthernet { htype: 6, hlen: 6 })
    );
    let mut b = raw(&DISCOVER);
    b[28] = 0xff;
    assert!(matches!(
        inspect(&decode(&b).unwrap()),
        Err(Malformed::GroupMac(_))
    ));
}

#[test]
fn message_type_missing_or_not_a_client_message() {
    assert_eq!(
        inspect(&decode(&raw(&[12, 2, b'h', b'i', 255])).unwrap()),
        Err(Malformed::MissingMessageType)
    );
    assert_eq!(
        inspect(&decode(&raw(&[])).unwrap()),
        Err(Malformed::MissingMessageType)
    );
    assert_eq!(
        inspect(&decode(&raw(&[53, 1, 2, 255])).unwrap()),
        Err(Malformed::NotClientMessage(2))
    );
    assert_eq!(
        inspect(&decode(&raw(&[53, 1, 200, 255])).unwrap()),
        Err(Malformed::NotClientMessage(200))
    );
}

#[test]
fn option_overruns_are_rejected() {
    assert_eq!(
        decode(&raw(&[53, 10, 1])),
        Err(Malformed::OptionOverrun { code: 53 })
    );
    assert_eq!(
        decode(&raw(&[53, 1, 1, 61])),
        Err(Malformed::OptionOverrun { code: 61 })
    );
    // No End option is tolerated (old ROMs), and pads are skipped.
    assert!(decode(&raw(&[0, 0, 53, 1, 1, 0])).is_ok());
}

#[test]
fn option_lengths_that_would_trip_dhcproto() {
    let cases: [(&[u8], u8); 7] = [
        (&[80, 1, 0], 80),
        (&[94, 2, 1, 2], 94),
        (&[94, 3, 1, 2, 3, 94, 3, 1, 2, 3], 94),
        (&[151, 0], 151),
        (&[81, 1, 0], 81),
        (&[152, 3, 0, 0, 0], 152),
        (&[52, 2, 1, 1], 52),
    ];
    for (opts, code) in cases {
        let mut o = DISCOVER.to_vec();
        o.extend_from_slice(opts);
        o.push(255);
        match decode(&raw(&o)) {
            Err(Malformed::OptionLength { code: c, .. }) => assert_eq!(c, code, "{opts:?}"),
            other => panic!("{opts:?} gave {other:?}"),
        }
    }
    // Separated by a pad they are two options, each fine.
    let mut o = DISCOVER.to_vec();
    o.extend_from_slice(&[94, 3, 1, 2, 3, 0, 94, 3, 1, 2, 3, 80, 0, 255]);
    assert!(decode(&raw(&o)).is_ok());
}

#[test]
fn option_overload_merges_file_and_sname_areas() {
    let mut b = raw(&[52, 1, 3, 255]);
    b[108..112].copy_from_slice(&[53, 1, 1, 255]);
    b[44..51].copy_from_slice(&[12, 4, b'h', b'o', b's', b't', 255]);
    let m = decode(&b).unwrap();
    assert_eq!(m.opts().msg_type(), Some(v4::MessageType::Discover));
    assert_eq!(
        m.opts().get(v4::OptionCode::Hostname),
        Some(&v4::DhcpOption::Hostname("host".into()))
    );
    assert_eq!((m.fname(), m.sname()), (None, None));
    assert!(!m.opts().contains(v4::OptionCode::OptionOverload));

    // The main area wins over an overloaded one.
    let mut b = raw(&[53, 1, 3, 52, 1, 1, 255]);
    b[108..112].copy_from_slice(&[53, 1, 1, 255]);
    assert_eq!(
        decode(&b).unwrap().opts().msg_type(),
        Some(v4::MessageType::Request)
    );

    // Without option 52 the same bytes are just a file name.
    let mut b = raw(&[53, 1, 1, 255]);
    b[108..112].copy_from_slice(b"boot");
    assert_eq!(decode(&b).unwrap().fname(), Some(&b"boot\0"[..]));
}

#[test]
fn hostile_option_overload() {
    assert_eq!(
        decode(&raw(&[52, 1, 4, 255])),
        Err(Malformed::BadOverload { value: 4 })
    );
    assert_eq!(
        decode(&raw(&[52, 1, 0, 255])),
        Err(Malformed::BadOverload { value: 0 })
    );
    let mut b = raw(&[52, 1, 1, 255]);
    b[108..111].copy_from_slice(&[52, 1, 2]);
    assert!(matches!(
        decode(&b),
        Err(Malformed::OptionLength { code: 52, .. })
    ));
    let mut b = raw(&[52, 1, 1, 255]);
    b[230..236].copy_from_slice(&[61, 40, 1, 2, 3, 4]);
    assert_eq!(decode(&b), Err(Malformed::OptionOverrun { code: 61 }));
    let mut b = raw(&[52, 1, 2, 255]);
    b[44..108].fill(0xfe);
    assert!(decode(&b).is_err());
}

#[test]
fn replies_are_padded_to_the_bootp_minimum() {
    let b = encode(&discover(1)).unwrap();
    assert_eq!(b.len(), MIN_REPLY_LEN);
    assert_eq!(decode(&b).unwrap().xid(), discover(1).xid());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..700)) {
        let engine = Engine::new(config());
        if let Ok(m) = decode(&data) {
            let _ = engine.handle(&m, &ctx(), &open(), &LeaseTable::new(), 1000);
        }
    }

    #[test]
    fn arbitrary_options_never_panic(
        head in proptest::collection::vec(any::<u8>(), 240..=240),
        opts in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut b = head;
        b[0] = 1;
        b[236..240].copy_from_slice(&v4::MAGIC);
        b.extend_from_slice(&opts);
        let engine = Engine::new(config());
        if let Ok(m) = decode(&b) {
            let d = engine.handle(&m, &ctx(), &open(), &LeaseTable::new(), 1000);
            if let Some(r) = d.reply() {
                prop_assert!(encode(&r.message).is_ok());
            }
        }
    }
}
