//! Measuring: wall-clock and thread CPU time, `openssl speed`, /proc/self/status, medians.
//! The parsers are pure; the rest reads clocks, runs openssl or reads /proc.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sealed_image::Aead;

use super::{OPENSSL_SECS, Rate};

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Wall-clock and CPU seconds of one measurement.
#[derive(Debug, Clone, Copy)]
pub struct Took {
    pub wall: f64,
    pub cpu: f64,
}

impl Took {
    pub fn rate(self, bytes: u64) -> Rate {
        Rate {
            wall_mbs: mbs(bytes, self.wall),
            cpu_mbs: mbs(bytes, self.cpu),
        }
    }
}

pub struct Stopwatch {
    wall: Instant,
    cpu: f64,
}

impl Stopwatch {
    pub fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: thread_cpu_secs(),
        }
    }

    pub fn stop(self) -> Took {
        Took {
            wall: self.wall.elapsed().as_secs_f64(),
            cpu: thread_cpu_secs() - self.cpu,
        }
    }
}

/// This thread's CPU time (user + system), seconds.
fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// `openssl speed [-decrypt] -evp <aead> -bytes 65536 -seconds 3`, in MB/s.
pub fn openssl_speed(aead: Aead, decrypt: bool) -> Result<f64> {
    let secs = OPENSSL_SECS.to_string();
    let mut args = vec!["speed"];
    if decrypt {
        args.push("-decrypt");
    }
    args.extend(["-evp", aead.name(), "-bytes", "65536", "-seconds", &secs]);
    let out = command_text("openssl", &args)?;
    parse_openssl_speed(&out, aead.name()).with_context(|| {
        format!(
            "no {} figure in the output of openssl {}:\n{out}",
            aead.name(),
            args.join(" ")
        )
    })
}

/// The figure of `openssl speed -bytes N` for `alg` (its last line naming it, in 1000s of
/// bytes per second with a `k` suffix), as MB/s. Pure.
pub fn parse_openssl_speed(out: &str, alg: &str) -> Option<f64> {
    out.lines()
        .rev()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            if !name.eq_ignore_ascii_case(alg) {
                return None;
            }
            let v = words.last()?.strip_suffix('k')?.parse::<f64>().ok()?;
            Some(v * 1000.0 / 1e6)
        })
        .next()
}

/// A `kB` field of /proc/self/status, in KiB.
pub fn proc_status_kib(field: &str) -> Result<u64> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    parse_status_kib(&s, field).with_context(|| format!("no {field} in /proc/self/status"))
}

/// `VmHWM:   1234 kB` -> 1234. Pure.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

pub fn command_text(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd} (install it: apt-get install {cmd})"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn mbs(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 / secs / 1e6
    } else {
        0.0
    }
}

/// The median of some figures (0 for none).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openssl_speed_output() {
        let out = "The 'numbers' are in 1000s of bytes per second processed.\ntype          65536 bytes\nAES-256-GCM    2669069.45k\n";
        assert_eq!(parse_openssl_speed(out, "aes-256-gcm"), Some(2669.06945));
        let out = "type 65536 bytes\nChaCha20-Poly1305   783220.74k\n";
        assert_eq!(
            parse_openssl_speed(out, "chacha20-poly1305"),
            Some(783.22074)
        );
        assert_eq!(parse_openssl_speed(out, "aes-256-gcm"), None);
        assert_eq!(parse_openssl_speed("AES-256-GCM 12", "aes-256-gcm"), None);
    }

    #[test]
    fn parses_proc_status() {
        let s = "Name:\tlab\nVmHWM:\t   13584 kB\nVmRSS:\t   12000 kB\n";
        assert_eq!(parse_status_kib(s, "VmHWM"), Some(13584));
        assert_eq!(parse_status_kib(s, "VmRSS"), Some(12000));
        assert_eq!(parse_status_kib(s, "VmSwap"), None);
    }
}
