//! Run as an ordinary process (not PID 1), `tenant-init` only reports on stdout and exits 0:
//! no mounts, no power-off, no endless loop.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn prints_the_two_lines_and_exits_zero() {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_tenant-init"))
        .output()
        .expect("run tenant-init");
    assert!(out.status.success(), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let text = String::from_utf8(out.stdout).expect("printable ASCII");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("TENANT-OS-UP lease="), "{text}");
    assert!(lines[0].contains(" kernel="), "{text}");
    assert!(lines[0].contains(" uptime_s="), "{text}");
    assert!(
        !lines[0].contains("uptime_s=?"),
        "/proc/uptime is readable here: {text}"
    );
    assert!(lines[1].starts_with("TENANT-OS-CMDLINE "), "{text}");
    assert!(text.is_ascii());
}
