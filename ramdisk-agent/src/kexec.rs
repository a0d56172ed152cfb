//! Starting the tenant's kernel: `kexec_file_load` of the verified kernel and initramfs (RAM-only
//! memfd files from the start gate) with the manifest's command line, then
//! `reboot(LINUX_REBOOT_CMD_KEXEC)`. IO; PID 1 only.
//!
//! The kernel checks the image itself (bzImage format; a signature only under lockdown, which
//! UEFI Secure Boot turns on, see `docs/operations.md`). What reaches this module is only ever a
//! [`Startable`] the gate produced: there is no other way to name an image to start.

use std::os::fd::AsRawFd;

use anyhow::{Context, bail};

use crate::startup_key::Startable;

/// Longest command line handed to the kernel (the x86 limit is 2048 with the NUL).
pub const MAX_CMDLINE: usize = 2047;

/// The tenant's command line: the manifest's, then `tenant.lease=<lease>` so the tenant OS
/// knows its lease. Refuses what the kernel would truncate or choke on.
pub fn tenant_cmdline(manifest_cmdline: &str, lease: &str) -> anyhow::Result<String> {
    let line = if manifest_cmdline.trim().is_empty() {
        format!("tenant.lease={lease}")
    } else {
        format!("{} tenant.lease={lease}", manifest_cmdline.trim())
    };
    if line.len() > MAX_CMDLINE {
        bail!(
            "the tenant command line is {} bytes, over the kernel's {MAX_CMDLINE}",
            line.len()
        );
    }
    if !line.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        bail!("the tenant command line has bytes outside printable ASCII");
    }
    Ok(line)
}

/// Loads the image for kexec. After this the running kernel holds a copy; the memfds may go.
pub fn load(image: &Startable, cmdline: &str) -> anyhow::Result<()> {
    let c = std::ffi::CString::new(cmdline).context("the command line has a NUL byte")?;
    let initrd_fd = image.initrd.as_ref().map_or(-1, |f| f.as_raw_fd());
    let flags: libc::c_ulong = if image.initrd.is_some() {
        0
    } else {
        // KEXEC_FILE_NO_INITRAMFS
        0x4
    };
    // SAFETY: valid descriptors owned by `image` for the duration of the call; the command
    // line is NUL-terminated and its length includes the NUL, as the syscall expects.
    let r = unsafe {
        libc::syscall(
            libc::SYS_kexec_file_load,
            image.kernel.as_raw_fd(),
            initrd_fd,
            c.as_bytes_with_nul().len() as libc::c_ulong,
            c.as_ptr(),
            flags,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error())
            .context("kexec_file_load refused the tenant kernel");
    }
    Ok(())
}

/// Reboots into the loaded kernel. Returns only on failure.
pub fn reboot_into() -> anyhow::Error {
    // SAFETY: sync and reboot have no memory-safety preconditions; PID 1 with CAP_SYS_BOOT.
    unsafe {
        libc::sync();
        libc::reboot(libc::LINUX_REBOOT_CMD_KEXEC);
    }
    anyhow::Error::new(std::io::Error::last_os_error()).context("reboot(KEXEC) returned")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_appended_and_bad_lines_refused() {
        assert_eq!(
            tenant_cmdline(" console=ttyS0 quiet ", "l-1").unwrap(),
            "console=ttyS0 quiet tenant.lease=l-1"
        );
        assert_eq!(tenant_cmdline("", "l-1").unwrap(), "tenant.lease=l-1");
        assert!(tenant_cmdline(&"x".repeat(2040), "l-1").is_err());
        assert!(tenant_cmdline("a\nb", "l-1").is_err());
        assert!(tenant_cmdline("caf\u{e9}", "l-1").is_err());
    }
}
