//! TFTP file names -> files under the served root.
//!
//! [`map_request`] and [`map_path`] are pure: they turn the name a client asked for into a
//! [`RelPath`] made only of normal components, or refuse it with a [`PathRefused`] reason. No
//! URL decoding is done (`%2e%2e` is a literal name). [`open_in_root`] is the one function here
//! that does IO: it canonicalizes the joined path, requires it to stay under the canonical root
//! (which defeats symlinks pointing out), opens it and checks it is a regular file.
//!
//! Rules, in order: a non-UTF-8 name, an empty name, a name over [`MAX_NAME_BYTES`], a NUL byte
//! or any control character is refused. `\` is a separator (`..\..\x` is `../../x`). A drive
//! prefix (`C:`) in the first component is refused. Empty and `.` components are dropped, so one
//! or more leading `/` mean the root (`/undionly.kpxe`, `//etc/passwd` -> `root/etc/passwd`); any
//! `..` component is refused, even one that would stay inside the root (`a/../b`).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Longest accepted file name, in bytes (the usual `NAME_MAX`; PXE ROMs send far less).
pub const MAX_NAME_BYTES: usize = 255;

/// Why a requested name was refused before touching the disk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathRefused {
    /// The name is empty.
    #[error("the file name is empty")]
    Empty,
    /// The name is not UTF-8.
    #[error("the file name is not UTF-8")]
    NotUtf8,
    /// The name is longer than [`MAX_NAME_BYTES`].
    #[error("the file name is {len} bytes long, more than {max}")]
    TooLong {
        /// Length of the name in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name holds a NUL byte.
    #[error("the file name holds a NUL byte at byte {at}")]
    Nul {
        /// Byte offset of the NUL.
        at: usize,
    },
    /// The name holds a control character (C0, DEL or C1).
    #[error("the file name holds control character {ch:?} at byte {at}")]
    ControlChar {
        /// The character.
        ch: char,
        /// Byte offset of the character.
        at: usize,
    },
    /// The name has a `..` component (after treating `\` as a separator).
    #[error("the file name has a '..' component")]
    ParentDir,
    /// The name starts with a drive prefix such as `C:`.
    #[error("the file name starts with the drive prefix {prefix:?}")]
    DrivePrefix {
        /// The prefix, e.g. `C:`.
        prefix: String,
    },
    /// The name has no component left (`/`, `.`, `//./`): it names the root, not a file.
    #[error("the file name names the served root itself, not a file")]
    NamesRoot,
}

/// A requested name that passed the rules: normal components only, joined under a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelPath {
    rel: String,
    joined: PathBuf,
}

impl RelPath {
    /// The normalized relative name, components joined with `/` (for logs and events).
    pub fn as_str(&self) -> &str {
        &self.rel
    }

    /// The root joined with the relative name (not canonicalized; see [`open_in_root`]).
    pub fn joined(&self) -> &Path {
        &self.joined
    }
}

/// Maps the name a client asked for to a path under `root`, or refuses it. Pure.
pub fn map_request(root: &Path, requested: &str) -> Result<RelPath, PathRefused> {
    if requested.is_empty() {
        return Err(PathRefused::Empty);
    }
    if requested.len() > MAX_NAME_BYTES {
        return Err(PathRefused::TooLong {
            len: requested.len(),
            max: MAX_NAME_BYTES,
        });
    }
    for (at, ch) in requested.char_indices() {
        if ch == '\0' {
            return Err(PathRefused::Nul { at });
        }
        if ch.is_control() {
            return Err(PathRefused::ControlChar { ch, at });
        }
    }
    let slashed = requested.replace('\\', "/");
    let mut parts = Vec::new();
    for part in slashed.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(PathRefused::ParentDir),
            normal => parts.push(normal),
        }
    }
    if let Some(first) = parts.first()
        && let [letter, b':', ..] = first.as_bytes()
        && letter.is_ascii_alphabetic()
    {
        return Err(PathRefused::DrivePrefix {
            prefix: first.chars().take(2).collect(),
        });
    }
    if parts.is_empty() {
        return Err(PathRefused::NamesRoot);
    }
    let rel = parts.join("/");
    let joined = parts.iter().fold(root.to_path_buf(), |acc, p| acc.join(p));
    Ok(RelPath { rel, joined })
}

/// [`map_request`] for a name as raw bytes (the request's): non-UTF-8 is refused.
pub fn map_path(root: &Path, requested: &Path) -> Result<RelPath, PathRefused> {
    let name = requested.to_str().ok_or(PathRefused::NotUtf8)?;
    map_request(root, name)
}

/// A printable form of a requested name for logs and events: lossy UTF-8, control characters
/// escaped, at most 128 characters.
pub fn display_name(requested: &OsStr) -> String {
    requested
        .to_string_lossy()
        .chars()
        .take(128)
        .flat_map(char::escape_debug)
        .collect()
}

/// Why a mapped name could not be served from disk.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Nothing exists at the name (or a symlink in it dangles).
    #[error("{rel}: no such file under the TFTP root")]
    Missing {
        /// The requested relative name.
        rel: String,
    },
    /// The name resolves (through a symlink) to somewhere outside the root.
    #[error("{rel}: resolves to {} outside the TFTP root {}", target.display(), root.display())]
    OutsideRoot {
        /// The requested relative name.
        rel: String,
        /// Where it resolved to.
        target: PathBuf,
        /// The canonical root.
        root: PathBuf,
    },
    /// The name is a directory, device, socket or FIFO.
    #[error("{rel}: not a regular file")]
    NotAFile {
        /// The requested relative name.
        rel: String,
    },
    /// Any other IO failure (permissions, symlink loop, ...).
    #[error("{rel}: {source}")]
    Io {
        /// The requested relative name.
        rel: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// An opened regular file under the root.
#[derive(Debug)]
pub struct OpenedFile {
    /// The open file.
    pub file: File,
    /// Its length at open time (`fstat`).
    pub len: u64,
    /// Its canonical path.
    pub path: PathBuf,
}

/// Opens `mapped` if it resolves to a regular file under `canonical_root` (which must already be
/// canonical, see [`std::fs::canonicalize`]). Does IO: canonicalize, open, fstat.
///
/// The file type is checked on the opened descriptor, so a swap between the check and the open
/// cannot hand out a directory; the root itself is trusted (operator-owned).
pub fn open_in_root(canonical_root: &Path, mapped: &RelPath) -> Result<OpenedFile, ResolveError> {
    let rel = || mapped.as_str().to_owned();
    let io_err = |source: io::Error| match source.kind() {
        io::ErrorKind::NotFound => ResolveError::Missing { rel: rel() },
        _ => ResolveError::Io { rel: rel(), source },
    };
    let target = std::fs::canonicalize(mapped.joined()).map_err(io_err)?;
    if !target.starts_with(canonical_root) {
        return Err(ResolveError::OutsideRoot {
            rel: rel(),
            target,
            root: canonical_root.to_path_buf(),
        });
    }
    let file = File::open(&target).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(ResolveError::NotAFile { rel: rel() });
    }
    Ok(OpenedFile {
        file,
        len: meta.len(),
        path: target,
    })
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod tests;
