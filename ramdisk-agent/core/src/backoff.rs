//! Retry delays: exponential backoff with jitter for the agent's phases, and the DHCP client's
//! retransmission schedule (RFC 2131 section 4.1).
//!
//! Pure: the random value is an argument, never drawn here, so tests pin every delay.

use std::time::Duration;

/// Exponential backoff with "equal jitter": the n-th retry waits between half and all of
/// `min(cap, base * 2^(n-1))`, the exact point chosen by the caller's random value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub base: Duration,
    /// Largest delay (before jitter).
    pub cap: Duration,
}

impl Default for Backoff {
    /// 1 s, 2 s, 4 s ... up to 30 s: quick at first (a NIC still probing), gentle later (an LM
    /// being restarted), and never so slow that the bring-up deadline is wasted waiting.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The un-jittered delay before retry number `retry` (1 = the first retry).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let shift = retry.saturating_sub(1).min(31);
        let factor = 1u32 << shift;
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before retry number `retry`, jittered by `random` into `[ceiling/2, ceiling]`.
    pub fn delay(&self, retry: u32, random: u64) -> Duration {
        let ceiling = self.ceiling(retry);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_millis()).unwrap_or(u64::MAX);
        let extra = random.checked_rem(spread.saturating_add(1)).unwrap_or(0);
        half + Duration::from_millis(extra)
    }
}

/// First DHCP retransmission timeout (RFC 2131 4.1: "4 seconds ... for the first retransmission").
pub const DHCP_FIRST_TIMEOUT: Duration = Duration::from_secs(4);
/// Largest DHCP retransmission timeout (RFC 2131 4.1: "up to a maximum of 64 seconds").
pub const DHCP_MAX_TIMEOUT: Duration = Duration::from_secs(64);

/// Timeout after DHCP transmission number `sent` (1 = the first message): 4 s, 8 s, 16 s, 32 s,
/// 64 s, 64 s ..., each "randomized by the value of a uniform random number chosen from the
/// range -1 to +1" second (RFC 2131 4.1), here in milliseconds picked by `random`.
pub fn dhcp_retransmit_timeout(sent: u32, random: u64) -> Duration {
    let shift = sent.saturating_sub(1).min(4);
    let base = DHCP_FIRST_TIMEOUT
        .saturating_mul(1 << shift)
        .min(DHCP_MAX_TIMEOUT);
    // random % 2001 is in 0..=2000 ms, i.e. -1000..=+1000 ms around the base.
    let jitter = Duration::from_millis(random % 2001);
    (base + jitter).saturating_sub(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let b = Backoff::default();
        let secs: Vec<u64> = (1..=8).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(b.ceiling(0), Duration::from_secs(1));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn jitter_spans_half_to_full() {
        let b = Backoff::default();
        assert_eq!(b.delay(3, 0), Duration::from_secs(2));
        assert_eq!(b.delay(3, 2000), Duration::from_secs(4));
        assert_eq!(b.delay(3, 2001), Duration::from_secs(2));
        assert_eq!(b.delay(3, 500), Duration::from_millis(2500));
        let zero = Backoff {
            base: Duration::ZERO,
            cap: Duration::ZERO,
        };
        assert_eq!(zero.delay(5, u64::MAX), Duration::ZERO);
    }

    #[test]
    fn dhcp_schedule_follows_rfc2131() {
        let mid = 1000; // no jitter
        let secs: Vec<u64> = (1..=7)
            .map(|n| dhcp_retransmit_timeout(n, mid).as_secs())
            .collect();
        assert_eq!(secs, vec![4, 8, 16, 32, 64, 64, 64]);
        assert_eq!(dhcp_retransmit_timeout(1, 0), Duration::from_secs(3));
        assert_eq!(dhcp_retransmit_timeout(1, 2000), Duration::from_secs(5));
        assert_eq!(
            dhcp_retransmit_timeout(u32::MAX, u64::MAX),
            dhcp_retransmit_timeout(5, u64::MAX)
        );
    }

    proptest! {
        #[test]
        fn delays_stay_in_bounds(base_ms in 0u64..100_000, cap_ms in 0u64..1_000_000, retry: u32, random: u64) {
            let b = Backoff { base: Duration::from_millis(base_ms), cap: Duration::from_millis(cap_ms) };
            let d = b.delay(retry, random);
            prop_assert!(d <= b.ceiling(retry));
            prop_assert!(d >= b.ceiling(retry) / 2);
            prop_assert!(b.ceiling(retry) <= b.cap);
        }

        #[test]
        fn dhcp_timeouts_stay_in_bounds(sent: u32, random: u64) {
            let d = dhcp_retransmit_timeout(sent, random);
            prop_assert!(d >= Duration::from_secs(3) && d <= Duration::from_secs(65));
        }
    }
}
