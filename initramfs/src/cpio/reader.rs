//! Strict newc cpio reader. Pure: parses a byte slice, borrows the entry data from it.
//!
//! Checks: magic, every header field is exactly 8 hex digits, name size within limits and the
//! name NUL-terminated with no NUL inside, the name valid (see [`super::normalize`]), NUL
//! padding present after the name and the data, the data size not beyond the input, no data on
//! directories and devices, no duplicate names, a `TRAILER!!!` entry, and nothing but NUL
//! bytes after it (block padding). Used by `list`, `scan` and the round-trip tests.

use std::collections::HashSet;

use thiserror::Error;

use super::name::{MAX_NAME_LEN, NameError, normalize};
use super::{FileType, HEADER_LEN, MAGIC, PERM_MASK, S_IFMT, TRAILER, pad4};

/// Why an archive was rejected; offsets are byte offsets into the (uncompressed) archive.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReadError {
    #[error("truncated at offset {offset}: {what} needs {needed} bytes, {available} left")]
    Truncated {
        offset: usize,
        what: &'static str,
        needed: u64,
        available: usize,
    },
    #[error("bad magic {found:?} at offset {offset}; only newc (\"070701\") is supported")]
    BadMagic { offset: usize, found: String },
    #[error("header field {field} at offset {offset} is not 8 hex digits")]
    BadHex { offset: usize, field: &'static str },
    #[error("name size {size} at offset {offset} is outside 1..={max}", max = MAX_NAME_LEN + 1)]
    BadNameSize { offset: usize, size: u32 },
    #[error("name at offset {offset} is not terminated by its NUL or has a NUL inside")]
    NameNotTerminated { offset: usize },
    #[error("entry at offset {offset} has an invalid name {name:?}: {source}")]
    BadName {
        offset: usize,
        name: String,
        #[source]
        source: NameError,
    },
    #[error("non-NUL padding byte at offset {offset}")]
    BadPadding { offset: usize },
    #[error("entry {name:?} has mode {mode:#o}: unknown file type or bits above 0o177777")]
    BadMode { name: String, mode: u32 },
    #[error("entry {name:?} is a {kind:?} but carries {size} bytes of data")]
    UnexpectedData {
        name: String,
        kind: FileType,
        size: u32,
    },
    #[error("symlink {name:?} has an empty target")]
    EmptySymlink { name: String },
    #[error("entry {name:?} appears twice (second at offset {offset})")]
    Duplicate { name: String, offset: usize },
    #[error("the trailer entry at offset {offset} carries data")]
    TrailerWithData { offset: usize },
    #[error("no TRAILER!!! entry: the archive ends at offset {offset}")]
    MissingTrailer { offset: usize },
    #[error("non-NUL bytes after the trailer, first at offset {offset}")]
    TrailingGarbage { offset: usize },
}

/// One entry of an archive, with its data borrowed from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Offset of the entry's header in the archive.
    pub offset: usize,
    /// The name, normalized (equal to the stored name for archives this crate writes);
    /// `.` for a root entry as written by `find . | cpio -o`.
    pub name: String,
    pub file_type: FileType,
    /// Full mode: file type and permission bits.
    pub mode: u32,
    pub ino: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    /// File contents, or the target of a symlink.
    pub data: &'a [u8],
}

impl Entry<'_> {
    /// Permission bits (0o7777).
    pub fn perm(&self) -> u32 {
        self.mode & PERM_MASK
    }
}

const FIELD_NAMES: [&str; 13] = [
    "c_ino",
    "c_mode",
    "c_uid",
    "c_gid",
    "c_nlink",
    "c_mtime",
    "c_filesize",
    "c_devmajor",
    "c_devminor",
    "c_rdevmajor",
    "c_rdevminor",
    "c_namesize",
    "c_check",
];

/// Take `len` bytes at `pos`, or report what was being read.
fn take<'a>(
    bytes: &'a [u8],
    pos: usize,
    len: u64,
    what: &'static str,
) -> Result<&'a [u8], ReadError> {
    let available = bytes.len().saturating_sub(pos);
    let truncated = ReadError::Truncated {
        offset: pos,
        what,
        needed: len,
        available,
    };
    let len = usize::try_from(len).map_err(|_| truncated.clone())?;
    if len > available {
        return Err(truncated);
    }
    Ok(&bytes[pos..pos + len])
}

