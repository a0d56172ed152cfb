//! The few system calls of the tenant test OS, each wrapped so the rest is safe code. Does IO.

use std::ffi::{CStr, CString};
use std::io;
use std::time::Duration;

/// `mount(source, target, fstype, 0, NULL)`; creates `target` first if it is missing.
/// `EBUSY` (already mounted, e.g. by the kernel's devtmpfs automount) counts as success.
pub fn mount(source: &str, target: &str, fstype: &str) -> io::Result<()> {
    let _ = std::fs::create_dir_all(target);
    let cstr = |s: &str| CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let (source, target, fstype) = (cstr(source)?, cstr(target)?, cstr(fstype)?);
    // SAFETY: three valid NUL-terminated strings that outlive the call; no data argument.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EBUSY) {
        Ok(())
    } else {
        Err(err)
    }
}

/// The running kernel's release (`uname -r`), empty if `uname` fails.
pub fn kernel_release() -> Vec<u8> {
    // SAFETY: utsname is plain old data; all-zero bytes are a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Vec::new();
    }
    let release = &uts.release;
    // The kernel NUL-terminates the field; if it did not, stop at the end of the array.
    let len = release
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(release.len());
    // SAFETY: c_char and u8 have the same size; `len` is within the array.
    let bytes = unsafe { std::slice::from_raw_parts(release.as_ptr().cast::<u8>(), len) };
    CStr::from_bytes_until_nul(bytes)
        .map(|c| c.to_bytes().to_vec())
        .unwrap_or_else(|_| bytes.to_vec())
}

/// The process id.
pub fn pid() -> u32 {
    std::process::id()
}

/// `sync()` then `reboot(RB_POWER_OFF)`. Returns only if the power-off was refused.
pub fn sync_and_power_off() -> io::Error {
    // SAFETY: sync and reboot take no pointers; reboot returns only on failure.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    io::Error::last_os_error()
}

/// Reap every exited child (orphans are re-parented to PID 1); sleep `idle` when there are
/// none. Never returns.
pub fn reap_forever(idle: Duration) -> ! {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid, writable int.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid <= 0 {
            // ECHILD (no children) or EINTR: nothing to reap right now.
            std::thread::sleep(idle);
        }
    }
}
