//! Codec: every payload type round-trips; hostile and truncated input gives typed errors.

use agent_ike::consts::{cert, exchange, flags, notify, payload as pt};
use agent_ike::{
    DecodeError, Header, Identity, Notify, Payload, Proposal, TrafficSelector, Transform, decode,
    encode_message,
};
use proptest::prelude::*;

fn header() -> Header {
    Header {
        spi_i: 0x0102_0304_0506_0708,
        spi_r: 0,
        exchange: exchange::IKE_SA_INIT,
        flags: flags::INITIATOR,
        msg_id: 0,
    }
}

fn all_payloads() -> Vec<Payload> {
    vec![
        Payload::Notify(Notify::ike(notify::COOKIE, vec![9; 16])),
        Payload::Sa(vec![
            Proposal {
                num: 1,
                protocol: 1,
                spi: vec![],
                transforms: vec![
                    Transform::AES256_GCM16,
                    Transform::PRF_SHA256,
                    Transform::dh(31),
                ],
            },
            Proposal {
                num: 2,
                protocol: 3,
                spi: vec![1, 2, 3, 4],
                transforms: vec![Transform::dh(19)],
            },
        ]),
        Payload::Ke {
            group: 31,
            data: vec![7; 32],
        },
        Payload::Nonce(vec![1; 32]),
        Payload::Notify(Notify {
            protocol: 3,
            spi: vec![0xaa; 4],
            kind: 16393,
            data: vec![],
        }),
        Payload::IdI(Identity {
            id_type: 2,
            data: b"agent.lease".to_vec(),
        }),
        Payload::IdR(Identity {
            id_type: 1,
            data: vec![10, 0, 0, 1],
        }),
        Payload::Cert {
            encoding: cert::X509_SIGNATURE,
            data: vec![0x30; 300],
        },
        Payload::CertReq {
            encoding: cert::X509_SIGNATURE,
            data: vec![0x11; 20],
        },
        Payload::Auth {
            method: 14,
            data: vec![0x42; 72],
        },
        Payload::TsI(vec![TrafficSelector::v4([10, 0, 0, 1], [10, 0, 0, 1])]),
        Payload::TsR(vec![
            TrafficSelector::v4([172, 30, 0, 0], [172, 30, 0, 255]),
            TrafficSelector {
                ts_type: 8,
                ip_protocol: 6,
                start_port: 443,
                end_port: 443,
                start: vec![0; 16],
                end: vec![0xff; 16],
            },
        ]),
        Payload::VendorId(b"agent-ike".to_vec()),
        Payload::Unknown {
            kind: 200,
            body: vec![1, 2, 3],
        },
    ]
}

#[test]
fn every_payload_type_round_trips() {
    let p = all_payloads();
    let bytes = encode_message(&header(), &p).unwrap();
    let m = decode(&bytes).unwrap();
    assert_eq!(m.header, header());
    assert_eq!(m.payloads, p);
    assert!(m.sk.is_none());
}

#[test]
fn every_truncation_is_refused() {
    let bytes = encode_message(&header(), &all_payloads()).unwrap();
    for n in 0..bytes.len() {
        assert!(decode(&bytes[..n]).is_err(), "prefix of {n} bytes accepted");
        // Truncated, but with the header's length fixed up to match: the chain must notice.
        let mut cut = bytes[..n].to_vec();
        if n >= 28 {
            cut[24..28].copy_from_slice(&(n as u32).to_be_bytes());
            assert!(
                decode(&cut).is_err(),
                "re-lengthed prefix of {n} bytes accepted"
            );
        }
    }
}

#[test]
fn trailing_bytes_and_bad_headers_are_refused() {
    let bytes = encode_message(&header(), &[Payload::Nonce(vec![1; 16])]).unwrap();
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        decode(&longer),
        Err(DecodeError::LengthMismatch { .. })
    ));
    let len = longer.len() as u32;
    longer[24..28].copy_from_slice(&len.to_be_bytes());
    assert_eq!(decode(&longer), Err(DecodeError::TrailingBytes { left: 1 }));
    let mut v1 = bytes.clone();
    v1[17] = 0x10;
    assert!(matches!(
        decode(&v1),
        Err(DecodeError::BadVersion { major: 1, .. })
    ));
    let mut tiny = bytes.clone();
    tiny[30..32].copy_from_slice(&3u16.to_be_bytes());
    assert!(matches!(
        decode(&tiny),
        Err(DecodeError::PayloadTooSmall { .. })
    ));
    let mut chain = bytes.clone();
    chain[28] = pt::NONCE; // names another payload after the last
    assert_eq!(
        decode(&chain),
        Err(DecodeError::ChainTooShort { kind: pt::NONCE })
    );
}

