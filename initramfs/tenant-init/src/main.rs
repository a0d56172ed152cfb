//! `tenant-init`: the `/init` of the tenant test OS, the image a leased server's agent kexecs
//! into in the lab and the demo. As PID 1 it mounts devtmpfs on /dev, proc on /proc and sysfs
//! on /sys, opens /dev/console and prints
//!
//! ```text
//! TENANT-OS-UP lease=<tenant.lease or none> kernel=<uname -r> uptime_s=<seconds since boot>
//! TENANT-OS-CMDLINE <the kernel command line>
//! ```
//!
//! then powers off if `tenant.poweroff` is on the command line, else stays up reaping children
//! as an OS would (PID 1 must never exit: the kernel would panic). Run as any other process it
//! only prints the lines to stdout and exits 0.
//!
//! Pure cores: [`cmdline`] (the kernel's splitting rules) and [`report`] (the lines). IO: [`sys`]
//! and this file.

mod cmdline;
mod report;
mod sys;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::time::Duration;

/// Largest `/proc/cmdline` read (the kernel allows 2048 bytes on x86).
const MAX_CMDLINE_READ: u64 = 64 << 10;
/// How long PID 1 sleeps between looks for exited children when it has none.
const IDLE: Duration = Duration::from_secs(60);

/// Read at most `limit` bytes of a file; empty if it cannot be read.
fn read_limited(path: &str, limit: u64) -> Vec<u8> {
    let mut out = Vec::new();
    if let Ok(file) = File::open(path) {
        let _ = file.take(limit).read_to_end(&mut out);
    }
    out
}

/// The report for this machine: `cmdline` with the release from uname and /proc/uptime.
fn current_report(cmdline: &[u8]) -> String {
    let uptime = read_limited("/proc/uptime", 256);
    report::report(cmdline, &sys::kernel_release(), &uptime)
}

/// Where PID 1 writes: /dev/console, else the stdout the kernel gave it.
fn console() -> Box<dyn Write> {
    match OpenOptions::new().write(true).open("/dev/console") {
        Ok(file) => Box::new(file),
        Err(_) => Box::new(io::stdout()),
    }
}

fn say(out: &mut dyn Write, text: &str) {
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn run_as_init() -> ! {
    let mut failures = Vec::new();
    for (source, target, fstype) in [
        ("devtmpfs", "/dev", "devtmpfs"),
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
    ] {
        if let Err(err) = sys::mount(source, target, fstype) {
            failures.push(format!(
                "TENANT-OS-WARN mount {fstype} on {target}: {err}\n"
            ));
        }
    }
    let mut out = console();
    for line in &failures {
        say(&mut *out, line);
    }
    let line = read_limited("/proc/cmdline", MAX_CMDLINE_READ);
    say(&mut *out, &current_report(&line));
    if cmdline::tenant_args(&line).poweroff {
        say(&mut *out, "TENANT-OS-POWEROFF\n");
        let err = sys::sync_and_power_off();
        say(
            &mut *out,
            &format!("TENANT-OS-WARN power-off refused: {err}; staying up\n"),
        );
    }
    sys::reap_forever(IDLE)
}

fn main() {
    if sys::pid() == 1 {
        run_as_init();
    }
    let line = read_limited("/proc/cmdline", MAX_CMDLINE_READ);
    say(&mut io::stdout(), &current_report(&line));
}
