//! When to send a request again and when to give up (RFC 7296 2.1), as a pure decision over
//! the time the caller passes in.

use std::time::{Duration, Instant};

/// Retransmission schedule: first wait `initial`, multiply by `factor_percent`/100 after each
/// try, never wait longer than `max`, give up after `tries` retransmissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetransmitPolicy {
    pub initial: Duration,
    pub factor_percent: u32,
    pub max: Duration,
    pub tries: u32,
}

impl Default for RetransmitPolicy {
    /// strongSwan's defaults (charon.retransmit_*): 4 s, x1.8, 5 tries (~165 s in all).
    fn default() -> Self {
        RetransmitPolicy {
            initial: Duration::from_secs(4),
            factor_percent: 180,
            max: Duration::from_secs(60),
            tries: 5,
        }
    }
}

/// What the timer says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing to do before this instant.
    WaitUntil(Instant),
    /// Send the same request again now (it has been counted).
    Resend,
    /// Every try is spent; the exchange failed.
    GiveUp { tries: u32 },
}

/// The timer of one outstanding request.
#[derive(Debug, Clone)]
pub struct Retransmit {
    policy: RetransmitPolicy,
    sent_at: Instant,
    retries: u32,
}

impl Retransmit {
    /// A request was (re)built and sent at `now`: start over.
    pub fn sent(policy: RetransmitPolicy, now: Instant) -> Retransmit {
        Retransmit {
            policy,
            sent_at: now,
            retries: 0,
        }
    }

    /// The wait after the `retries`-th retransmission.
    pub fn wait(&self) -> Duration {
        let mut d = self.policy.initial;
        for _ in 0..self.retries {
            d = d
                .checked_mul(self.policy.factor_percent)
                .map_or(self.policy.max, |x| x / 100)
                .min(self.policy.max);
        }
        d.min(self.policy.max)
    }

    pub fn poll(&mut self, now: Instant) -> Due {
        let deadline = self
            .sent_at
            .checked_add(self.wait())
            .unwrap_or(self.sent_at);
        if now < deadline {
            return Due::WaitUntil(deadline);
        }
        if self.retries >= self.policy.tries {
            return Due::GiveUp {
                tries: self.retries,
            };
        }
        self.retries += 1;
        self.sent_at = now;
        Due::Resend
    }
}
