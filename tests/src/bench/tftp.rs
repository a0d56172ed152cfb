//! The TFTP benchmark: a 30 MB file at blksize 1468, lock-step (curl, windowsize 1) against
//! tftpd-hpa and windowed (atftp client, windowsize 16, RFC 7440) against atftpd, each next to
//! the Lease Manager's TFTP server in the same run. atftpd conflicts with tftpd-hpa in Debian,
//! so its package is unpacked into `target/bench/atftpd` and run from there. IO.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{Pair, SERVER_ADDR, scratch};
use crate::process::Process;

/// Size of the test file.
pub const FILE_BYTES: usize = 30 * 1000 * 1000;

/// Which client protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// curl: blksize 1468, one block in flight.
    Lockstep,
    /// atftp: blksize 1468, windowsize 16.
    Window16,
}

/// One row of results: MB/s (median of three transfers).
#[derive(Debug, Clone)]
pub struct TftpResult {
    pub mode: Mode,
    pub reference: &'static str,
    pub ours_mbs: f64,
    pub reference_mbs: f64,
}

/// Unpacks Debian's atftpd (conflicts with tftpd-hpa) and returns its binary.
pub fn atftpd_binary() -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .join("target/bench/atftpd");
    let bin = root.join("root/usr/sbin/atftpd");
    if bin.exists() {
        return Ok(bin);
    }
    std::fs::create_dir_all(&root)?;
    let st = Command::new("apt-get")
        .arg("download")
        .arg("atftpd")
        .current_dir(&root)
        .status()?;
    if !st.success() {
        bail!("apt-get download atftpd failed");
    }
    let deb = std::fs::read_dir(&root)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("no atftpd .deb downloaded")?;
    let st = Command::new("dpkg")
        .arg("-x")
        .arg(&deb)
        .arg(root.join("root"))
        .status()?;
    if !st.success() || !bin.exists() {
        bail!(
            "dpkg -x of {} did not give {}",
            deb.display(),
            bin.display()
        );
    }
    Ok(bin)
}

fn transfer(pair: &Pair, mode: Mode) -> Result<f64> {
    let url_file = "bench.bin";
    let t = Instant::now();
    let out = match mode {
        Mode::Lockstep => pair
            .client
            .command("curl")
            .args([
                "-sS",
                "--max-time",
                "60",
                "--tftp-blksize",
                "1468",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download}",
            ])
            .arg(format!("tftp://{SERVER_ADDR}/{url_file}"))
            .output()?,
        Mode::Window16 => pair
            .client
            .command("atftp")
            .args([
                "--option",
                "blksize 1468",
                "--option",
                "windowsize 16",
                "-g",
                "-r",
                url_file,
                "-l",
                "/dev/null",
                SERVER_ADDR,
            ])
            .output()?,
    };
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "{mode:?} transfer failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if mode == Mode::Lockstep {
        let got: usize = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        if got != FILE_BYTES {
            bail!("curl got {got} bytes of {FILE_BYTES}");
        }
    }
    Ok(FILE_BYTES as f64 / secs / 1e6)
}

fn median3(pair: &Pair, mode: Mode) -> Result<f64> {
    let mut v = [
        transfer(pair, mode)?,
        transfer(pair, mode)?,
        transfer(pair, mode)?,
    ];
    v.sort_by(f64::total_cmp);
    Ok(v[1])
}

fn serve(name: &str, pair: &Pair, cmd: &Command, log: &Path) -> Result<Process> {
    let p = Process::spawn(name, cmd, Some(pair.server.name()), Some(log))?;
    std::thread::sleep(Duration::from_millis(700));
    if !p.is_running() {
        bail!("{name} exited at start:\n{}", p.dump(20));
    }
    Ok(p)
}

/// Runs both comparisons.
pub fn bench(lm: &Path) -> Result<Vec<TftpResult>> {
    let dir = scratch("tftp")?;
    let root = dir.join("root");
    std::fs::create_dir_all(&root)?;
    // Incompressible, reproducible content.
    let mut data = vec![0u8; FILE_BYTES];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    std::fs::write(root.join("bench.bin"), &data)?;
    let pair = Pair::new()?;
    let mut ours = super::ours(lm, &dir.join("state"), "10.88.1.100", Some(&root));
    ours.env("RUST_LOG", "warn");
    let mut out = Vec::new();
    for (mode, reference, cmd) in [
        (Mode::Lockstep, "tftpd-hpa 5.2", {
            let mut c = Command::new("in.tftpd");
            c.args(["-L", "-s"]).arg(&root).args([
                "-a",
                &format!("{SERVER_ADDR}:69"),
                "-B",
                "1468",
            ]);
            c
        }),
        (Mode::Window16, "atftpd 0.8", {
            let mut c = Command::new(atftpd_binary()?);
            c.args([
                "--daemon",
                "--no-fork",
                "--logfile",
                "-",
                "--bind-address",
                SERVER_ADDR,
                "--port",
                "69",
            ])
            .arg(&root);
            c
        }),
    ] {
        eprintln!("  TFTP {mode:?}: ours vs {reference}");
        let p = serve(
            "lease-manager bench-pxe",
            &pair,
            &ours,
            &dir.join("ours.log"),
        )?;
        let ours_mbs = median3(&pair, mode)?;
        drop(p);
        let p = serve(reference, &pair, &cmd, &dir.join("reference.log"))?;
        let reference_mbs = median3(&pair, mode)?;
        drop(p);
        eprintln!("    ours {ours_mbs:.1} MB/s, {reference} {reference_mbs:.1} MB/s");
        out.push(TftpResult {
            mode,
            reference,
            ours_mbs,
            reference_mbs,
        });
    }
    Ok(out)
}
