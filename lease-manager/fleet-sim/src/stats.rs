//! Latency statistics. Pure.

use std::time::Duration;

/// Percentiles of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Nearest-rank percentiles of `samples`.
pub fn summarize(samples: &[Duration]) -> Summary {
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    };
    Summary {
        count: v.len(),
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        max_ms: v.last().copied().unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let r = summarize(&s);
        assert_eq!(
            (r.count, r.p50_ms, r.p99_ms, r.max_ms),
            (100, 50.0, 99.0, 100.0)
        );
        assert_eq!(summarize(&[]).count, 0);
        assert_eq!(summarize(&[Duration::from_millis(7)]).p99_ms, 7.0);
    }
}
