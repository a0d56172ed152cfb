//! Outbound -> inbound round trips for every inner size up to 1500 bytes and beyond.

mod common;

use std::time::Instant;

use agent_esp::{Decapsulated, EncapError, LifetimeLimits, packet};
use common::{ipv4, pair};
use proptest::prelude::*;

#[test]
fn every_payload_size_from_0_to_1500_round_trips_in_order() {
    let now = Instant::now();
    let (mut out, mut inb) = pair(LifetimeLimits::default(), now);
    let mut pkt = Vec::new();
    for len in 0..=1500 {
        let inner = ipv4(len, (len % 251) as u8);
        out.encapsulate(&inner, &mut pkt, now).expect("seal");
        assert_eq!(pkt.len() % 4, 0, "ESP packets are 4-byte aligned here");
        assert!(pkt.len() <= inner.len() + packet::MAX_OVERHEAD);
        let got = inb.decapsulate(&mut pkt, now).expect("open");
        assert_eq!(got, Decapsulated::Ipv4(&inner[..]), "payload {len}");
    }
    assert_eq!(inb.window().highest(), 1501);
    assert_eq!(out.lifetime().packets(), 1501);
    assert_eq!(out.lifetime().bytes(), inb.lifetime().bytes());
}

#[test]
fn the_largest_inner_packet_round_trips_and_one_more_byte_is_refused() {
    let now = Instant::now();
    let (mut out, mut inb) = pair(LifetimeLimits::default(), now);
    let mut pkt = Vec::new();
    let mut inner = ipv4(packet::MAX_INNER - 20, 7);
    out.encapsulate(&inner, &mut pkt, now).expect("seal");
    assert!(pkt.len() <= packet::MAX_DATAGRAM);
    assert_eq!(
        inb.decapsulate(&mut pkt, now),
        Ok(Decapsulated::Ipv4(&inner[..]))
    );
    inner.push(0);
    assert!(matches!(
        out.encapsulate(&inner, &mut pkt, now),
        Err(EncapError::TooLong { .. })
    ));
}

proptest! {
    #[test]
    fn any_inner_packet_round_trips(
        len in 0usize..=1500,
        fill in any::<u8>(),
        tfc in 0usize..16,
        skip in 0u32..2000,
    ) {
        let now = Instant::now();
        let (mut out, mut inb) = pair(LifetimeLimits::default(), now);
        out.skip_to(skip);
        let ip = ipv4(len, fill);
        let mut inner = ip.clone();
        inner.extend(std::iter::repeat_n(0xee, tfc));
        let mut pkt = Vec::new();
        let seq = out.encapsulate(&inner, &mut pkt, now).expect("seal");
        prop_assert_eq!(seq, skip + 1);
        let got = inb.decapsulate(&mut pkt, now).expect("open");
        prop_assert_eq!(got, Decapsulated::Ipv4(&ip[..]));
    }
}
