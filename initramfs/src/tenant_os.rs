//! The tenant test OS image: what a tenant's sealed boot image holds in the lab and the demo.
//! Pure layout and rendering; [`crate::tenant_os_build`] reads the input and writes the file.
//!
//! ```text
//! /dev           0755  mount point of devtmpfs
//! /dev/console   c 5 1 (0600), so the kernel has a console before devtmpfs is mounted
//! /init          0755  the static tenant-init binary
//! /proc /sys     0555  mount points
//! ```
//!
//! Same `/init` bytes, same archive bytes (sorted names, owners 0, times 0, fixed gzip header).
//! Like the agent's image it never carries a private key (checked before it goes in).

use thiserror::Error;

use crate::compress::gzip;
use crate::cpio::{Archive, CpioError, ReadError, read_archive};
use crate::secrets::{SecretFinding, find_private_key};

/// File name of the tenant image in the output directory.
pub const TENANT_INITRD_NAME: &str = "tenant-initrd.cpio.gz";
/// Where the tenant-init binary goes.
pub const TENANT_INIT_PATH: &str = "init";
/// Every entry of the image, as `initramfs-build list` shows them.
pub const TENANT_ENTRIES: [&str; 5] = ["/dev", "/dev/console", "/init", "/proc", "/sys"];

/// Why the tenant image could not be assembled.
#[derive(Debug, Error)]
pub enum TenantOsError {
    #[error("the tenant /init binary is empty; build tenant-init first")]
    EmptyInit,
    #[error("the tenant /init contains a private key ({0}); the image never carries secrets")]
    Secret(SecretFinding),
    #[error("cannot add {what}: {source}")]
    Entry {
        what: &'static str,
        #[source]
        source: CpioError,
    },
    #[error("compressing the tenant image: {0}")]
    Compress(#[source] std::io::Error),
    #[error("the written archive does not read back ({0}); this is a bug in the writer")]
    SelfCheck(#[source] ReadError),
}

/// A rendered tenant image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantImage {
    /// The gzip-compressed archive.
    pub gz: Vec<u8>,
    /// Size of the uncompressed cpio archive.
    pub cpio_size: u64,
    /// Entries in the archive (trailer excluded).
    pub entries: usize,
}

fn entry(result: Result<(), CpioError>, what: &'static str) -> Result<(), TenantOsError> {
    result.map_err(|source| TenantOsError::Entry { what, source })
}

/// The archive for `init` (see the module docs for the layout).
pub fn assemble(init: &[u8]) -> Result<Archive, TenantOsError> {
    if init.is_empty() {
        return Err(TenantOsError::EmptyInit);
    }
    if let Some(finding) = find_private_key(init) {
        return Err(TenantOsError::Secret(finding));
    }
    let mut a = Archive::new();
    entry(a.add_dir("dev", 0o755), "/dev")?;
    entry(a.add_dir("proc", 0o555), "/proc")?;
    entry(a.add_dir("sys", 0o555), "/sys")?;
    entry(a.add_char_dev("dev/console", 0o600, 5, 1), "/dev/console")?;
    entry(a.add_file(TENANT_INIT_PATH, 0o755, init), "/init")?;
    Ok(a)
}

/// Assemble, write the cpio, read it back as a self-check, gzip it.
pub fn render(init: &[u8]) -> Result<TenantImage, TenantOsError> {
    let cpio = assemble(init)?.to_bytes();
    let entries = read_archive(&cpio).map_err(TenantOsError::SelfCheck)?.len();
    let gz = gzip(&cpio).map_err(TenantOsError::Compress)?;
    Ok(TenantImage {
        gz,
        cpio_size: cpio.len() as u64,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::FileType;
    use crate::inspect::list;

    const INIT: &[u8] = b"\x7fELF tenant-init";

    #[test]
    fn same_init_same_bytes() {
        let a = render(INIT).unwrap();
        let b = render(INIT).unwrap();
        assert_eq!(a, b);
        assert_ne!(render(b"\x7fELF other").unwrap().gz, a.gz);
    }

    #[test]
    fn exactly_the_expected_entries() {
        let image = render(INIT).unwrap();
        let rows = list(&image.gz).unwrap();
        let paths: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, TENANT_ENTRIES);
        assert_eq!(image.entries, TENANT_ENTRIES.len());
        let find = |p: &str| rows.iter().find(|r| r.path == p).unwrap();
        let init = find("/init");
        assert_eq!(
            (init.file_type, init.perm.as_str()),
            (FileType::File, "0755")
        );
        assert_eq!(init.size, INIT.len() as u64);
        let console = find("/dev/console");
        assert_eq!(console.file_type, FileType::CharDev);
        assert_eq!(
            (console.device.as_deref(), console.perm.as_str()),
            (Some("5:1"), "0600")
        );
        for (dir, perm) in [("/dev", "0755"), ("/proc", "0555"), ("/sys", "0555")] {
            assert_eq!(
                (find(dir).file_type, find(dir).perm.as_str()),
                (FileType::Dir, perm)
            );
        }
    }

    #[test]
    fn refuses_empty_init_and_keys() {
        assert!(matches!(render(b""), Err(TenantOsError::EmptyInit)));
        let mut init = INIT.to_vec();
        init.extend_from_slice(b"\n-----BEGIN OPENSSH PRIVATE KEY-----\n");
        let err = render(&init).unwrap_err();
        assert!(matches!(err, TenantOsError::Secret(_)), "{err}");
    }
}
