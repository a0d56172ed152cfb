//! The enroll burst's own cost: the wall time, and the CPU time of the LM and of this
//! simulator, from the moment the barrier lets every agent go until the last enroll answer.
//! Reads `/proc` (Linux); a figure it cannot read is `None`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One point in time with the CPU used so far.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: Instant,
    /// CLOCK_MONOTONIC, seconds (what `perf record -k CLOCK_MONOTONIC` stamps samples with).
    monotonic_s: f64,
    lm_cpu_ms: Option<u64>,
    sim_cpu_ms: Option<u64>,
}

/// What the burst cost.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Cost {
    pub wall_ms: f64,
    pub lm_cpu_ms: Option<u64>,
    pub sim_cpu_ms: Option<u64>,
    /// CLOCK_MONOTONIC at the start and the end, seconds.
    pub monotonic_s: (f64, f64),
}

/// Shared by the agents: the first one through the barrier marks the start, the last to get
/// its enroll answer (or error) marks the end.
#[derive(Debug)]
pub struct Burst {
    lm_pid: Option<u32>,
    agents: usize,
    answered: AtomicUsize,
    start: OnceLock<Mark>,
    end: OnceLock<Mark>,
}

impl Burst {
    pub fn new(lm_pid: Option<u32>, agents: usize) -> Self {
        Self {
            lm_pid,
            agents,
            answered: AtomicUsize::new(0),
            start: OnceLock::new(),
            end: OnceLock::new(),
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            at: Instant::now(),
            monotonic_s: monotonic_s(),
            lm_cpu_ms: self.lm_pid.and_then(|p| cpu_ms(&p.to_string())),
            sim_cpu_ms: cpu_ms("self"),
        }
    }

    /// Called by the barrier's leader when every agent is released.
    pub fn started(&self) {
        let _ = self.start.set(self.mark());
    }

    /// Called by each agent once its enroll request was answered or gave up.
    pub fn answered(&self) {
        if self.answered.fetch_add(1, Ordering::SeqCst) + 1 == self.agents {
            let _ = self.end.set(self.mark());
        }
    }

    /// The cost, once the burst is over.
    pub fn cost(&self) -> Option<Cost> {
        let (a, b) = (self.start.get()?, self.end.get()?);
        let diff = |x: Option<u64>, y: Option<u64>| Some(y?.saturating_sub(x?));
        Some(Cost {
            wall_ms: b.at.duration_since(a.at).as_secs_f64() * 1000.0,
            lm_cpu_ms: diff(a.lm_cpu_ms, b.lm_cpu_ms),
            sim_cpu_ms: diff(a.sim_cpu_ms, b.sim_cpu_ms),
            monotonic_s: (a.monotonic_s, b.monotonic_s),
        })
    }
}

fn monotonic_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the local struct it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32).as_secs_f64()
}

/// User + system CPU time of a process (`self` or a PID), in milliseconds.
pub fn cpu_ms(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = s.get(s.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * 1000 / hz)
}
