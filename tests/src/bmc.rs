//! The lab's virtual BMC: what a server's baseboard management controller is to the Lease
//! Manager's `[power] cycle_command`. A Unix socket in the lab's log folder; each connection
//! sends one line `cycle <mac>` and gets `ok` or `error <why>` back. `cycle` pulls the VM's
//! plug and powers it on again (a new boot; its disk and TPM state stay). The client is the
//! `lab-bmc` binary. IO (a listener thread, stopped when dropped).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::MacAddr;

/// Longest request line.
const MAX_LINE: usize = 128;

/// Parses a request line: the MAC to cycle.
pub fn parse_request(line: &str) -> Result<MacAddr, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.len() > MAX_LINE {
        return Err(format!("request longer than {MAX_LINE} bytes"));
    }
    match line.split_once(' ') {
        Some(("cycle", mac)) => mac.parse().map_err(|e| format!("bad MAC {mac:?}: {e}")),
        _ => Err(format!("unknown request {line:?}: expected `cycle <mac>`")),
    }
}

/// A running virtual BMC.
#[derive(Debug)]
pub struct Bmc {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bmc {
    /// Listens on `path`; `cycle(mac)` does the power cycle.
    pub fn start(
        path: &Path,
        cycle: impl Fn(MacAddr) -> Result<()> + Send + 'static,
    ) -> Result<Bmc> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)
            .with_context(|| format!("cannot listen on {}", path.display()))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("lab-bmc".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => serve(conn, &cycle),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "lab BMC: accept failed");
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    }
                }
            })?;
        Ok(Bmc {
            path: path.to_owned(),
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn serve(conn: UnixStream, cycle: &dyn Fn(MacAddr) -> Result<()>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let mut reader = BufReader::new(conn.take_limit());
    let answer = match reader.read_line(&mut line) {
        Ok(_) => match parse_request(&line) {
            Ok(mac) => match cycle(mac) {
                Ok(()) => {
                    tracing::info!(%mac, "lab BMC: power-cycled");
                    "ok".to_string()
                }
                Err(e) => format!("error {e:#}"),
            },
            Err(e) => format!("error {e}"),
        },
        Err(e) => format!("error reading the request: {e}"),
    };
    let mut conn = reader.into_inner().into_inner();
    let _ = writeln!(conn, "{}", answer.replace('\n', " "));
}

trait TakeLimit {
    fn take_limit(self) -> std::io::Take<UnixStream>;
}

impl TakeLimit for UnixStream {
    fn take_limit(self) -> std::io::Take<UnixStream> {
        std::io::Read::take(self, MAX_LINE as u64 + 2)
    }
}

impl Drop for Bmc {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The client side: asks the BMC at `path` to cycle `mac`.
pub fn request_cycle(path: &Path, mac: MacAddr) -> Result<()> {
    let mut s = UnixStream::connect(path)
        .with_context(|| format!("cannot reach the lab BMC at {}", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    writeln!(s, "cycle {mac}")?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer)?;
    match answer.trim() {
        "ok" => Ok(()),
        other => bail!("the lab BMC refused: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn requests_parse_and_hostile_ones_are_refused() {
        assert_eq!(
            parse_request("cycle 52:54:00:77:00:01\n"),
            Ok(MacAddr([0x52, 0x54, 0, 0x77, 0, 1]))
        );
        for bad in [
            "",
            "cycle",
            "cycle zz",
            "reset 52:54:00:77:00:01",
            &"x".repeat(500),
        ] {
            assert!(parse_request(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_cycle_request_reaches_the_handler_and_errors_come_back() {
        let dir = std::env::temp_dir().join(format!("lab-bmc-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("bmc.sock");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let bmc = Bmc::start(&sock, move |mac| {
            s.lock().unwrap().push(mac);
            if mac.0[5] == 9 {
                bail!("no VM with MAC {mac}");
            }
            Ok(())
        })
        .unwrap();
        request_cycle(&sock, MacAddr([2, 0, 0, 0, 0, 1])).unwrap();
        let e = request_cycle(&sock, MacAddr([2, 0, 0, 0, 0, 9])).unwrap_err();
        assert!(e.to_string().contains("no VM with MAC"), "{e}");
        assert_eq!(seen.lock().unwrap().len(), 2);
        drop(bmc);
        assert!(!sock.exists(), "the socket goes with the BMC");
        assert!(request_cycle(&sock, MacAddr([2, 0, 0, 0, 0, 1])).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
