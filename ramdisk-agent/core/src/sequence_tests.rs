//! Tests of the bring-up sequence with a fake clock. No IO.

use super::*;
use AgentPhase::*;
use proptest::prelude::*;

/// A fake monotonic clock, in milliseconds.
struct FakeClock(Duration);

impl FakeClock {
    fn advance(&mut self, d: Duration) -> Duration {
        self.0 += d;
        self.0
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn happy_path_runs_every_phase_in_order() {
    let mut clock = FakeClock(secs(3));
    let mut seq = Sequence::new(Policy::with_deadline_secs(600), clock.0);
    assert_eq!(seq.first(), Next::Run(Init));
    let mut ran = vec![Init];
    loop {
        let now = clock.advance(secs(1));
        match seq.on_outcome(Outcome::Ok, now, 0) {
            Next::Run(Ready) if ran.last() == Some(&Ready) => break,
            Next::Run(p) => ran.push(p),
            other => panic!("{other:?}"),
        }
        assert_eq!(seq.attempt(), 1);
    }
    assert_eq!(ran, vec![Init, Modules, Link, Dhcp, Facts, Hello, Ready]);
    assert!(seq.is_up());
    assert_eq!(seq.remaining(clock.0), None);
}

#[test]
fn transient_failures_back_off_then_hit_the_deadline() {
    let mut clock = FakeClock(Duration::ZERO);
    let mut seq = Sequence::new(Policy::with_deadline_secs(120), clock.0);
    for _ in 0..3 {
        seq.on_outcome(Outcome::Ok, clock.advance(secs(1)), 0);
    }
    assert_eq!(seq.phase(), Dhcp);
    let mut delays = vec![];
    let reason = loop {
        // Each DHCP attempt itself takes 5 s.
        let now = clock.advance(secs(5));
        match seq.on_outcome(Outcome::Transient, now, u64::MAX) {
            Next::RetryAfter(Dhcp, d) => {
                delays.push(d.as_millis());
                clock.advance(d);
            }
            Next::PowerOff(r) => break r,
            other => panic!("{other:?}"),
        }
    };
    // Ceilings 1, 2, 4, 8, 16, 30, 30 ... s; jitter lands in [ceiling/2, ceiling].
    for (i, &d) in delays.iter().enumerate() {
        let ceiling = (1000u128 << i.min(5)).min(30_000);
        assert!(
            d >= ceiling / 2 && d <= ceiling,
            "retry {}: {d} ms of {ceiling}",
            i + 1
        );
    }
    assert!(delays.len() >= 6, "{delays:?}");
    match reason {
        PowerOffReason::Deadline {
            phase: Dhcp,
            attempts,
            deadline,
        } => {
            assert_eq!(deadline, secs(120));
            assert_eq!(attempts as usize, delays.len() + 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(clock.0 <= secs(120), "gave up at {:?}", clock.0);
    assert!(
        reason
            .to_string()
            .contains("deadline of 120 s passed in phase dhcp")
    );
}

#[test]
fn rejections_are_retried_a_few_times_only() {
    let mut clock = FakeClock(Duration::ZERO);
    let mut seq = Sequence::new(Policy::with_deadline_secs(600), clock.0);
    for _ in 0..5 {
        seq.on_outcome(Outcome::Ok, clock.advance(secs(1)), 0);
    }
    assert_eq!(seq.phase(), Hello);
    assert!(matches!(
        seq.on_outcome(Outcome::Rejected, clock.advance(secs(1)), 7),
        Next::RetryAfter(Hello, _)
    ));
    // A transient failure in between counts as an attempt too.
    assert!(matches!(
        seq.on_outcome(Outcome::Transient, clock.advance(secs(1)), 7),
        Next::RetryAfter(Hello, _)
    ));
    assert_eq!(
        seq.on_outcome(Outcome::Rejected, clock.advance(secs(1)), 7),
        Next::PowerOff(PowerOffReason::Rejected {
            phase: Hello,
            attempts: 3
        })
    );
}

#[test]
fn fatal_powers_off_at_once() {
    let mut seq = Sequence::new(Policy::with_deadline_secs(600), Duration::ZERO);
    let next = seq.on_outcome(Outcome::Fatal, secs(1), 0);
    assert_eq!(next, Next::PowerOff(PowerOffReason::Fatal { phase: Init }));
    if let Next::PowerOff(r) = next {
        assert_eq!(r.to_string(), "phase init failed and retrying cannot help");
    }
}

#[test]
fn success_after_the_deadline_still_powers_off_before_hello() {
    let mut seq = Sequence::new(Policy::with_deadline_secs(10), secs(100));
    assert_eq!(
        seq.on_outcome(Outcome::Ok, secs(105), 0),
        Next::Run(Modules)
    );
    assert_eq!(seq.remaining(secs(105)), Some(secs(5)));
    assert!(matches!(
        seq.on_outcome(Outcome::Ok, secs(110), 0),
        Next::PowerOff(PowerOffReason::Deadline {
            phase: Modules,
            attempts: 1,
            ..
        })
    ));
}

#[test]
fn the_deadline_from_the_command_line_counts_from_the_start() {
    let mut seq = Sequence::new(Policy::with_deadline_secs(600), secs(2));
    assert_eq!(seq.on_outcome(Outcome::Ok, secs(3), 0), Next::Run(Modules));
    seq.set_deadline(secs(30));
    assert_eq!(seq.remaining(secs(12)), Some(secs(20)));
    assert!(matches!(
        seq.on_outcome(Outcome::Ok, secs(32), 0),
        Next::PowerOff(_)
    ));
}

#[test]
fn an_accepted_hello_ends_the_bring_up_even_late() {
    let mut seq = Sequence::new(Policy::with_deadline_secs(10), Duration::ZERO);
    for n in 1..=5 {
        seq.on_outcome(Outcome::Ok, secs(n), 0);
    }
    assert_eq!(seq.phase(), Hello);
    assert_eq!(seq.on_outcome(Outcome::Ok, secs(50), 0), Next::Run(Ready));
    // Ready failures are retried forever, whatever the clock says, refusals included.
    for n in 0..100 {
        let outcome = if n % 2 == 0 {
            Outcome::Transient
        } else {
            Outcome::Rejected
        };
        assert!(matches!(
            seq.on_outcome(outcome, secs(1000 + n), n),
            Next::RetryAfter(Ready, _)
        ));
    }
}

proptest! {
    /// Whatever the outcomes and phase durations, nothing starts after the deadline before the
    /// agent is up, attempts only grow within a phase, and the sequence only moves forward.
    #[test]
    fn never_runs_past_the_deadline(
        steps in proptest::collection::vec((0u8..4, 0u64..40_000, any::<u64>()), 1..200),
        deadline in 1u32..900,
    ) {
        let mut clock = FakeClock(Duration::from_millis(1234));
        let start = clock.0;
        let mut seq = Sequence::new(Policy::with_deadline_secs(deadline), clock.0);
        let order = [Init, Modules, Link, Dhcp, Facts, Hello, Ready];
        let index = |p: AgentPhase| order.iter().position(|&q| q == p).unwrap_or(99);
        for (kind, took_ms, random) in steps {
            let outcome = [Outcome::Ok, Outcome::Transient, Outcome::Rejected, Outcome::Fatal][kind as usize];
            let before = (index(seq.phase()), seq.attempt());
            let now = clock.advance(Duration::from_millis(took_ms));
            match seq.on_outcome(outcome, now, random) {
                Next::PowerOff(_) => {
                    prop_assert!(before.0 < index(Ready) || outcome == Outcome::Fatal);
                    break;
                }
                Next::Run(p) => {
                    prop_assert!(index(p) >= before.0);
                    if !seq.is_up() {
                        prop_assert!(now < start + Duration::from_secs(u64::from(deadline)));
                    }
                }
                Next::RetryAfter(p, d) => {
                    prop_assert_eq!(index(p), before.0);
                    prop_assert_eq!(seq.attempt(), before.1 + 1);
                    let at = clock.advance(d);
                    if !seq.is_up() {
                        prop_assert!(at < start + Duration::from_secs(u64::from(deadline)));
                    }
                }
            }
        }
    }
}

#[test]
fn a_leased_boot_enrolls_between_hello_and_ready() {
    let mut clock = FakeClock(Duration::ZERO);
    let mut seq = Sequence::new(Policy::with_deadline_secs(600), clock.0);
    seq.set_enroll(true);
    let mut ran = vec![Init];
    while !seq.is_up() {
        match seq.on_outcome(Outcome::Ok, clock.advance(secs(1)), 0) {
            Next::Run(p) => ran.push(p),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        ran,
        vec![
            Init, Modules, Link, Dhcp, Facts, Hello, Enroll, Tunnel, Transfer, Start, Ready
        ]
    );
}

#[test]
fn enrollment_is_bring_up_fatal_ends_it_transient_retries_until_the_deadline() {
    let enrolling = |deadline| {
        let mut seq = Sequence::new(Policy::with_deadline_secs(deadline), Duration::ZERO);
        seq.set_enroll(true);
        for n in 1..=6 {
            seq.on_outcome(Outcome::Ok, secs(n), 0);
        }
        assert_eq!(seq.phase(), Enroll);
        assert!(!seq.is_up());
        seq
    };
    // A 400/403 refusal is fatal at once.
    assert_eq!(
        enrolling(600).on_outcome(Outcome::Fatal, secs(7), 0),
        Next::PowerOff(PowerOffReason::Fatal { phase: Enroll })
    );
    // Transient failures are retried with backoff, but not past the deadline.
    let mut seq = enrolling(20);
    assert!(matches!(
        seq.on_outcome(Outcome::Transient, secs(7), 0),
        Next::RetryAfter(Enroll, _)
    ));
    assert!(matches!(
        seq.on_outcome(Outcome::Transient, secs(20), 0),
        Next::PowerOff(PowerOffReason::Deadline { phase: Enroll, .. })
    ));
    // A hello accepted at the deadline does not start the enrollment, nor an enrollment the
    // tunnel; a transfer that ends late still ends the bring-up.
    let mut seq = Sequence::new(Policy::with_deadline_secs(10), Duration::ZERO);
    seq.set_enroll(true);
    for n in 1..=5 {
        seq.on_outcome(Outcome::Ok, secs(n), 0);
    }
    assert!(matches!(
        seq.on_outcome(Outcome::Ok, secs(50), 0),
        Next::PowerOff(PowerOffReason::Deadline { phase: Hello, .. })
    ));
    assert!(matches!(
        enrolling(10).on_outcome(Outcome::Ok, secs(50), 0),
        Next::PowerOff(PowerOffReason::Deadline { phase: Enroll, .. })
    ));
    let mut seq = enrolling(10);
    assert_eq!(seq.on_outcome(Outcome::Ok, secs(8), 0), Next::Run(Tunnel));
    assert_eq!(seq.on_outcome(Outcome::Ok, secs(9), 0), Next::Run(Transfer));
    assert!(!seq.is_up());
    assert_eq!(seq.on_outcome(Outcome::Ok, secs(9), 0), Next::Run(Start));
    assert!(!seq.is_up());
    assert_eq!(seq.on_outcome(Outcome::Ok, secs(50), 0), Next::Run(Ready));
    assert!(seq.is_up());
}
