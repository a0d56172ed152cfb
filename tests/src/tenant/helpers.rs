//! Small helpers of the tenant-tunnel namespace test: an HTTP/1.0 GET, the kernel line of an
//! iPXE script, `key=value` words of marker lines, waiting for a line of a process, and
//! pseudo-random image contents with a planted marker.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::Process;
use anyhow::{Context, Result, bail};

/// One HTTP/1.0 GET (the answer ends with the connection): status and body.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", addr.ip())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of the HTTP head")?;
    let head = String::from_utf8_lossy(raw.get(..split).unwrap_or_default()).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {head:?}"))?;
    Ok((status, raw.get(split + 4..).unwrap_or_default().to_vec()))
}

/// What the agent's `/proc/cmdline` would hold after iPXE ran the script: the words of the
/// `kernel` line after the kernel's URL.
pub fn kernel_cmdline(script: &str) -> Result<String> {
    let line = script
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("kernel "))
        .with_context(|| format!("the boot script has no kernel line:\n{script}"))?;
    let words: Vec<&str> = line.split_whitespace().skip(2).collect();
    for key in ["lm.url=", "lm.boot=", "lm.mac=", "lm.lease=", "lm.token="] {
        if !words.iter().any(|w| w.starts_with(key)) {
            bail!("the kernel line lacks {key}: {line}");
        }
    }
    Ok(words.join(" "))
}

/// The value of `key=` among the words of `text`.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Waits for a line (seq >= `from`) of `p` for which `f` gives a value; fails when `p` exits
/// first or the time runs out.
pub fn wait_line<T>(
    p: &Process,
    from: u64,
    timeout: Duration,
    what: &str,
    mut f: impl FnMut(&str) -> Option<T>,
) -> Result<T> {
    let end = Instant::now() + timeout;
    let mut next = from;
    loop {
        for l in p.lines_from(next) {
            next = l.seq + 1;
            if let Some(v) = f(&l.text) {
                return Ok(v);
            }
        }
        if !p.is_running() && p.lines_from(next).is_empty() {
            bail!("{} exited before {what}:\n{}", p.name(), p.dump(40));
        }
        if Instant::now() > end {
            bail!("{what}: not seen within {timeout:?}:\n{}", p.dump(40));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Bytes from /dev/urandom.
pub fn urandom(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if let Err(e) = read {
        panic!("/dev/urandom: {e}");
    }
    b
}

/// `len` pseudo-random bytes (xorshift64*, seeded from /dev/urandom) with `marker` planted at
/// each of `at`.
pub fn plaintext(len: usize, marker: &[u8], at: &[usize]) -> Vec<u8> {
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&urandom(8));
    let mut x = u64::from_le_bytes(seed) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    for &a in at {
        if let Some(slot) = out.get_mut(a..a + marker.len()) {
            slot.copy_from_slice(marker);
        }
    }
    out
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A sparse disk image for a VM in the temp folder, removed (with a TPM state folder next to
/// it, `<name>.tpm`, if one was made) when dropped.
#[derive(Debug)]
pub struct TempDisk(pub std::path::PathBuf);

impl TempDisk {
    /// `<temp>/<name>-<pid>.img` of `len` bytes (sparse).
    pub fn create(name: &str, len: u64) -> Result<Self> {
        let p = std::env::temp_dir().join(format!("{name}-{}.img", std::process::id()));
        std::fs::File::create(&p)
            .and_then(|f| f.set_len(len))
            .with_context(|| format!("creating {}", p.display()))?;
        Ok(Self(p))
    }
}

impl Drop for TempDisk {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_dir_all(self.0.with_extension("tpm"));
    }
}
