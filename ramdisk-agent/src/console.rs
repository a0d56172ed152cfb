//! The serial console: timestamped lines, the machine-readable markers the test harness waits
//! on, and the `tracing` subscriber that writes to the console too.
//!
//! Does IO (writes to stdout, which `/init` points at `/dev/console`). Every line is written
//! with one `write` under a lock, prefixed with the uptime like the kernel's log: `[   1.234] `.
//!
//! Markers, exactly (the QEMU end-to-end tests match on them):
//! ```text
//! AGENT-PHASE <phase> start
//! AGENT-PHASE <phase> ok <detail>
//! AGENT-PHASE <phase> fail attempt=<n> <error chain>
//! AGENT-READY server=<name> address=<ip>
//! AGENT-ENROLLED lease=<id> server=<name> serial=<hex> not_after_ms=<n>
//! AGENT-PROGRESS transfer image=<id> chunks=<verified>/<total>
//! AGENT-RESUME transfer image=<id> from_chunk=<n> resumes=<n> reason=<error chain>
//! AGENT-PROGRESS store image=<id> bytes=<done>/<total>
//! AGENT-GATE <step> ok
//! AGENT-GATE <step> refused <reason>
//! AGENT-GATE shred lease=<id> startup_key_destroyed=<bool>
//! AGENT-KEXEC image=<id> step=start cmdline_bytes=<n>
//! AGENT-WIPED lease=<id>|none
//! AGENT-POWEROFF <reason>
//! ```
//! `<phase>` is `AgentPhase::as_str()`. Details and error chains are flattened to one line.

use std::fmt;
use std::io::Write;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;

use agent_core::LogLevel;
use lm_api::AgentPhase;
use tracing_subscriber::fmt::MakeWriter;

use crate::sys;

static LOCK: Mutex<()> = Mutex::new(());

/// Replaces control characters (newlines included) by spaces: one event, one console line.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The console form of a line at uptime `up`: `[   1.234] msg\n`.
pub fn format_line(up: Duration, msg: &str) -> String {
    format!(
        "[{:>4}.{:03}] {}\n",
        up.as_secs(),
        up.subsec_millis(),
        one_line(msg)
    )
}

/// Writes one timestamped line.
pub fn line(msg: &str) {
    let text = format_line(sys::now(), msg);
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut out = std::io::stdout().lock();
    // A console that cannot be written to has nowhere to report that to.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// `AGENT-PHASE <phase> start`
pub fn phase_start(phase: AgentPhase) {
    line(&format!("AGENT-PHASE {} start", phase.as_str()));
}

/// `AGENT-PHASE <phase> ok <detail>`
pub fn phase_ok(phase: AgentPhase, detail: &str) {
    line(&format!("AGENT-PHASE {} ok {detail}", phase.as_str()));
}

/// `AGENT-PHASE <phase> fail attempt=<n> <error chain>`
pub fn phase_fail(phase: AgentPhase, attempt: u32, chain: &str) {
    line(&format!(
        "AGENT-PHASE {} fail attempt={attempt} {chain}",
        phase.as_str()
    ));
}

/// `AGENT-READY server=<name> address=<ip>`
pub fn ready(server: &str, address: Ipv4Addr) {
    line(&format!(
        "AGENT-READY server={} address={address}",
        server.replace(' ', "_")
    ));
}

/// `AGENT-ENROLLED lease=<id> server=<name> serial=<hex> not_after_ms=<n>`
pub fn enrolled(lease: &dyn fmt::Display, server: &str, serial: &str, not_after_ms: u64) {
    line(&format!(
        "AGENT-ENROLLED lease={lease} server={} serial={serial} not_after_ms={not_after_ms}",
        server.replace(' ', "_")
    ));
}

/// `AGENT-WIPED lease=<id>` (`lease=none` on a maintenance boot)
pub fn wiped(lease: Option<&dyn fmt::Display>) {
    match lease {
        Some(l) => line(&format!("AGENT-WIPED lease={l}")),
        None => line("AGENT-WIPED lease=none"),
    }
}

/// `AGENT-POWEROFF <reason>`
pub fn poweroff(reason: &dyn fmt::Display) {
    line(&format!("AGENT-POWEROFF {reason}"));
}

/// A `tracing` writer that collects one formatted event and prints it as console lines.
#[derive(Debug, Default)]
pub struct ConsoleWriter {
    buf: Vec<u8>,
}

impl Write for ConsoleWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ConsoleWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            line(l);
        }
    }
}

/// Makes a [`ConsoleWriter`] per event.
#[derive(Debug, Clone, Copy, Default)]
pub struct MakeConsoleWriter;

impl<'a> MakeWriter<'a> for MakeConsoleWriter {
    type Writer = ConsoleWriter;

    fn make_writer(&'a self) -> Self::Writer {
        ConsoleWriter::default()
    }
}

fn level_filter(level: LogLevel) -> tracing::level_filters::LevelFilter {
    use tracing::level_filters::LevelFilter;
    match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    }
}

/// Installs the console subscriber (once; later calls are ignored). The level comes from
/// `lm.log=`, which is only known after the command line is parsed, so the subscriber is set up
/// with a reloadable filter.
pub fn init_tracing() -> impl Fn(LogLevel) {
    use tracing_subscriber::prelude::*;
    let (filter, handle) =
        tracing_subscriber::reload::Layer::new(level_filter(LogLevel::default()));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(MakeConsoleWriter)
        .with_ansi(false)
        .with_target(false)
        .without_time();
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init();
    move |level| {
        let _ = handle.modify(|f| *f = level_filter(level));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_flattens_control_characters() {
        assert_eq!(one_line("a\nb\r\tc\u{1b}[0m"), "a b  c [0m");
    }

    #[test]
    fn lines_carry_the_uptime_like_the_kernel_log() {
        let up = Duration::from_millis(1234);
        assert_eq!(
            format_line(up, "AGENT-PHASE dhcp start"),
            "[   1.234] AGENT-PHASE dhcp start\n"
        );
        assert_eq!(
            format_line(Duration::from_secs(12345), "x\ny"),
            "[12345.000] x y\n"
        );
    }
}
