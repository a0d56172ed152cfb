//! A swtpm child per test (its own state folder, killed by PID on drop) and a `Transport`
//! over its data socket, which carries raw TPM 2.0 commands and responses.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent_tpm::{Tpm, TpmError, Transport};

/// Returns false (and says why) when swtpm is missing and CI is not set; under CI a missing
/// swtpm fails the test.
pub fn swtpm_available() -> bool {
    let ok = Command::new("swtpm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "swtpm is not installed and CI is set: install the Debian packages swtpm and swtpm-tools (scripts/setup.sh)"
    );
    // Written to stderr directly: the test harness captures eprintln! of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: swtpm is not installed (apt-get install swtpm swtpm-tools; scripts/setup.sh)"
    );
    false
}

/// A running swtpm; killed (SIGKILL, by PID) and reaped when dropped.
pub struct Swtpm {
    child: Child,
    sock: PathBuf,
}

impl Swtpm {
    /// Starts swtpm on the TPM state in `state` (created on first use: a new TPM with new
    /// seeds), its sockets and log in `run`.
    pub fn start(state: &Path, run: &Path) -> Swtpm {
        std::fs::create_dir_all(state).unwrap();
        let sock = run.join("data.sock");
        let ctrl = run.join("ctrl.sock");
        let _ = std::fs::remove_file(&sock);
        let _ = std::fs::remove_file(&ctrl);
        let log = run.join("swtpm.log");
        let child = Command::new("swtpm")
            .arg("socket")
            .arg("--tpm2")
            .arg("--tpmstate")
            .arg(format!("dir={}", state.display()))
            .arg("--server")
            .arg(format!("type=unixio,path={}", sock.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", ctrl.display()))
            .arg("--flags")
            .arg("not-need-init,startup-clear")
            .arg("--log")
            .arg(format!("file={},level=1", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn swtpm");
        let mut s = Swtpm { child, sock };
        let deadline = Instant::now() + Duration::from_secs(15);
        while UnixStream::connect(&s.sock).is_err() {
            if let Ok(Some(status)) = s.child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("swtpm exited ({status}) before listening; log:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "swtpm did not listen on {} in 15 s",
                s.sock.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// A TPM over a new connection (swtpm serves one connection at a time; the probe
    /// connection of `start` is closed).
    pub fn tpm(&self) -> Tpm<UnixTransport> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match UnixStream::connect(&self.sock) {
                Ok(stream) => return Tpm::new(UnixTransport { stream }),
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "connect {}: {e}",
                        self.sock.display()
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// swtpm's data socket: a raw command out, a response in (header first, then the size it
/// names).
#[derive(Debug)]
pub struct UnixTransport {
    stream: UnixStream,
}

impl Transport for UnixTransport {
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>, TpmError> {
        let io = |context: &str| {
            let context = context.to_string();
            move |source| TpmError::Io { context, source }
        };
        self.stream
            .write_all(command)
            .map_err(io("writing to swtpm"))?;
        let mut resp = vec![0u8; 10];
        self.stream
            .read_exact(&mut resp)
            .map_err(io("reading a response header from swtpm"))?;
        let size = u32::from_be_bytes([resp[2], resp[3], resp[4], resp[5]]) as usize;
        if (10..=4096).contains(&size) {
            resp.resize(size, 0);
            self.stream
                .read_exact(&mut resp[10..])
                .map_err(io("reading a response from swtpm"))?;
        }
        Ok(resp)
    }
}
