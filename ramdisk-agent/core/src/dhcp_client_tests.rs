//! Unit tests of the DHCP client machine: what it sends, what it ignores, its timers. No IO.

use super::*;
use crate::dhcp_lease::scale;
use proptest::prelude::*;

const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 9]);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 50);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn decode_sent(frame: &[u8]) -> Message {
    let udp = frame::parse_udp(frame).unwrap();
    assert_eq!((udp.src_port, udp.dst_port), (68, 67));
    assert_eq!(
        (udp.src_ip, udp.dst_ip),
        (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
    );
    assert_eq!((udp.src_mac, udp.dst_mac), (MAC, BROADCAST_MAC));
    assert!(udp.payload.len() >= 300);
    Message::decode(&mut Decoder::new(udp.payload)).unwrap()
}

/// A server reply to `xid`, framed, with `edit` applied to the message first.
fn reply(kind: MessageType, xid: u32, edit: impl FnOnce(&mut Message)) -> Vec<u8> {
    let u = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(xid, u, ADDR, SERVER, u, &MAC.0);
    m.set_opcode(Opcode::BootReply);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
    m.opts_mut().insert(DhcpOption::AddressLeaseTime(3600));
    m.opts_mut()
        .insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
    m.opts_mut().insert(DhcpOption::Router(vec![SERVER]));
    edit(&mut m);
    let payload = m.to_vec().unwrap();
    frame::build_udp(
        &UdpFrame {
            dst_mac: BROADCAST_MAC,
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            src_ip: SERVER,
            dst_ip: Ipv4Addr::BROADCAST,
            src_port: 67,
            dst_port: 68,
            payload: &payload,
        },
        7,
    )
    .unwrap()
}

/// A client that has sent its DISCOVER with xid 0xabcd0001 at t = 10 s.
fn selecting() -> DhcpClient {
    let mut c = DhcpClient::new(MAC, secs(10));
    c.poll(secs(10), 0x0000_03e8_abcd_0001).unwrap().unwrap();
    c
}

#[test]
fn discover_carries_the_agent_identity() {
    let mut c = DhcpClient::new(MAC, secs(10));
    assert_eq!(c.next_wakeup(), Some(secs(10)));
    assert_eq!(c.poll(secs(9), 1).unwrap(), None);
    let f = c.poll(secs(12), 0x0000_03e8_1234_5678).unwrap().unwrap();
    let m = decode_sent(&f);
    assert_eq!(m.opcode(), Opcode::BootRequest);
    assert_eq!(m.xid(), 0x1234_5678);
    assert_eq!(m.chaddr(), &MAC.0);
    assert!(m.flags().broadcast());
    assert_eq!(m.secs(), 2);
    assert_eq!(m.opts().msg_type(), Some(MessageType::Discover));
    assert_eq!(
        m.opts().get(OptionCode::ClassIdentifier),
        Some(&DhcpOption::ClassIdentifier(b"lease-agent".to_vec()))
    );
    assert_eq!(
        m.opts().get(OptionCode::ClientIdentifier),
        Some(&DhcpOption::ClientIdentifier(vec![
            1, 0x52, 0x54, 0, 0, 0, 9
        ]))
    );
    let Some(DhcpOption::ParameterRequestList(prl)) =
        m.opts().get(OptionCode::ParameterRequestList)
    else {
        panic!("no option 55");
    };
    let codes: Vec<u8> = prl.iter().map(|&c| u8::from(c)).collect();
    assert_eq!(codes, vec![1, 3, 6, 51, 54, 58, 59]);
    // 0x3e8 = 1000 in the upper half: no jitter, so the first timeout is exactly 4 s.
    assert_eq!(c.next_wakeup(), Some(secs(16)));
}

#[test]
fn discover_is_retransmitted_with_the_same_xid_and_growing_timeouts() {
    let mut c = selecting();
    let mut at = secs(10);
    let mut gaps = vec![];
    for _ in 0..6 {
        let next = c.next_wakeup().unwrap();
        assert_eq!(
            c.poll(next - Duration::from_millis(1), 1000 << 32).unwrap(),
            None
        );
        gaps.push((next - at).as_secs());
        at = next;
        let m = decode_sent(&c.poll(next, 1000 << 32).unwrap().unwrap());
        assert_eq!(m.xid(), 0xabcd_0001);
    }
    assert_eq!(gaps, vec![4, 8, 16, 32, 64, 64]);
}

#[test]
fn offer_then_ack_binds() {
    let mut c = selecting();
    let Handled::Send(req) = c
        .handle_frame(&reply(MessageType::Offer, 0xabcd_0001, |_| {}), secs(11), 0)
        .unwrap()
    else {
        panic!("offer not taken");
    };
    let m = decode_sent(&req);
    assert_eq!(m.opts().msg_type(), Some(MessageType::Request));
    assert_eq!(m.xid(), 0xabcd_0001);
    assert_eq!(m.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        m.opts().get(OptionCode::RequestedIpAddress),
        Some(&DhcpOption::RequestedIpAddress(ADDR))
    );
    assert_eq!(
        m.opts().get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    assert!(m.opts().get(OptionCode::ClassIdentifier).is_some());

    let ack = reply(MessageType::Ack, 0xabcd_0001, |m| {
        m.opts_mut().insert(DhcpOption::DomainNameServer(vec![
            Ipv4Addr::new(10, 77, 0, 53),
            Ipv4Addr::UNSPECIFIED,
        ]));
    });
    let Handled::Bound(lease) = c.handle_frame(&ack, secs(12), 0).unwrap() else {
        panic!()
    };
    assert_eq!(lease.address, ADDR);
    assert_eq!(lease.prefix_len(), 24);
    assert_eq!(lease.router, Some(SERVER));
    assert_eq!(lease.dns, vec![Ipv4Addr::new(10, 77, 0, 53)]);
    assert_eq!((lease.lease_secs, lease.t1, lease.t2), (3600, 1800, 3150));
    assert_eq!(lease.bound_at, secs(12));
    assert_eq!(c.state(), &State::Bound(lease));
    assert_eq!(c.next_wakeup(), None);
    assert_eq!(c.poll(secs(100_000), 0).unwrap(), None);
}

#[test]
fn wrong_replies_are_ignored_with_a_reason() {
    let mut c = selecting();
    let xid = 0xabcd_0001;
    type Check = fn(&Ignored) -> bool;
    let cases: Vec<(Vec<u8>, Check)> = vec![
        (reply(MessageType::Offer, 0x9999, |_| {}), |i| {
            matches!(i, Ignored::WrongXid { got: 0x9999, .. })
        }),
        (
            reply(MessageType::Offer, xid, |m| {
                m.set_chaddr(&[2, 2, 2, 2, 2, 2]);
            }),
            |i| matches!(i, Ignored::WrongChaddr(_)),
        ),
        (
            reply(MessageType::Offer, xid, |m| {
                m.set_opcode(Opcode::BootRequest);
            }),
            |i| *i == Ignored::NotReply,
        ),
        (
            reply(MessageType::Offer, xid, |m| {
                m.set_chaddr(&[0x52; 16]);
            }),
            |i| *i == Ignored::NotReply,
        ),
        (reply(MessageType::Ack, xid, |_| {}), |i| {
            matches!(i, Ignored::Unexpected(_, "selecting"))
        }),
        (
            reply(MessageType::Offer, xid, |m| {
                m.opts_mut().remove(OptionCode::ServerIdentifier);
            }),
            |i| *i == Ignored::BadOffer,
        ),
        (
            reply(MessageType::Offer, xid, |m| {
                m.set_yiaddr(Ipv4Addr::BROADCAST);
            }),
            |i| *i == Ignored::BadOffer,
        ),
        (vec![0u8; 10], |i| matches!(i, Ignored::Frame(_))),
    ];
    for (n, (frame, want)) in cases.into_iter().enumerate() {
        match c.handle_frame(&frame, secs(11), 0).unwrap() {
            Handled::Ignored(why) => assert!(want(&why), "case {n}: {why}"),
            other => panic!("case {n}: {other:?}"),
        }
        assert!(matches!(c.state(), State::Selecting { .. }), "case {n}");
    }
    // Our own broadcast DISCOVER, looped back by the packet socket, is not a reply.
    let mut fresh = DhcpClient::new(MAC, secs(0));
    let own = fresh.poll(secs(0), 5).unwrap().unwrap();
    assert_eq!(
        fresh.handle_frame(&own, secs(0), 0).unwrap(),
        Handled::Ignored(Ignored::NotDhcp { src: 68, dst: 67 })
    );
}

#[test]
fn nak_restarts_after_a_holdoff_with_a_new_xid() {
    let mut c = selecting();
    c.handle_frame(&reply(MessageType::Offer, 0xabcd_0001, |_| {}), secs(11), 0)
        .unwrap();
    // A NAK from another server is not ours to obey.
    let other = reply(MessageType::Nak, 0xabcd_0001, |m| {
        m.opts_mut()
            .insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 77, 0, 2)));
    });
    assert!(matches!(
        c.handle_frame(&other, secs(12), 0).unwrap(),
        Handled::Ignored(Ignored::WrongServer { .. })
    ));
    let nak = reply(MessageType::Nak, 0xabcd_0001, |_| {});
    assert_eq!(
        c.handle_frame(&nak, secs(12), 0).unwrap(),
        Handled::Restarted
    );
    assert_eq!(
        c.state(),
        &State::Init {
            not_before: secs(13)
        }
    );
    assert_eq!(c.poll(secs(12), 0x77).unwrap(), None);
    let m = decode_sent(&c.poll(secs(13), 0x77).unwrap().unwrap());
    assert_eq!(
        (m.opts().msg_type(), m.xid()),
        (Some(MessageType::Discover), 0x77)
    );
}

