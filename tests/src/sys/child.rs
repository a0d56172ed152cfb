//! Child-process syscalls: wait for exit without reaping (so a PID is never signalled after it
//! could have been reused), reap, signal a process and its group, parent-death signal.
//!
//! Does IO (syscalls).

use std::io;
use std::mem::zeroed;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use super::cvt;

/// Blocks until child `pid` has exited, leaving it a zombie (WNOWAIT): its PID stays reserved
/// until [`reap`] is called.
pub(crate) fn wait_exit_nowait(pid: u32) -> io::Result<()> {
    loop {
        // SAFETY: siginfo_t is plain old data; all-zero is valid.
        let mut info: libc::siginfo_t = unsafe { zeroed() };
        // SAFETY: `info` is live and writable.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        match cvt(r) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Reaps child `pid` (which must have exited) and returns its status.
pub(crate) fn reap(pid: u32) -> io::Result<ExitStatus> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is live and writable.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        match cvt(r) {
            Ok(_) => return Ok(ExitStatus::from_raw(status)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Sends `signal` to the process group led by `pid` and to `pid` itself (in case it left the
/// group). The caller guarantees `pid` is an unreaped child, so the number cannot be reused.
pub(crate) fn kill_group(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 1 {
        return;
    }
    // SAFETY: kill() has no memory preconditions; errors (ESRCH) are irrelevant here.
    unsafe {
        libc::kill(-pid, signal);
        libc::kill(pid, signal);
    }
}

/// In a freshly forked child (pre_exec): receive SIGKILL when the thread that forked dies, and
/// start with an empty signal mask and default SIGPIPE (callers such as `lab up` block SIGINT
/// and SIGTERM, and a QEMU inheriting that mask would ignore SIGTERM). Async-signal-safe.
pub(crate) fn prepare_child() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes an integer signal number.
    cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) })?;
    // SAFETY: sigset_t is initialised by sigemptyset before use; both calls are
    // async-signal-safe and touch only this (single-threaded) child.
    unsafe {
        let mut set: libc::sigset_t = zeroed();
        libc::sigemptyset(&mut set);
        cvt(libc::pthread_sigmask(
            libc::SIG_SETMASK,
            &set,
            std::ptr::null_mut(),
        ))?;
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    use super::*;

    fn blocked_mask_of_child(reset: bool) -> String {
        let mut cmd = Command::new("grep");
        cmd.args(["SigBlk", "/proc/self/status"]);
        // SAFETY: the hook only makes async-signal-safe calls.
        unsafe {
            cmd.pre_exec(move || {
                let mut set: libc::sigset_t = zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGTERM);
                cvt(libc::pthread_sigmask(
                    libc::SIG_BLOCK,
                    &set,
                    std::ptr::null_mut(),
                ))?;
                if reset { prepare_child() } else { Ok(()) }
            })
        };
        let out = cmd.output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    #[test]
    fn children_start_with_an_empty_signal_mask() {
        // SIGTERM is signal 15: bit 14 of the mask
        assert_eq!(blocked_mask_of_child(false), "SigBlk:\t0000000000004000");
        assert_eq!(blocked_mask_of_child(true), "SigBlk:\t0000000000000000");
    }
}
