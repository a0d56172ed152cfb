//! Deterministic newc cpio writer. Pure: entries are collected in memory, validated when added,
//! and written in sorted order into any `io::Write`.
//!
//! Determinism rules: owner 0:0, mtime 0, inode numbers 1.. in sorted order, nlink 2 for
//! directories and 1 otherwise, explicit permission bits, parent directories implied (mode
//! 0755) when not added explicitly. The same set of entries gives the same bytes, whatever
//! order they were added in.

use std::collections::BTreeMap;
use std::io::{self, Write};

use thiserror::Error;

use super::name::{NameError, ancestors, normalize};
use super::{FileType, HEADER_LEN, MAGIC, PERM_MASK, TRAILER, pad4};

/// Mode of a directory that is created because something below it was added.
const IMPLIED_DIR_PERM: u32 = 0o755;
/// Longest accepted symlink target (`PATH_MAX` - 1).
const MAX_LINK_TARGET: usize = 4095;

/// Why an entry was refused.
#[derive(Debug, Error)]
pub enum CpioError {
    #[error("invalid entry name {name:?}: {source}")]
    InvalidName {
        name: String,
        #[source]
        source: NameError,
    },
    #[error("duplicate entry {path:?}")]
    Duplicate { path: String },
    #[error("{parent:?} must be a directory to hold {path:?}, but it is a {kind:?}")]
    ParentNotDir {
        parent: String,
        path: String,
        kind: FileType,
    },
    #[error("{path:?} is already a directory with entries below it; it cannot become a {kind:?}")]
    DirHasChildren { path: String, kind: FileType },
    #[error("{path:?} has {size} bytes; a newc entry holds at most {max} bytes", max = u32::MAX)]
    TooLarge { path: String, size: u64 },
    #[error("mode {mode:#o} of {path:?} has bits outside the permission mask 0o7777")]
    InvalidMode { path: String, mode: u32 },
    #[error("symlink {path:?} has an invalid target: {reason}")]
    InvalidLinkTarget { path: String, reason: &'static str },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    Dir { implied: bool },
    File(Vec<u8>),
    Symlink(String),
    CharDev { major: u32, minor: u32 },
}

impl Body {
    fn file_type(&self) -> FileType {
        match self {
            Body::Dir { .. } => FileType::Dir,
            Body::File(_) => FileType::File,
            Body::Symlink(_) => FileType::Symlink,
            Body::CharDev { .. } => FileType::CharDev,
        }
    }

    fn data(&self) -> &[u8] {
        match self {
            Body::File(data) => data,
            Body::Symlink(target) => target.as_bytes(),
            Body::Dir { .. } | Body::CharDev { .. } => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    perm: u32,
    body: Body,
}

/// A set of archive entries keyed by normalized name; written sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Archive {
    nodes: BTreeMap<String, Node>,
}

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries that [`Archive::write_to`] writes, implied directories included
    /// and the trailer excluded.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether an entry (explicit or implied) exists under this name (normalized first).
    pub fn contains(&self, name: &str) -> bool {
        normalize(name).is_ok_and(|n| self.nodes.contains_key(&n))
    }

    /// Add a directory. An implied directory of the same name takes the given mode.
    pub fn add_dir(&mut self, name: &str, perm: u32) -> Result<(), CpioError> {
        self.insert(name, perm, Body::Dir { implied: false })
    }

    /// Add a regular file with the given contents.
    pub fn add_file(
        &mut self,
        name: &str,
        perm: u32,
        data: impl Into<Vec<u8>>,
    ) -> Result<(), CpioError> {
        self.insert(name, perm, Body::File(data.into()))
    }

    /// Add a symbolic link (mode 0777, as Linux reports for every symlink).
    pub fn add_symlink(&mut self, name: &str, target: &str) -> Result<(), CpioError> {
        let reason = if target.is_empty() {
            Some("empty")
        } else if target.len() > MAX_LINK_TARGET {
            Some("longer than 4095 bytes")
        } else if target.contains('\0') {
            Some("contains a NUL byte")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(CpioError::InvalidLinkTarget {
                path: name.to_owned(),
                reason,
            });
        }
        self.insert(name, 0o777, Body::Symlink(target.to_owned()))
    }