#[test]
fn unanswered_requests_fall_back_to_discover() {
    let mut c = selecting();
    c.handle_frame(
        &reply(MessageType::Offer, 0xabcd_0001, |_| {}),
        secs(11),
        1000 << 32,
    )
    .unwrap();
    let mut sent = vec![];
    for _ in 0..REQUEST_TRIES {
        let at = c.next_wakeup().unwrap();
        let m = decode_sent(&c.poll(at, (1000 << 32) | 0x55).unwrap().unwrap());
        sent.push(m.opts().msg_type());
    }
    assert_eq!(sent[..3], [Some(MessageType::Request); 3]);
    assert_eq!(sent[3], Some(MessageType::Discover));
    assert!(matches!(c.state(), State::Selecting { xid: 0x55, .. }));
}

#[test]
fn ack_checks_and_lease_defaults() {
    let offered = Offer {
        address: ADDR,
        server_id: SERVER,
    };
    let ack = |edit: fn(&mut Message)| {
        let f = reply(MessageType::Ack, 1, edit);
        let udp = frame::parse_udp(&f).unwrap();
        let m = Message::decode(&mut Decoder::new(udp.payload)).unwrap();
        lease_from_ack(&m, &offered, secs(1))
    };
    let l = ack(|m| {
        m.opts_mut().remove(OptionCode::SubnetMask);
        m.opts_mut().remove(OptionCode::Router);
        m.opts_mut().insert(DhcpOption::Renewal(5000));
        m.opts_mut().insert(DhcpOption::Rebinding(4000));
    })
    .unwrap();
    assert_eq!(
        l.netmask,
        Ipv4Addr::new(255, 0, 0, 0),
        "classful default for 10/8"
    );
    assert_eq!(l.router, None);
    assert_eq!((l.t1, l.t2), (3600, 3600), "T1 <= T2 <= lease");
    assert_eq!(
        ack(|m| {
            m.opts_mut().remove(OptionCode::AddressLeaseTime);
        }),
        Err(Ignored::BadAck("no lease time (option 51)"))
    );
    assert!(matches!(
        ack(|m| {
            m.set_yiaddr(Ipv4Addr::new(10, 77, 0, 51));
        }),
        Err(Ignored::BadAck(_))
    ));
    assert!(matches!(
        ack(|m| {
            m.opts_mut()
                .insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 0, 255, 0)));
        }),
        Err(Ignored::BadAck(_))
    ));
    assert!(matches!(
        ack(|m| {
            m.opts_mut()
                .insert(DhcpOption::SubnetMask(Ipv4Addr::BROADCAST));
        }),
        Err(Ignored::BadAck(_))
    ));
    let infinite = ack(|m| {
        m.opts_mut().insert(DhcpOption::AddressLeaseTime(u32::MAX));
    })
    .unwrap();
    assert_eq!(
        (infinite.t1, infinite.t2),
        (u32::MAX / 2, scale(u32::MAX, 7, 8))
    );
}

