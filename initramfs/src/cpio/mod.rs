//! The "newc" cpio format (SVR4 without CRC), as the Linux kernel unpacks an initramfs.
//! Pure: the writer writes into any `io::Write`, the reader parses a byte slice. No files.
//!
//! Layout of one entry (all numbers are 8 ASCII hex digits, see the kernel's
//! `Documentation/driver-api/early-userspace/buffer-format.rst`):
//!
//! ```text
//! offset  size  field
//!      0     6  magic "070701"
//!      6     8  c_ino        inode number (we assign 1.. in sorted order)
//!     14     8  c_mode       file type and permission bits
//!     22     8  c_uid        owner (always 0)
//!     30     8  c_gid        group (always 0)
//!     38     8  c_nlink      link count (2 for directories, 1 otherwise)
//!     46     8  c_mtime      modification time (always 0)
//!     54     8  c_filesize   size of the data that follows the name
//!     62     8  c_devmajor   device of the file (0)
//!     70     8  c_devminor   (0)
//!     78     8  c_rdevmajor  for character devices: the device number
//!     86     8  c_rdevminor
//!     94     8  c_namesize   name length including the trailing NUL
//!    102     8  c_check      0 for "070701"
//!    110        name + NUL, padded with NULs so that header + name is a multiple of 4
//!               data (file contents or symlink target), padded with NULs to a multiple of 4
//! ```
//!
//! The archive ends with an entry named `TRAILER!!!` (all fields 0 except nlink 1 and
//! namesize 11). Entries are written sorted by name, so parents always precede children.

mod name;
mod reader;
mod writer;

pub use name::{MAX_COMPONENT_LEN, MAX_NAME_LEN, NameError, ancestors, normalize, normalize_bytes};
pub use reader::{Entry, ReadError, read_archive};
pub use writer::{Archive, CpioError};

/// Magic of the newc format.
pub const MAGIC: &[u8; 6] = b"070701";
/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 110;
/// Name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";

/// File type bits of `c_mode`.
pub(crate) const S_IFMT: u32 = 0o170_000;
pub(crate) const S_IFDIR: u32 = 0o040_000;
pub(crate) const S_IFREG: u32 = 0o100_000;
pub(crate) const S_IFLNK: u32 = 0o120_000;
pub(crate) const S_IFCHR: u32 = 0o020_000;
pub(crate) const S_IFBLK: u32 = 0o060_000;
pub(crate) const S_IFIFO: u32 = 0o010_000;
pub(crate) const S_IFSOCK: u32 = 0o140_000;
/// Permission bits (including setuid, setgid, sticky).
pub const PERM_MASK: u32 = 0o7777;

/// The type of an archive entry, as encoded in the file type bits of `c_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileType {
    Dir,
    File,
    Symlink,
    CharDev,
    BlockDev,
    Fifo,
    Socket,
}

impl FileType {
    /// Decode the file type bits of a mode; `None` for an unknown type.
    pub fn from_mode(mode: u32) -> Option<Self> {
        Some(match mode & S_IFMT {
            S_IFDIR => Self::Dir,
            S_IFREG => Self::File,
            S_IFLNK => Self::Symlink,
            S_IFCHR => Self::CharDev,
            S_IFBLK => Self::BlockDev,
            S_IFIFO => Self::Fifo,
            S_IFSOCK => Self::Socket,
            _ => return None,
        })
    }

    /// The file type bits for this type.
    pub fn bits(self) -> u32 {
        match self {
            Self::Dir => S_IFDIR,
            Self::File => S_IFREG,
            Self::Symlink => S_IFLNK,
            Self::CharDev => S_IFCHR,
            Self::BlockDev => S_IFBLK,
            Self::Fifo => S_IFIFO,
            Self::Socket => S_IFSOCK,
        }
    }

    /// The letter `ls -l` shows for this type.
    pub fn letter(self) -> char {
        match self {
            Self::Dir => 'd',
            Self::File => '-',
            Self::Symlink => 'l',
            Self::CharDev => 'c',
            Self::BlockDev => 'b',
            Self::Fifo => 'p',
            Self::Socket => 's',
        }
    }
}

/// Render a mode the way `ls -l` does (`drwxr-xr-x`, `-rwsr-xr-x`, ...).
pub fn mode_string(mode: u32) -> String {
    let mut out = String::with_capacity(10);
    out.push(FileType::from_mode(mode).map_or('?', FileType::letter));
    let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (i, (bit, set_x, set_nox)) in special.iter().enumerate() {
        let shift = 6 - 3 * i;
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(match (bits & 1 != 0, mode & bit != 0) {
            (true, true) => *set_x,
            (false, true) => *set_nox,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    out
}

/// Bytes of NUL padding that bring `len` up to a multiple of 4.
pub(crate) fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings() {
        assert_eq!(mode_string(S_IFDIR | 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(S_IFREG | 0o644), "-rw-r--r--");
        assert_eq!(mode_string(S_IFREG | 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(S_IFDIR | 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(S_IFCHR | 0o600), "crw-------");
        assert_eq!(mode_string(S_IFLNK | 0o777), "lrwxrwxrwx");
        assert_eq!(mode_string(0o644), "?rw-r--r--");
    }

    #[test]
    fn file_type_round_trip() {
        for t in [
            FileType::Dir,
            FileType::File,
            FileType::Symlink,
            FileType::CharDev,
            FileType::BlockDev,
            FileType::Fifo,
            FileType::Socket,
        ] {
            assert_eq!(FileType::from_mode(t.bits() | 0o755), Some(t));
        }
        assert_eq!(FileType::from_mode(0o070_000), None);
    }

    #[test]
    fn padding() {
        assert_eq!(pad4(0), 0);
        assert_eq!(pad4(1), 3);
        assert_eq!(pad4(2), 2);
        assert_eq!(pad4(3), 1);
        assert_eq!(pad4(HEADER_LEN + 5), 1);
    }
}
