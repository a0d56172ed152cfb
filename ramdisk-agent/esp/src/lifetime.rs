//! SA lifetimes (RFC 4301 4.4.2.1): byte and packet counters with soft limits (time to rekey)
//! and hard limits (the SA must go), by count and by age. Pure decisions: the caller passes
//! `now`. Bytes are the inner (plaintext) bytes the SA protected.

use std::time::{Duration, Instant};

/// Soft and hard limits; `None` means no limit of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifetimeLimits {
    pub soft_bytes: Option<u64>,
    pub hard_bytes: Option<u64>,
    pub soft_packets: Option<u64>,
    pub hard_packets: Option<u64>,
    pub soft_age: Option<Duration>,
    pub hard_age: Option<Duration>,
}

/// The counters of one SA since `created`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    limits: LifetimeLimits,
    created: Instant,
    bytes: u64,
    packets: u64,
}

fn reached(count: u64, limit: Option<u64>) -> bool {
    limit.is_some_and(|l| count >= l)
}

fn aged(created: Instant, now: Instant, limit: Option<Duration>) -> bool {
    limit.is_some_and(|l| now.saturating_duration_since(created) >= l)
}

impl Lifetime {
    pub fn new(limits: LifetimeLimits, created: Instant) -> Self {
        Self {
            limits,
            created,
            bytes: 0,
            packets: 0,
        }
    }

    /// Counts one packet of `bytes` inner bytes.
    pub fn count(&mut self, bytes: usize) {
        self.bytes = self.bytes.saturating_add(bytes as u64);
        self.packets = self.packets.saturating_add(1);
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn packets(&self) -> u64 {
        self.packets
    }

    pub fn limits(&self) -> &LifetimeLimits {
        &self.limits
    }

    /// A soft limit (or a hard one) is reached: negotiate the successor SA now.
    pub fn needs_rekey(&self, now: Instant) -> bool {
        reached(self.bytes, self.limits.soft_bytes)
            || reached(self.packets, self.limits.soft_packets)
            || aged(self.created, now, self.limits.soft_age)
            || self.expired(now)
    }

    /// A hard limit is reached: the SA must not protect another packet.
    pub fn expired(&self, now: Instant) -> bool {
        reached(self.bytes, self.limits.hard_bytes)
            || reached(self.packets, self.limits.hard_packets)
            || aged(self.created, now, self.limits.hard_age)
    }
}