proptest! {
    /// Arbitrary bytes, and arbitrary DHCP payloads in valid frames, never panic the machine
    /// and never bind it.
    #[test]
    fn garbage_never_binds(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 1..8),
                           framed: bool) {
        let mut c = selecting();
        for p in payloads {
            let bytes = if framed {
                frame::build_udp(&UdpFrame {
                    dst_mac: BROADCAST_MAC, src_mac: MAC, src_ip: SERVER, dst_ip: Ipv4Addr::BROADCAST,
                    src_port: 67, dst_port: 68, payload: &p[..p.len().min(frame::MAX_PAYLOAD)],
                }, 0).unwrap()
            } else {
                p
            };
            let h = c.handle_frame(&bytes, secs(11), 0).unwrap();
            prop_assert!(!matches!(h, Handled::Bound(_)));
        }
    }

    /// In REQUESTING, mutated ACKs (a few bytes of a valid one changed) never panic, and
    /// whatever binds is consistent: the offered address, T1 <= T2 <= lease, a usable mask.
    #[test]
    fn mutated_acks_bind_only_consistent_leases(edits in proptest::collection::vec((0usize..400, any::<u8>()), 1..6)) {
        let mut c = selecting();
        c.handle_frame(&reply(MessageType::Offer, 0xabcd_0001, |_| {}), secs(11), 0).unwrap();
        let good = reply(MessageType::Ack, 0xabcd_0001, |m| {
            m.opts_mut().insert(DhcpOption::Renewal(100));
            m.opts_mut().insert(DhcpOption::Rebinding(200));
        });
        let udp = frame::parse_udp(&good).unwrap();
        let mut payload = udp.payload.to_vec();
        for (at, value) in edits {
            let at = at % payload.len();
            payload[at] = value;
        }
        let f = frame::build_udp(&UdpFrame { payload: &payload, ..udp }, 0).unwrap();
        if let Handled::Bound(l) = c.handle_frame(&f, secs(12), 0).unwrap() {
            prop_assert_eq!(l.address, ADDR);
            prop_assert!(l.t1 <= l.t2 && l.t2 <= l.lease_secs);
            prop_assert!(l.prefix_len() <= 30);
            prop_assert_eq!(u32::from(l.netmask).leading_ones() + u32::from(l.netmask).trailing_zeros(), 32);
        }
    }

    #[test]
    fn timers_never_go_backwards(steps in proptest::collection::vec((0u64..100_000, any::<u64>()), 1..50)) {
        let mut c = DhcpClient::new(MAC, Duration::ZERO);
        let mut now = Duration::ZERO;
        for (dt, random) in steps {
            now += Duration::from_millis(dt);
            c.poll(now, random).unwrap();
            if let Some(w) = c.next_wakeup() {
                let initial = matches!(c.state(), State::Init { .. });
                prop_assert!(w > now || initial);
            }
        }
    }
}

/// dhcproto 0.15 `debug_assert!`s on some option lengths; such replies must be ignored, never
/// reach its decoder (this test panicked before `dhcp_wire::prescan` existed).
#[test]
fn option_lengths_dhcproto_asserts_on_are_ignored() {
    let mut c = selecting();
    let good = reply(MessageType::Offer, 0xabcd_0001, |_| {});
    let udp = frame::parse_udp(&good).unwrap();
    let mut payload = udp.payload.to_vec();
    payload.splice(240..240, [80u8, 1, 0]);
    let bad = frame::build_udp(
        &UdpFrame {
            payload: &payload,
            ..udp
        },
        1,
    )
    .unwrap();
    match c.handle_frame(&bad, secs(11), 0).unwrap() {
        Handled::Ignored(Ignored::Decode(why)) => assert!(why.contains("option 80"), "{why}"),
        other => panic!("{other:?}"),
    }
}