    /// Add a character device node (for example `dev/console`, 5:1).
    pub fn add_char_dev(
        &mut self,
        name: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioError> {
        self.insert(name, perm, Body::CharDev { major, minor })
    }

    fn insert(&mut self, name: &str, perm: u32, body: Body) -> Result<(), CpioError> {
        let path = normalize(name).map_err(|source| CpioError::InvalidName {
            name: name.to_owned(),
            source,
        })?;
        if perm & !PERM_MASK != 0 {
            return Err(CpioError::InvalidMode { path, mode: perm });
        }
        let size = body.data().len() as u64;
        if size > u64::from(u32::MAX) {
            return Err(CpioError::TooLarge { path, size });
        }
        // Check everything before changing anything, so a refused entry leaves no trace.
        let blocking = ancestors(&path).find_map(|parent| {
            let node = self.nodes.get(parent)?;
            (!matches!(node.body, Body::Dir { .. }))
                .then(|| (parent.to_owned(), node.body.file_type()))
        });
        if let Some((parent, kind)) = blocking {
            return Err(CpioError::ParentNotDir { parent, path, kind });
        }
        match (self.nodes.get(&path).map(|n| &n.body), &body) {
            (None, _) => {}
            (Some(Body::Dir { implied: true }), Body::Dir { .. }) => {}
            (Some(Body::Dir { implied: true }), other) => {
                return Err(CpioError::DirHasChildren {
                    path,
                    kind: other.file_type(),
                });
            }
            (Some(_), _) => return Err(CpioError::Duplicate { path }),
        }
        let parents: Vec<String> = ancestors(&path).map(str::to_owned).collect();
        for parent in parents {
            self.nodes.entry(parent).or_insert(Node {
                perm: IMPLIED_DIR_PERM,
                body: Body::Dir { implied: true },
            });
        }
        self.nodes.insert(path, Node { perm, body });
        Ok(())
    }

    /// Write the archive (entries sorted by name, then the trailer). Returns the byte count.
    pub fn write_to<W: Write>(&self, out: &mut W) -> io::Result<u64> {
        let mut written = 0u64;
        for (index, (path, node)) in self.nodes.iter().enumerate() {
            let (rdev_major, rdev_minor) = match node.body {
                Body::CharDev { major, minor } => (major, minor),
                _ => (0, 0),
            };
            let nlink = if matches!(node.body, Body::Dir { .. }) {
                2
            } else {
                1
            };
            let header = Header {
                ino: u32::try_from(index + 1).unwrap_or(u32::MAX),
                mode: node.body.file_type().bits() | node.perm,
                nlink,
                rdev_major,
                rdev_minor,
            };
            written += write_entry(out, &header, path, node.body.data())?;
        }
        let trailer = Header {
            ino: 0,
            mode: 0,
            nlink: 1,
            rdev_major: 0,
            rdev_minor: 0,
        };
        written += write_entry(out, &trailer, TRAILER, &[])?;
        Ok(written)
    }

    /// The archive as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = self.write_to(&mut out);
        out
    }
}

/// The header fields that vary between entries; the rest are fixed at 0.
struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev_major: u32,
    rdev_minor: u32,
}

const ZEROS: [u8; 4] = [0; 4];

