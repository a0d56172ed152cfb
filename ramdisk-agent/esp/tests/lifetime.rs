//! Sequence number exhaustion (ESN off) and lifetime decisions (soft: rekey, hard: refuse),
//! all with `now` passed in.

mod common;

use std::time::{Duration, Instant};

use agent_esp::{
    DecapError, EncapError, Lifetime, LifetimeLimits, OutboundSa, SEQUENCE_SOFT_LIMIT,
};
use common::{SPI, ipv4, key, pair};

#[test]
fn the_sequence_number_does_not_wrap() {
    let now = Instant::now();
    let (mut out, mut inb) = pair(LifetimeLimits::default(), now);
    let mut p = Vec::new();
    out.skip_to(u32::MAX - 2);
    assert!(out.needs_rekey(now), "past the soft sequence limit");
    assert!(!out.expired(now));
    assert_eq!(out.encapsulate(&ipv4(1, 1), &mut p, now), Ok(u32::MAX - 1));
    assert!(inb.decapsulate(&mut p, now).is_ok());
    assert_eq!(out.encapsulate(&ipv4(1, 1), &mut p, now), Ok(u32::MAX));
    assert!(inb.decapsulate(&mut p, now).is_ok());
    assert!(out.expired(now));
    for _ in 0..3 {
        assert_eq!(
            out.encapsulate(&ipv4(1, 1), &mut p, now),
            Err(EncapError::SequenceExhausted { spi: SPI })
        );
        assert_eq!(out.last_sequence(), u32::MAX);
    }
    assert!(
        EncapError::SequenceExhausted { spi: SPI }
            .to_string()
            .contains("rekey")
    );
}

#[test]
fn skip_to_never_moves_back() {
    let now = Instant::now();
    let (mut out, _) = pair(LifetimeLimits::default(), now);
    out.skip_to(100);
    out.skip_to(5);
    assert_eq!(out.last_sequence(), 100);
    let (out, _) = pair(LifetimeLimits::default(), now);
    assert!(!out.needs_rekey(now));
    let mut out = out;
    out.skip_to(SEQUENCE_SOFT_LIMIT - 1);
    assert!(!out.needs_rekey(now));
    out.skip_to(SEQUENCE_SOFT_LIMIT);
    assert!(out.needs_rekey(now));
}

#[test]
fn byte_packet_and_age_limits() {
    let t0 = Instant::now();
    let limits = LifetimeLimits {
        soft_bytes: Some(1000),
        hard_bytes: Some(2000),
        soft_packets: Some(10),
        hard_packets: Some(20),
        soft_age: Some(Duration::from_secs(50)),
        hard_age: Some(Duration::from_secs(60)),
    };
    let mut l = Lifetime::new(limits, t0);
    assert!(!l.needs_rekey(t0) && !l.expired(t0));
    assert!(!l.needs_rekey(t0 + Duration::from_secs(49)));
    assert!(l.needs_rekey(t0 + Duration::from_secs(50)));
    assert!(!l.expired(t0 + Duration::from_secs(59)));
    assert!(l.expired(t0 + Duration::from_secs(60)));
    // a clock that goes back is not an age
    assert!(!l.needs_rekey(t0.checked_sub(Duration::from_secs(1)).unwrap_or(t0)));

    l.count(999);
    assert!(!l.needs_rekey(t0));
    l.count(1);
    assert!(l.needs_rekey(t0) && !l.expired(t0));
    l.count(1000);
    assert!(l.expired(t0));
    assert_eq!((l.bytes(), l.packets()), (2000, 3));

    let mut l = Lifetime::new(limits, t0);
    (0..10).for_each(|_| l.count(0));
    assert!(l.needs_rekey(t0) && !l.expired(t0));
    (0..10).for_each(|_| l.count(0));
    assert!(l.expired(t0));
    // a hard limit implies the soft decision
    let hard_only = LifetimeLimits {
        hard_packets: Some(1),
        ..LifetimeLimits::default()
    };
    let mut l = Lifetime::new(hard_only, t0);
    l.count(0);
    assert!(l.expired(t0) && l.needs_rekey(t0));
    // no limits: never
    let mut l = Lifetime::new(LifetimeLimits::default(), t0);
    l.count(usize::MAX);
    l.count(usize::MAX);
    assert!(!l.needs_rekey(t0 + Duration::from_secs(1 << 40)) && !l.expired(t0));
}

#[test]
fn expired_sas_refuse_packets_in_both_directions() {
    let t0 = Instant::now();
    let limits = LifetimeLimits {
        hard_bytes: Some(100),
        hard_age: Some(Duration::from_secs(10)),
        ..LifetimeLimits::default()
    };
    let (mut out, mut inb) = pair(limits, t0);
    let mut p = Vec::new();
    // 3 x 40 inner bytes: the third crosses the byte limit, the fourth is refused
    for _ in 0..3 {
        out.encapsulate(&ipv4(20, 1), &mut p, t0).expect("seal");
        inb.decapsulate(&mut p, t0).expect("open");
    }
    assert!(out.expired(t0) && inb.expired(t0));
    assert_eq!(
        out.encapsulate(&ipv4(20, 1), &mut p, t0),
        Err(EncapError::Expired { spi: SPI })
    );
    // an SA that aged out refuses even authentic packets
    let (mut out, mut inb) = pair(limits, t0);
    out.encapsulate(&ipv4(1, 1), &mut p, t0).expect("seal");
    let late = t0 + Duration::from_secs(10);
    assert_eq!(
        inb.decapsulate(&mut p, late),
        Err(DecapError::Expired { spi: SPI })
    );
    assert_eq!(inb.window().highest(), 0);
    assert_eq!(
        out.encapsulate(&ipv4(1, 1), &mut p, late),
        Err(EncapError::Expired { spi: SPI })
    );
}

#[test]
fn keys_and_spis_are_checked() {
    let now = Instant::now();
    for spi in [0, 1, 255] {
        assert_eq!(
            OutboundSa::new(spi, &key(), LifetimeLimits::default(), now).err(),
            Some(agent_esp::SaError::ReservedSpi { spi })
        );
    }
    assert!(OutboundSa::new(256, &key(), LifetimeLimits::default(), now).is_ok());
    assert_eq!(
        agent_esp::SaKey::from_keymat(&[0; 35]).err(),
        Some(agent_esp::SaError::KeymatLength { len: 35 })
    );
    let k = agent_esp::SaKey::from_keymat(&[[7u8; 32].as_slice(), &[9; 4]].concat()).expect("36");
    assert!(!format!("{k:?}").contains('7'));
}