fn check_padding(bytes: &[u8], pos: usize, len: usize) -> Result<(), ReadError> {
    let pad = take(bytes, pos, len as u64, "padding")?;
    match pad.iter().position(|b| *b != 0) {
        Some(i) => Err(ReadError::BadPadding { offset: pos + i }),
        None => Ok(()),
    }
}

fn parse_hex(field: &[u8]) -> Option<u32> {
    field.iter().try_fold(0u32, |acc, b| {
        let digit = char::from(*b).to_digit(16)?;
        Some((acc << 4) | digit)
    })
}

/// Parse a whole newc archive. See the module docs for what is checked.
pub fn read_archive(bytes: &[u8]) -> Result<Vec<Entry<'_>>, ReadError> {
    let mut entries = Vec::new();
    let mut seen = HashSet::new();
    let mut pos = 0usize;
    loop {
        let offset = pos;
        if offset == bytes.len() {
            return Err(ReadError::MissingTrailer { offset });
        }
        let header = take(bytes, pos, HEADER_LEN as u64, "header")?;
        if &header[..6] != MAGIC {
            return Err(ReadError::BadMagic {
                offset,
                found: String::from_utf8_lossy(&header[..6]).into_owned(),
            });
        }
        let mut f = [0u32; 13];
        for (i, value) in f.iter_mut().enumerate() {
            let start = 6 + 8 * i;
            *value = parse_hex(&header[start..start + 8]).ok_or(ReadError::BadHex {
                offset: offset + start,
                field: FIELD_NAMES[i],
            })?;
        }
        let [
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            filesize,
            _,
            _,
            rdev_major,
            rdev_minor,
            namesize,
            _,
        ] = f;
        pos += HEADER_LEN;

        if namesize == 0 || namesize as usize > MAX_NAME_LEN + 1 {
            return Err(ReadError::BadNameSize {
                offset,
                size: namesize,
            });
        }
        let raw = take(bytes, pos, u64::from(namesize), "name")?;
        let (last, name_bytes) = raw.split_last().ok_or(ReadError::BadNameSize {
            offset,
            size: namesize,
        })?;
        if *last != 0 || name_bytes.contains(&0) {
            return Err(ReadError::NameNotTerminated { offset });
        }
        pos += raw.len();
        check_padding(bytes, pos, pad4(HEADER_LEN + raw.len()))?;
        pos += pad4(HEADER_LEN + raw.len());

        if name_bytes == TRAILER.as_bytes() {
            if filesize != 0 {
                return Err(ReadError::TrailerWithData { offset });
            }
            return match bytes[pos..].iter().position(|b| *b != 0) {
                Some(i) => Err(ReadError::TrailingGarbage { offset: pos + i }),
                None => Ok(entries),
            };
        }

        let name = match std::str::from_utf8(name_bytes) {
            Ok(".") if FileType::from_mode(mode) == Some(FileType::Dir) => Ok(".".to_owned()),
            Ok(text) => normalize(text),
            Err(_) => Err(NameError::NotUtf8),
        }
        .map_err(|source| ReadError::BadName {
            offset,
            name: String::from_utf8_lossy(name_bytes).into_owned(),
            source,
        })?;
        let file_type = FileType::from_mode(mode)
            .filter(|_| mode & !(S_IFMT | PERM_MASK) == 0)
            .ok_or_else(|| ReadError::BadMode {
                name: name.clone(),
                mode,
            })?;
        match file_type {
            FileType::File => {}
            FileType::Symlink if filesize == 0 => {
                return Err(ReadError::EmptySymlink { name });
            }
            FileType::Symlink => {}
            kind if filesize != 0 => {
                return Err(ReadError::UnexpectedData {
                    name,
                    kind,
                    size: filesize,
                });
            }
            _ => {}
        }
        let data = take(bytes, pos, u64::from(filesize), "entry data")?;
        pos += data.len();
        check_padding(bytes, pos, pad4(data.len()))?;
        pos += pad4(data.len());

        if !seen.insert(name.clone()) {
            return Err(ReadError::Duplicate { name, offset });
        }
        entries.push(Entry {
            offset,
            name,
            file_type,
            mode,
            ino,
            uid,
            gid,
            nlink,
            mtime,
            rdev_major,
            rdev_minor,
            data,
        });
    }
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