fn write_entry<W: Write>(out: &mut W, h: &Header, name: &str, data: &[u8]) -> io::Result<u64> {
    // Sizes were checked when the entry was added; the names are bounded by MAX_NAME_LEN.
    let filesize = u32::try_from(data.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    let namesize = u32::try_from(name.len() + 1).map_err(|_| io::ErrorKind::InvalidInput)?;
    let fields = [
        h.ino,
        h.mode,
        0, // uid
        0, // gid
        h.nlink,
        0, // mtime
        filesize,
        0, // devmajor
        0, // devminor
        h.rdev_major,
        h.rdev_minor,
        namesize,
        0, // check
    ];
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    for field in fields {
        header.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.write_all(&header)?;
    out.write_all(name.as_bytes())?;
    out.write_all(&[0])?;
    let name_pad = pad4(HEADER_LEN + name.len() + 1);
    out.write_all(&ZEROS[..name_pad])?;
    out.write_all(data)?;
    let data_pad = pad4(data.len());
    out.write_all(&ZEROS[..data_pad])?;
    Ok((HEADER_LEN + name.len() + 1 + name_pad + data.len() + data_pad) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implied_parents_and_sorted_output() {
        let mut a = Archive::new();
        a.add_file("/usr/lib/x", 0o644, b"x".to_vec()).unwrap();
        a.add_file("init", 0o755, b"#!".to_vec()).unwrap();
        a.add_dir("usr", 0o700).unwrap(); // explicit mode replaces the implied one
        let names: Vec<_> = a.nodes.keys().map(String::as_str).collect();
        assert_eq!(names, ["init", "usr", "usr/lib", "usr/lib/x"]);
        assert_eq!(a.nodes["usr"].perm, 0o700);
        assert_eq!(a.nodes["usr/lib"].perm, IMPLIED_DIR_PERM);
        assert_eq!(a.len(), 4);
    }

    #[test]
    fn duplicates_and_conflicts_are_refused() {
        let mut a = Archive::new();
        a.add_file("etc/x", 0o644, Vec::new()).unwrap();
        assert!(matches!(
            a.add_file("./etc/x", 0o600, Vec::new()),
            Err(CpioError::Duplicate { .. })
        ));
        assert!(matches!(
            a.add_file("etc/x/y", 0o600, Vec::new()),
            Err(CpioError::ParentNotDir {
                kind: FileType::File,
                ..
            })
        ));
        assert!(matches!(
            a.add_symlink("etc", "/x"),
            Err(CpioError::DirHasChildren { .. })
        ));
        a.add_dir("etc", 0o755).unwrap();
        assert!(matches!(
            a.add_dir("etc", 0o755),
            Err(CpioError::Duplicate { .. })
        ));
        // A refused entry leaves no implied parents behind.
        assert!(a.add_file("new/dir/../x", 0o644, Vec::new()).is_err());
        assert!(!a.contains("new"));
    }

    #[test]
    fn invalid_modes_names_and_targets() {
        let mut a = Archive::new();
        assert!(matches!(
            a.add_file("x", 0o100_644, Vec::new()),
            Err(CpioError::InvalidMode { .. })
        ));
        assert!(matches!(
            a.add_file("../x", 0o644, Vec::new()),
            Err(CpioError::InvalidName { .. })
        ));
        assert!(matches!(
            a.add_symlink("l", ""),
            Err(CpioError::InvalidLinkTarget { .. })
        ));
        assert!(matches!(
            a.add_symlink("l", "a\0b"),
            Err(CpioError::InvalidLinkTarget { .. })
        ));
        assert!(a.is_empty());
    }

    #[test]
    fn exact_bytes_of_a_small_archive() {
        let mut a = Archive::new();
        a.add_file("a", 0o644, b"hi".to_vec()).unwrap();
        let bytes = a.to_bytes();
        let mut want = Vec::new();
        want.extend_from_slice(b"070701");
        for f in [1u32, 0o100_644, 0, 0, 1, 0, 2, 0, 0, 0, 0, 2, 0] {
            want.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        want.extend_from_slice(b"a\0"); // 110 + 2 = 112: no padding
        want.extend_from_slice(b"hi\0\0");
        want.extend_from_slice(b"070701");
        for f in [0u32, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0] {
            want.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        want.extend_from_slice(b"TRAILER!!!\0"); // 110 + 11 = 121: 3 bytes padding
        want.extend_from_slice(&[0, 0, 0]);
        assert_eq!(bytes, want);
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn insertion_order_does_not_matter() {
        let mut a = Archive::new();
        a.add_file("b/c", 0o644, b"1".to_vec()).unwrap();
        a.add_char_dev("dev/console", 0o600, 5, 1).unwrap();
        a.add_symlink("sbin", "bin").unwrap();
        let mut b = Archive::new();
        b.add_symlink("sbin", "bin").unwrap();
        b.add_char_dev("dev/console", 0o600, 5, 1).unwrap();
        b.add_file("b/c", 0o644, b"1".to_vec()).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
    }
}
