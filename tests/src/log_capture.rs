//! The in-memory log of a child process: lines split from its output (serial consoles end
//! lines with `\r\n` and paint with ANSI escapes, both removed), timestamped since the
//! process started, kept in a bounded buffer, and awaited by marker with a condvar.
//!
//! No IO here: [`crate::process`] feeds the bytes and writes the log file.

use std::collections::VecDeque;
use std::fmt;
use std::process::ExitStatus;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Lines kept in memory per process (the log file keeps all of them).
const MAX_LINES: usize = 50_000;
/// An unterminated line is cut here.
const MAX_LINE_BYTES: usize = 16 * 1024;

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (for QEMU: the serial console).
    Stdout,
    /// Standard error (for QEMU: its own warnings and errors).
    Stderr,
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Position in the process's output, from 0. A match in a line still being written carries
    /// the number the line will get.
    pub seq: u64,
    /// Time since the process was started.
    pub at: Duration,
    /// Where the line came from.
    pub stream: Stream,
    /// The text, without line ending, escape sequences or control characters.
    pub text: String,
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.stream {
            Stream::Stdout => '|',
            Stream::Stderr => '!',
        };
        write!(f, "{:9.3} {tag} {}", self.at.as_secs_f64(), self.text)
    }
}

/// Why a marker was not seen; callers branch on it (a VM that powered off vs one that hangs).
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The time ran out while the process was still running.
    #[error("{process}: {marker:?} not seen within {waited:?}; last lines:\n{tail}")]
    Timeout {
        process: String,
        marker: String,
        waited: Duration,
        tail: String,
    },
    /// The process exited and all its output was read without the marker.
    #[error("{process} exited ({status}) without printing {marker:?}; last lines:\n{tail}")]
    Exited {
        process: String,
        marker: String,
        status: ExitStatus,
        tail: String,
    },
}

/// Splits a byte stream into cleaned lines at `\n` or `\r`; empty lines are dropped.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds a chunk; returns the lines it completed.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in chunk {
            if b == b'\n' || b == b'\r' || self.partial.len() >= MAX_LINE_BYTES {
                let line = clean_line(&self.partial);
                self.partial.clear();
                if !line.is_empty() {
                    out.push(line);
                }
                if b == b'\n' || b == b'\r' {
                    continue;
                }
            }
            self.partial.push(b);
        }
        out
    }

    /// The cleaned text of the unterminated line so far.
    pub(crate) fn partial(&self) -> String {
        clean_line(&self.partial)
    }

    /// The last, unterminated line at end of stream.
    pub(crate) fn finish(&mut self) -> Option<String> {
        let line = clean_line(&std::mem::take(&mut self.partial));
        (!line.is_empty()).then_some(line)
    }
}

/// Lossy UTF-8 without ANSI/VT100 escape sequences or control characters (tabs kept).
pub(crate) fn clean_line(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next_if_eq(&'[').is_some() {
                // CSI: parameters and intermediates up to a final byte in 0x40..=0x7e.
                for p in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&p) {
                        break;
                    }
                }
            } else {
                chars.next(); // two-byte sequence such as ESC c
            }
        } else if c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out.trim_end().to_owned()
}

#[derive(Debug)]
struct State {
    lines: VecDeque<LogLine>,
    next_seq: u64,
    partial: [Option<(Duration, String)>; 2],
    open_streams: u8,
    exit: Option<ExitStatus>,
}

/// The shared log of one process; also the lock that orders signalling against reaping.
#[derive(Debug)]
pub(crate) struct LogBook {
    name: String,
    started: Instant,
    state: Mutex<State>,
    changed: Condvar,
}

