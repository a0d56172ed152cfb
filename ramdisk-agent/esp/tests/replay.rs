//! The anti-replay window (RFC 4303 3.4.3): the bitmap against a naive model, and the inbound
//! SA's use of it (checked before, updated after the integrity check).

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use agent_esp::{DecapError, LifetimeLimits, ReplayCheck, ReplayWindow, WINDOW};
use common::{ipv4, pair};
use proptest::prelude::*;

/// What RFC 4303 appendix A says, without a bitmap.
#[derive(Default)]
struct Model {
    seen: BTreeSet<u32>,
}

impl Model {
    fn highest(&self) -> u32 {
        self.seen.last().copied().unwrap_or(0)
    }
    fn check(&self, seq: u32) -> Result<(), ReplayCheck> {
        let h = self.highest();
        if seq == 0 {
            Err(ReplayCheck::Zero)
        } else if seq > h {
            Ok(())
        } else if h - seq >= WINDOW {
            Err(ReplayCheck::TooOld { highest: h })
        } else if self.seen.contains(&seq) {
            Err(ReplayCheck::Duplicate)
        } else {
            Ok(())
        }
    }
}

proptest! {
    #[test]
    fn the_bitmap_agrees_with_the_model(steps in prop::collection::vec((0u32..3000, any::<bool>()), 1..400)) {
        let mut w = ReplayWindow::new();
        let mut m = Model::default();
        for (seq, accept) in steps {
            prop_assert_eq!(w.check(seq), m.check(seq), "seq {}", seq);
            if accept && m.check(seq).is_ok() {
                w.accept(seq);
                m.seen.insert(seq);
            }
            prop_assert_eq!(w.highest(), m.highest());
        }
    }

    #[test]
    fn big_jumps_agree_with_the_model(steps in prop::collection::vec(0u32..200_000, 1..100)) {
        let mut w = ReplayWindow::new();
        let mut m = Model::default();
        for seq in steps {
            prop_assert_eq!(w.check(seq), m.check(seq));
            if m.check(seq).is_ok() {
                w.accept(seq);
                m.seen.insert(seq);
            }
        }
    }
}

#[test]
fn window_edges() {
    let mut w = ReplayWindow::new();
    assert_eq!(w.check(0), Err(ReplayCheck::Zero));
    w.accept(5000);
    assert_eq!(w.check(5000), Err(ReplayCheck::Duplicate));
    assert_eq!(
        w.check(5000 - WINDOW + 1),
        Ok(()),
        "the oldest number inside"
    );
    assert_eq!(
        w.check(5000 - WINDOW),
        Err(ReplayCheck::TooOld { highest: 5000 })
    );
    w.accept(5000 - WINDOW + 1);
    assert_eq!(w.check(5000 - WINDOW + 1), Err(ReplayCheck::Duplicate));
    w.accept(5001); // the oldest slides out
    assert!(matches!(
        w.check(5000 - WINDOW + 1),
        Err(ReplayCheck::TooOld { .. })
    ));
    w.accept(u32::MAX);
    assert_eq!(w.check(u32::MAX), Err(ReplayCheck::Duplicate));
    assert_eq!(
        w.check(5001),
        Err(ReplayCheck::TooOld { highest: u32::MAX })
    );
}

/// `n` sealed packets, in sending order (sequence numbers 1..=n).
fn sealed(n: usize) -> (agent_esp::InboundSa, Vec<Vec<u8>>) {
    let now = Instant::now();
    let (mut out, inb) = pair(LifetimeLimits::default(), now);
    let pkts = (0..n)
        .map(|i| {
            let mut p = Vec::new();
            out.encapsulate(&ipv4(i % 50, i as u8), &mut p, now)
                .expect("seal");
            p
        })
        .collect();
    (inb, pkts)
}

#[test]
fn duplicates_are_refused_and_out_of_order_packets_accepted_once() {
    let now = Instant::now();
    let (mut inb, pkts) = sealed(40);
    let order = [1usize, 5, 3, 2, 4, 10, 7, 6, 9, 8, 0];
    for &i in &order {
        assert!(
            inb.decapsulate(&mut pkts[i].clone(), now).is_ok(),
            "seq {}",
            i + 1
        );
        assert_eq!(
            inb.decapsulate(&mut pkts[i].clone(), now),
            Err(DecapError::Replayed {
                spi: common::SPI,
                seq: i as u32 + 1
            })
        );
    }
    assert_eq!(inb.window().highest(), 11);
    for &i in &order {
        assert!(matches!(
            inb.decapsulate(&mut pkts[i].clone(), now),
            Err(DecapError::Replayed { .. })
        ));
    }
}

#[test]
fn the_window_moves_right_and_old_packets_fall_out() {
    let now = Instant::now();
    let (mut inb, pkts) = sealed(WINDOW as usize + 10);
    // skip the first ten, take the rest in order: the window's right edge follows
    for p in &pkts[10..] {
        inb.decapsulate(&mut p.clone(), now).expect("in order");
    }
    assert_eq!(inb.window().highest(), WINDOW + 10);
    // 1..=10 were never seen; 1..=10 are left of [11, 1034]
    for (i, p) in pkts[..10].iter().enumerate() {
        assert_eq!(
            inb.decapsulate(&mut p.clone(), now),
            Err(DecapError::TooOld {
                spi: common::SPI,
                seq: i as u32 + 1,
                highest: WINDOW + 10
            })
        );
    }
}

#[test]
fn a_refused_forgery_does_not_move_the_window() {
    let now = Instant::now();
    let (mut inb, pkts) = sealed(3);
    inb.decapsulate(&mut pkts[0].clone(), now).expect("first");
    // a forged packet claiming sequence number 3 (its ICV is for 2): refused, window unchanged
    let mut forged = pkts[1].clone();
    forged[7] = 3;
    assert!(matches!(
        inb.decapsulate(&mut forged, now),
        Err(DecapError::Integrity { seq: 3, .. })
    ));
    assert_eq!(inb.window().highest(), 1);
    // the real 3 and 2 still get in, once
    inb.decapsulate(&mut pkts[2].clone(), now).expect("3");
    inb.decapsulate(&mut pkts[1].clone(), now).expect("2");
    assert_eq!(inb.window().highest(), 3);
}
