//! The child-process guard of the lab: [`Process::spawn`] starts a command (optionally inside a
//! network namespace via `ip netns exec`, which execs, so the PID is the program's own) in its
//! own process group, captures stdout and stderr line by line into a log file and memory with
//! timestamps since start, lets callers await markers, and kills the group on drop (SIGTERM,
//! then SIGKILL after a grace period).
//!
//! Children are forked from one long-lived thread and get SIGKILL if it dies (PR_SET_PDEATHSIG),
//! so a test process killed outright does not leave QEMUs behind.
//!
//! Does IO.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use std::os::unix::process::CommandExt;

use crate::log_capture::{LineSplitter, LogBook, LogLine, Stream, WaitError};
use crate::sys;

/// Time between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(3);

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Forks from one thread that lives as long as the process, so PR_SET_PDEATHSIG fires only
/// when the whole test process dies, not when some short-lived caller thread ends.
fn spawn_via_anchor_thread(cmd: Command) -> std::io::Result<Child> {
    static ANCHOR: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let tx = ANCHOR.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        let spawned = std::thread::Builder::new()
            .name("lab-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the spawner thread: {e}");
        }
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    tx.lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| std::io::Error::other("spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("spawner thread is gone"))?
}

/// A running (or exited) child process with captured output; killed on drop.
#[derive(Debug)]
pub struct Process {
    name: String,
    pid: u32,
    started: Instant,
    log_path: Option<PathBuf>,
    book: Arc<LogBook>,
    watcher: Mutex<Option<JoinHandle<()>>>,
}