#[test]
fn critical_unknown_payload_is_refused() {
    let mut bytes = encode_message(
        &header(),
        &[Payload::Unknown {
            kind: 201,
            body: vec![0; 4],
        }],
    )
    .unwrap();
    bytes[29] = 0x80;
    assert_eq!(
        decode(&bytes),
        Err(DecodeError::UnsupportedCritical { kind: 201 })
    );
}

#[test]
fn malformed_bodies_are_refused() {
    // Notify SPI size beyond the body.
    let bad_notify = Payload::Unknown {
        kind: 0,
        body: vec![1, 8, 0, 1, 0xaa],
    };
    let mut bytes = encode_message(&header(), &[bad_notify]).unwrap();
    bytes[16] = pt::NOTIFY;
    assert!(matches!(
        decode(&bytes),
        Err(DecodeError::PayloadTooSmall {
            kind: pt::NOTIFY,
            ..
        })
    ));
    // An SA whose proposal length disagrees with its transforms.
    let sa = Payload::Sa(vec![Proposal {
        num: 1,
        protocol: 1,
        spi: vec![],
        transforms: vec![Transform::dh(31)],
    }]);
    let mut bytes = encode_message(&header(), &[sa]).unwrap();
    bytes[32 + 3] += 4; // proposal length +4, payload unchanged
    assert!(decode(&bytes).is_err());
    // KE shorter than its 4-byte fixed part.
    let mut bytes = encode_message(
        &header(),
        &[Payload::Unknown {
            kind: 0,
            body: vec![0, 31],
        }],
    )
    .unwrap();
    bytes[16] = pt::KE;
    assert!(matches!(
        decode(&bytes),
        Err(DecodeError::PayloadTooSmall { kind: pt::KE, .. })
    ));
}

/// Why Notify bodies are read here: ipsec-parser 0.7 drops the last 4 bytes of notify data.
#[test]
fn ipsec_parser_notify_data_is_short_by_four() {
    let n = Notify::ike(notify::COOKIE, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    let bytes = encode_message(&header(), &[Payload::Notify(n.clone())]).unwrap();
    let (_, (_, list)) = ipsec_parser::parse_ikev2_message(&bytes).unwrap();
    let list = list.unwrap();
    let ipsec_parser::IkeV2PayloadContent::Notify(theirs) = &list[1].content else {
        panic!("not a notify: {list:?}")
    };
    assert_eq!(theirs.notify_data, Some(&[1u8, 2, 3, 4][..]));
    assert_eq!(decode(&bytes).unwrap().payloads, vec![Payload::Notify(n)]);
}

fn arb_payload() -> impl Strategy<Value = Payload> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..80);
    prop_oneof![
        (any::<u16>(), bytes()).prop_map(|(group, data)| Payload::Ke { group, data }),
        bytes().prop_map(Payload::Nonce),
        (
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..8),
            any::<u16>(),
            bytes()
        )
            .prop_map(|(protocol, spi, kind, data)| Payload::Notify(Notify {
                protocol,
                spi,
                kind,
                data
            })),
        (any::<u8>(), bytes()).prop_map(|(id_type, data)| Payload::IdI(Identity { id_type, data })),
        (any::<u8>(), bytes()).prop_map(|(encoding, data)| Payload::Cert { encoding, data }),
        (any::<u8>(), bytes()).prop_map(|(method, data)| Payload::Auth { method, data }),
        proptest::collection::vec(
            (
                any::<u8>(),
                any::<u16>(),
                proptest::option::of(any::<u16>())
            )
                .prop_map(|(kind, id, key_bits)| Transform { kind, id, key_bits }),
            1..6
        )
        .prop_map(|transforms| Payload::Sa(vec![Proposal {
            num: 1,
            protocol: 1,
            spi: vec![],
            transforms
        }])),
    ]
}

proptest! {
    #[test]
    fn arbitrary_messages_round_trip(p in proptest::collection::vec(arb_payload(), 0..8)) {
        let bytes = encode_message(&header(), &p).unwrap();
        prop_assert_eq!(decode(&bytes).unwrap().payloads, p);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode(&b);
    }

    #[test]
    fn mutated_messages_never_panic(i in 0usize..2000, v in any::<u8>()) {
        let mut bytes = encode_message(&header(), &all_payloads()).unwrap();
        let at = i % bytes.len();
        bytes[at] = v;
        let _ = decode(&bytes);
    }
}
