//! PID 1 duties: file systems, the console, reaping orphans, and the end of the road (power off,
//! or hang: `/init` must never exit, or the kernel panics).
//!
//! Does IO (mount, open, dup2, signals, reboot). Nothing here runs when the agent is not PID 1
//! (`--not-init`), except [`Mode`] itself.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// How the agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// PID 1 of the initramfs: mounts, owns the console, powers off at the end, never exits.
    Init,
    /// A normal process (tests, namespaces): no mounts, no module loading, no resolv.conf, no
    /// power-off; exits with a status instead.
    NotInit,
}

struct MountSpec {
    source: &'static str,
    target: &'static str,
    fstype: &'static str,
    flags: libc::c_ulong,
    data: &'static str,
}

const NOSUID_NODEV_NOEXEC: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// devtmpfs first: the console device lives there (the kernel does not mount it, see
/// LAB-NOTES 2: DEVTMPFS_MOUNT is not set).
const DEV: MountSpec = MountSpec {
    source: "devtmpfs",
    target: "/dev",
    fstype: "devtmpfs",
    flags: libc::MS_NOSUID,
    data: "mode=0755",
};

const LATER: [MountSpec; 4] = [
    MountSpec {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
    MountSpec {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
    MountSpec {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        data: "mode=1777",
    },
    MountSpec {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: "mode=0755",
    },
];

fn mount(m: &MountSpec) -> Result<()> {
    std::fs::create_dir_all(m.target).with_context(|| format!("creating {}", m.target))?;
    let c = |s: &str| CString::new(s).with_context(|| format!("{s:?} has a NUL byte"));
    let (source, target, fstype, data) = (c(m.source)?, c(m.target)?, c(m.fstype)?, c(m.data)?);
    // SAFETY: all pointers are NUL-terminated strings alive across the call.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            m.flags,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        // Already mounted (a kernel with DEVTMPFS_MOUNT, or a re-run): fine.
        if err.raw_os_error() != Some(libc::EBUSY) {
            return Err(err).with_context(|| format!("mounting {} on {}", m.fstype, m.target));
        }
    }
    Ok(())
}

/// Mounts devtmpfs and points stdin/stdout/stderr at the console. Returns the console used (if
/// any) and the problems met, to be printed once a console exists. Runs before anything is
/// printed: until then fd 1 may be closed (an initramfs without /dev/console leaves init with no
/// descriptors). Without any console the agent still runs: the LM gets its reports.
pub fn early_setup() -> (Option<&'static str>, Vec<anyhow::Error>) {
    let mut problems = vec![];
    if let Err(e) = mount(&DEV) {
        problems.push(e);
    }
    for path in ["/dev/console", "/dev/ttyS0"] {
        match attach_console(path) {
            Ok(()) => return (Some(path), problems),
            Err(e) => problems.push(e),
        }
    }
    (None, problems)
}

fn attach_console(path: &str) -> Result<()> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .with_context(|| format!("opening {path}"))?;
    for fd in 0..=2 {
        // SAFETY: dup2 on a valid open descriptor onto the standard descriptors.
        if unsafe { libc::dup2(f.as_raw_fd(), fd) } < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("dup2 {path} to fd {fd}"));
        }
    }
    Ok(())
}

/// Mounts /proc, /sys, /tmp and /run; returns a one-line summary and the failures.
pub fn mount_filesystems() -> (String, Vec<anyhow::Error>) {
    let mut ok = vec![];
    let mut failed = vec![];
    for m in &LATER {
        match mount(m) {
            Ok(()) => ok.push(m.target),
            Err(e) => failed.push(e),
        }
    }
    (format!("mounts={}", ok.join(",")), failed)
}

/// Blocks SIGCHLD in this thread (and so in every thread spawned later) and starts a thread that
/// waits for it and reaps every exited child: as PID 1 the agent inherits all orphans.
/// Call before spawning any other thread. Later code that runs children must not rely on
/// `Child::wait` (the reaper may collect the status first); it will get its own channel.
pub fn start_reaper() -> Result<()> {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it; pthread_sigmask
    // only reads it.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            bail!("blocking SIGCHLD: error {rc}");
        }
        set
    };
    std::thread::Builder::new()
        .name("reaper".into())
        .spawn(move || reap_forever(set))
        .context("starting the reaper thread")?;
    Ok(())
}

fn reap_forever(set: libc::sigset_t) {
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is an initialised signal set, `sig` is writable.
        unsafe { libc::sigwait(&set, &mut sig) };
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: plain syscall with a writable status pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            tracing::debug!(pid, status, "reaped a child");
        }
    }
}

/// Syncs and powers the machine off. Only returns if the kernel refused; then the caller hangs.
pub fn power_off() -> std::io::Error {
    // SAFETY: sync and reboot take no pointers.
    unsafe {
        libc::sync();
        libc::reboot(libc::LINUX_REBOOT_CMD_POWER_OFF);
    }
    std::io::Error::last_os_error()
}

/// Never returns: the last resort of PID 1 (exiting would panic the kernel).
pub fn hang() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