impl Process {
    /// Spawns `cmd` (program, arguments, environment changes and working directory are taken
    /// from it; `env_clear` is not) with stdin from /dev/null, inside namespace `netns` if
    /// given, logging to `log_file` if given (parent folders are created, the file truncated).
    pub fn spawn(
        name: &str,
        cmd: &Command,
        netns: Option<&str>,
        log_file: Option<&Path>,
    ) -> Result<Process> {
        let mut c = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(cmd.get_program());
                c
            }
            None => Command::new(cmd.get_program()),
        };
        c.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            c.current_dir(dir);
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: the hook only makes async-signal-safe calls (prctl, sigmask, signal).
        unsafe { c.pre_exec(sys::prepare_child) };
        let cmdline = format!("{c:?}");

        let mut file = match log_file {
            Some(p) => {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
                let mut f =
                    File::create(p).with_context(|| format!("cannot create {}", p.display()))?;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                writeln!(
                    f,
                    "# {name}: {cmdline}\n# started at unix time {:.3}",
                    now.as_secs_f64()
                )?;
                Some(f)
            }
            None => None,
        };
        let started = Instant::now();
        let mut child = spawn_via_anchor_thread(c)
            .with_context(|| format!("{name}: cannot spawn {cmdline}"))?;
        let pid = child.id();
        tracing::info!(process = name, pid, "started: {cmdline}");
        let book = Arc::new(LogBook::new(name, started, 2));
        let file = file.take().map(|f| Arc::new(Mutex::new(f)));
        let proc = Process {
            name: name.to_owned(),
            pid,
            started,
            log_path: log_file.map(Path::to_path_buf),
            book: book.clone(),
            watcher: Mutex::new(None),
        };
        // From here on, dropping `proc` kills the child.
        let out = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        let err = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        drop(child); // std does not reap or kill on drop; the watcher reaps.
        for (stream, reader) in [(Stream::Stdout, out), (Stream::Stderr, err)] {
            let reader = reader.context("stdio pipe missing")?;
            let (book, file) = (book.clone(), file.clone());
            std::thread::Builder::new()
                .name(format!("log-{name}"))
                .spawn(move || pump(reader, stream, &book, file.as_deref()))
                .context("cannot spawn a log thread")?;
        }
        let watcher = std::thread::Builder::new()
            .name(format!("wait-{name}"))
            .spawn({
                let book = book.clone();
                let name = name.to_owned();
                move || watch_exit(pid, &name, &book)
            })
            .context("cannot spawn a wait thread")?;
        *proc.watcher.lock().unwrap_or_else(|p| p.into_inner()) = Some(watcher);
        Ok(proc)
    }

    /// The name given at spawn (used in logs and dumps).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's PID (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// When it was spawned; log timestamps count from here.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The log file, if one was asked for.
    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.as_deref()
    }

    /// Waits until any line so far or to come contains `marker`; returns that line.
    pub fn wait_for(&self, marker: &str, timeout: Duration) -> Result<LogLine, WaitError> {
        self.book.wait_for(0, marker, timeout)
    }

    /// Like [`Process::wait_for`], but only lines with `seq >= from` count (take `from` from
    /// [`Process::next_seq`] before triggering what should print the marker).
    pub fn wait_for_from(
        &self,
        from: u64,
        marker: &str,
        timeout: Duration,
    ) -> Result<LogLine, WaitError> {
        self.book.wait_for(from, marker, timeout)
    }

    /// The `seq` the next complete line will get.
    pub fn next_seq(&self) -> u64 {
        self.book.next_seq()
    }

    /// The lines kept in memory (the last 50 000) with `seq >= from`.
    pub fn lines_from(&self, from: u64) -> Vec<LogLine> {
        self.book.lines_from(from)
    }

    /// True until the child has exited and been reaped.
    pub fn is_running(&self) -> bool {
        self.book.exit_status().is_none()
    }

    /// The exit status once it exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.book.exit_status()
    }

    /// Waits up to `timeout` for the child to exit by itself.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        self.book.wait_exit(timeout)
    }

    /// The last `n` lines, prefixed with the process name, for failure reports.
    pub fn dump(&self, n: usize) -> String {
        let file = self
            .log_path
            .as_ref()
            .map(|p| format!(" (full log: {})", p.display()));
        format!(
            "=== {} (pid {}, {}){} ===\n{}",
            self.name,
            self.pid,
            match self.exit_status() {
                Some(s) => format!("exited: {s}"),
                None => "running".into(),
            },
            file.unwrap_or_default(),
            self.book.tail(n)
        )
    }

    /// Stops the child and its process group: SIGTERM, SIGKILL after 3 s; returns once it has
    /// been reaped (or after 10 more seconds, logged) and its output is logged (up to 2 s more
    /// if a grandchild keeps the pipes open). Harmless if it already exited.
    pub fn terminate(&self) {
        let book = &self.book;
        if book.if_unreaped(|| sys::kill_group(self.pid, libc::SIGTERM)) {
            tracing::debug!(process = %self.name, pid = self.pid, "SIGTERM");
            if book.wait_exit(GRACE).is_none()
                && book.if_unreaped(|| sys::kill_group(self.pid, libc::SIGKILL))
            {
                tracing::warn!(process = %self.name, pid = self.pid, "SIGKILL after {GRACE:?}");
                if book.wait_exit(Duration::from_secs(10)).is_none() {
                    tracing::error!(process = %self.name, pid = self.pid, "did not die");
                    return;
                }
            }
        }
        let watcher = self
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(w) = watcher {
            let _ = w.join();
        }
        // The last output (an unterminated line, QEMU's "terminating on signal") reaches the
        // buffer and the log file before we return.
        if !book.wait_streams_closed(Duration::from_secs(2)) {
            tracing::debug!(process = %self.name, "output still open after exit (a grandchild?)");
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn pump(
    mut reader: Box<dyn Read + Send>,
    stream: Stream,
    book: &LogBook,
    file: Option<&Mutex<File>>,
) {
    let mut split = LineSplitter::default();
    let mut buf = [0u8; 8192];
    let write = |line: &LogLine| {
        if let Some(f) = file {
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(f, "{line}");
        }
    };
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                for text in split.feed(&buf[..n]) {
                    write(&book.push(stream, text));
                }
                book.set_partial(stream, split.partial());
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    if let Some(text) = split.finish() {
        write(&book.push(stream, text));
    }
    book.stream_closed();
}

fn watch_exit(pid: u32, name: &str, book: &LogBook) {
    if let Err(e) = sys::wait_exit_nowait(pid) {
        tracing::error!(process = name, pid, "waitid failed: {e}");
        return;
    }
    book.record_exit(|| match sys::reap(pid) {
        Ok(status) => status,
        Err(e) => {
            tracing::error!(process = name, pid, "waitpid failed: {e}");
            std::os::unix::process::ExitStatusExt::from_raw(-1)
        }
    });
    tracing::info!(process = name, pid, status = ?book.exit_status(), "exited");
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
