//! Time as an argument: the shell asks a [`Clock`] for the monotonic time agent-ike's timers
//! use and the wall time certificates are checked at, so a caller (or a test) decides both.

use std::time::{Instant, SystemTime};

pub trait Clock {
    /// Monotonic time for retransmission timers and SA lifetimes.
    fn now(&self) -> Instant;
    /// Wall-clock time for certificate validity.
    fn wall(&self) -> SystemTime;
}

/// The system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}