fn stream_index(s: Stream) -> usize {
    match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

impl LogBook {
    pub(crate) fn new(name: &str, started: Instant, open_streams: u8) -> Self {
        let state = State {
            lines: VecDeque::new(),
            next_seq: 0,
            partial: [None, None],
            open_streams,
            exit: None,
        };
        Self {
            name: name.to_owned(),
            started,
            state: Mutex::new(state),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a complete line, stamped now; returns it.
    pub(crate) fn push(&self, stream: Stream, text: String) -> LogLine {
        let at = self.started.elapsed();
        let mut st = self.lock();
        let line = LogLine {
            seq: st.next_seq,
            at,
            stream,
            text,
        };
        st.next_seq += 1;
        st.partial[stream_index(stream)] = None;
        if st.lines.len() >= MAX_LINES {
            st.lines.pop_front();
        }
        st.lines.push_back(line.clone());
        self.changed.notify_all();
        line
    }

    /// Records the unterminated tail of `stream` so markers in prompts are seen at once.
    pub(crate) fn set_partial(&self, stream: Stream, text: String) {
        let at = self.started.elapsed();
        let mut st = self.lock();
        st.partial[stream_index(stream)] = (!text.is_empty()).then_some((at, text));
        self.changed.notify_all();
    }

    pub(crate) fn stream_closed(&self) {
        let mut st = self.lock();
        st.open_streams = st.open_streams.saturating_sub(1);
        self.changed.notify_all();
    }

    /// Runs `signal` under the lock only if the process has not been reaped yet.
    pub(crate) fn if_unreaped(&self, signal: impl FnOnce()) -> bool {
        let st = self.lock();
        if st.exit.is_none() {
            signal();
        }
        st.exit.is_none()
    }

    /// Runs `reap` under the lock and records the status it returns.
    pub(crate) fn record_exit(&self, reap: impl FnOnce() -> ExitStatus) {
        let mut st = self.lock();
        st.exit = Some(reap());
        self.changed.notify_all();
    }

    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        self.lock().exit
    }

    /// Waits up to `timeout` for the exit status.
    pub(crate) fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let st = self.lock();
        let (st, _) = self
            .changed
            .wait_timeout_while(st, timeout, |s| s.exit.is_none())
            .unwrap_or_else(|p| p.into_inner());
        st.exit
    }

    /// Waits up to `timeout` until both output streams reached end of file (all output read
    /// and logged); false if one is still open (a grandchild may hold it).
    pub(crate) fn wait_streams_closed(&self, timeout: Duration) -> bool {
        let st = self.lock();
        let (st, _) = self
            .changed
            .wait_timeout_while(st, timeout, |s| s.open_streams > 0)
            .unwrap_or_else(|p| p.into_inner());
        st.open_streams == 0
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// The kept lines with `seq >= from`.
    pub(crate) fn lines_from(&self, from: u64) -> Vec<LogLine> {
        self.lock()
            .lines
            .iter()
            .filter(|l| l.seq >= from)
            .cloned()
            .collect()
    }

    /// The last `n` lines, one per row, for failure reports.
    pub(crate) fn tail(&self, n: usize) -> String {
        let st = self.lock();
        let skip = st.lines.len().saturating_sub(n);
        let mut out = String::new();
        for l in st.lines.iter().skip(skip) {
            out.push_str(&format!("[{}] {l}\n", self.name));
        }
        for (i, p) in st.partial.iter().enumerate() {
            if let Some((at, text)) = p {
                let tag = if i == 0 { '|' } else { '!' };
                out.push_str(&format!(
                    "[{}] {:9.3} {tag} {text}\n",
                    self.name,
                    at.as_secs_f64()
                ));
            }
        }
        out
    }

    /// Waits until a line with `seq >= from` contains `marker` (searching kept lines first).
    pub(crate) fn wait_for(
        &self,
        from: u64,
        marker: &str,
        timeout: Duration,
    ) -> Result<LogLine, WaitError> {
        let start = Instant::now();
        let mut scanned = from;
        let mut st = self.lock();
        loop {
            if let Some(hit) = st
                .lines
                .iter()
                .find(|l| l.seq >= scanned && l.text.contains(marker))
            {
                return Ok(hit.clone());
            }
            scanned = scanned.max(st.next_seq);
            for (i, p) in st.partial.iter().enumerate() {
                if let Some((at, text)) = p.as_ref().filter(|(_, t)| t.contains(marker)) {
                    let stream = if i == 0 {
                        Stream::Stdout
                    } else {
                        Stream::Stderr
                    };
                    let (seq, at, text) = (st.next_seq, *at, text.clone());
                    return Ok(LogLine {
                        seq,
                        at,
                        stream,
                        text,
                    });
                }
            }
            if let (Some(status), 0) = (st.exit, st.open_streams) {
                drop(st);
                let tail = self.tail(20);
                let (process, marker) = (self.name.clone(), marker.to_owned());
                return Err(WaitError::Exited {
                    process,
                    marker,
                    status,
                    tail,
                });
            }
            let waited = start.elapsed();
            let Some(left) = timeout.checked_sub(waited).filter(|d| !d.is_zero()) else {
                drop(st);
                let tail = self.tail(20);
                let (process, marker) = (self.name.clone(), marker.to_owned());
                return Err(WaitError::Timeout {
                    process,
                    marker,
                    waited,
                    tail,
                });
            };
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
#[path = "log_capture_tests.rs"]
mod tests;
