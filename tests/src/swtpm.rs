//! The software TPM 2.0 of a lab VM (swtpm 0.7.1): one `swtpm socket` per boot, started before
//! QEMU on the VM's TPM state folder, which outlives the boots like a real TPM's NV memory (a
//! different folder is a different TPM, with its own seeds). QEMU connects to the control
//! socket and hands swtpm the data channel; swtpm ends when QEMU disconnects (`--terminate`),
//! and the lab kills it by PID when the VM powers off or the lab drops.
//!
//! No `--flags startup-clear`: the firmware (SeaBIOS, OVMF) sends TPM2_Startup itself, as on a
//! real machine; the flag is for a TPM used without firmware (with `not-need-init`). No
//! `--log`: swtpm 0.7.1 closes fd 2 before using `--log fd=2`, and without `--log` its errors
//! go to stderr, which [`Process`] captures.
//!
//! Argument building, path checks and the `/proc/<pid>/net/unix` reading are pure; [`start`]
//! does IO.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::Process;

/// The swtpm binary (Debian package `swtpm`).
pub const SWTPM: &str = "/usr/bin/swtpm";
/// How long swtpm may take to listen on its control socket.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// The `swtpm` arguments for a TPM 2.0 with state in `state`, control socket `ctrl`.
/// Pure; check the paths with [`check_paths`] first.
pub fn swtpm_args(state: &Path, ctrl: &Path) -> Vec<String> {
    vec![
        "socket".into(),
        "--tpm2".into(),
        "--tpmstate".into(),
        format!("dir={}", state.display()),
        "--ctrl".into(),
        format!("type=unixio,path={}", ctrl.display()),
        "--terminate".into(),
    ]
}

/// Refuses paths that swtpm's or QEMU's option syntax (`key=value,key=value`) would split or
/// that cannot be a socket address: empty, not UTF-8, with ',' or a line break, a socket path
/// longer than 107 bytes. `vm` names the VM in the message.
pub fn check_paths(vm: &str, state: &Path, ctrl: &Path) -> Result<()> {
    for (what, p) in [("TPM state folder", state), ("TPM control socket", ctrl)] {
        let Some(s) = p.to_str() else {
            bail!(
                "VM {vm}: {what} {}: not UTF-8; choose a plain path",
                p.display()
            );
        };
        if s.is_empty() {
            bail!("VM {vm}: {what} is empty; give a folder for the TPM's state");
        }
        if s.contains([',', '\n', '\r', '\0']) {
            bail!(
                "VM {vm}: {what} {s:?}: QEMU and swtpm options cannot carry ',' or line breaks \
                 in a path; choose a path without them"
            );
        }
    }
    let len = ctrl.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        bail!(
            "VM {vm}: TPM control socket {} is {len} bytes, more than a Unix socket address \
             holds ({MAX_SOCKET_PATH}); use a shorter log folder or VM name",
            ctrl.display()
        );
    }
    Ok(())
}

/// True if the text of `/proc/<pid>/net/unix` has a listening socket bound to `path`
/// (flags `00010000`, `__SO_ACCEPTCON`). Lines that do not parse are skipped.
pub fn unix_listening(proc_net_unix: &str, path: &Path) -> bool {
    let Some(want) = path.to_str() else {
        return false;
    };
    proc_net_unix.lines().skip(1).any(|line| {
        // Num: RefCount Protocol Flags Type St Inode[ Path]; Inode is space-padded.
        let mut rest = line;
        let mut fields = [""; 7];
        for f in &mut fields {
            rest = rest.trim_start_matches(' ');
            let end = rest.find(' ').unwrap_or(rest.len());
            (*f, rest) = rest.split_at(end);
        }
        rest.strip_prefix(' ') == Some(want)
            && u32::from_str_radix(fields[3], 16).is_ok_and(|flags| flags & 0x0001_0000 != 0)
    })
}

/// Starts swtpm for one boot of VM `vm`: creates `state` if missing, removes a stale socket
/// at `ctrl`, runs swtpm (outside any network namespace: the socket is a file) with its output
/// in `log`, and waits up to [`LISTEN_TIMEOUT`] until it listens on `ctrl`. The returned
/// process is killed when dropped.
pub fn start(name: &str, state: &Path, ctrl: &Path, log: &Path) -> Result<Process> {
    check_paths(name, state, ctrl)?;
    std::fs::create_dir_all(state).with_context(|| {
        format!(
            "{name}: cannot create the TPM state folder {}",
            state.display()
        )
    })?;
    match std::fs::symlink_metadata(ctrl) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            std::fs::remove_file(ctrl)
                .with_context(|| format!("{name}: cannot remove stale {}", ctrl.display()))?;
        }
        Ok(_) => bail!(
            "{name}: {} exists and is not a socket; remove it or use another log folder",
            ctrl.display()
        ),
        Err(_) => {}
    }
    let mut cmd = Command::new(SWTPM);
    cmd.args(swtpm_args(state, ctrl));
    let p = Process::spawn(name, &cmd, None, Some(log))?;
    let proc_file = format!("/proc/{}/net/unix", p.pid());
    let t = Instant::now();
    loop {
        if let Some(status) = p.exit_status() {
            bail!(
                "{name}: swtpm exited ({status}) before listening on {}:\n{}",
                ctrl.display(),
                p.dump(20)
            );
        }
        let table = std::fs::read_to_string(&proc_file).unwrap_or_default();
        if unix_listening(&table, ctrl) {
            tracing::debug!(process = name, took = ?t.elapsed(), "swtpm listening");
            return Ok(p);
        }
        if t.elapsed() > LISTEN_TIMEOUT {
            bail!(
                "{name}: swtpm did not listen on {} within {LISTEN_TIMEOUT:?}:\n{}",
                ctrl.display(),
                p.dump(20)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
#[path = "swtpm_tests.rs"]
mod tests;
