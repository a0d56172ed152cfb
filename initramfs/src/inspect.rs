//! Looking inside an existing image: decompress if needed, parse, list entries, scan for
//! private keys. Pure: works on bytes the caller has read.

use std::borrow::Cow;

use serde::Serialize;
use thiserror::Error;

use crate::compress::{DecompressError, gunzip_limited, is_gzip};
use crate::cpio::{Entry, FileType, ReadError, mode_string, read_archive};
use crate::secrets::{SecretFinding, find_private_key};

/// Largest uncompressed archive `list`/`scan` will expand (1 GiB).
pub const MAX_ARCHIVE: u64 = 1 << 30;

/// Why an image could not be inspected.
#[derive(Debug, Error)]
pub enum InspectError {
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    #[error("not a newc cpio archive: {0}")]
    Cpio(#[from] ReadError),
}

/// The archive bytes: gunzipped if the input is gzip, else the input itself.
pub fn decode(bytes: &[u8]) -> Result<Cow<'_, [u8]>, InspectError> {
    if is_gzip(bytes) {
        Ok(Cow::Owned(gunzip_limited(bytes, MAX_ARCHIVE)?))
    } else {
        Ok(Cow::Borrowed(bytes))
    }
}

/// One row of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListRow {
    pub path: String,
    #[serde(rename = "type")]
    pub file_type: FileType,
    /// `ls -l` style, e.g. `-rwxr-xr-x`.
    pub mode: String,
    /// Permission bits as octal text, e.g. `0755`.
    pub perm: String,
    pub size: u64,
    /// Symlink target, if a symlink.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `major:minor` of a device node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

impl ListRow {
    pub fn from_entry(e: &Entry<'_>) -> Self {
        let device = matches!(e.file_type, FileType::CharDev | FileType::BlockDev)
            .then(|| format!("{}:{}", e.rdev_major, e.rdev_minor));
        let target = (e.file_type == FileType::Symlink)
            .then(|| String::from_utf8_lossy(e.data).into_owned());
        ListRow {
            path: if e.name == "." {
                "/".to_owned()
            } else {
                format!("/{}", e.name)
            },
            file_type: e.file_type,
            mode: mode_string(e.mode),
            perm: format!("{:04o}", e.perm()),
            size: e.data.len() as u64,
            target,
            device,
        }
    }
}

/// Parse an archive (gzip'd or not) into listing rows.
pub fn list(bytes: &[u8]) -> Result<Vec<ListRow>, InspectError> {
    let archive = decode(bytes)?;
    Ok(read_archive(&archive)?
        .iter()
        .map(ListRow::from_entry)
        .collect())
}

/// A private key found in an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFinding {
    pub path: String,
    pub finding: SecretFinding,
}

/// Parse an archive and return every regular file that contains a private key.
pub fn scan(bytes: &[u8]) -> Result<Vec<EntryFinding>, InspectError> {
    let archive = decode(bytes)?;
    let entries = read_archive(&archive)?;
    Ok(entries
        .iter()
        .filter(|e| e.file_type == FileType::File)
        .filter_map(|e| {
            find_private_key(e.data).map(|finding| EntryFinding {
                path: format!("/{}", e.name),
                finding,
            })
        })
        .collect())
}

/// Render rows as an aligned text table (mode, size, path).
pub fn format_table(rows: &[ListRow]) -> String {
    let width = rows
        .iter()
        .map(|r| r.size.to_string().len())
        .max()
        .unwrap_or(1)
        .max(4);
    let mut out = format!("{:<10} {:>width$} PATH\n", "MODE", "SIZE");
    for r in rows {
        let mut line = format!("{} {:>width$} {}", r.mode, r.size, r.path);
        if let Some(t) = &r.target {
            line.push_str(&format!(" -> {}", t.escape_debug()));
        }
        if let Some(d) = &r.device {
            line.push_str(&format!(" ({d})"));
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::gzip;
    use crate::cpio::Archive;

    fn sample() -> Vec<u8> {
        let mut a = Archive::new();
        a.add_file("init", 0o755, b"agent".to_vec()).unwrap();
        a.add_char_dev("dev/console", 0o600, 5, 1).unwrap();
        a.add_symlink("sbin/init", "/init").unwrap();
        a.to_bytes()
    }

    #[test]
    fn lists_plain_and_gzip() {
        let plain = list(&sample()).unwrap();
        let gz = list(&gzip(&sample()).unwrap()).unwrap();
        assert_eq!(plain, gz);
        let table = format_table(&plain);
        assert_eq!(
            table,
            "MODE       SIZE PATH\n\
             drwxr-xr-x    0 /dev\n\
             crw-------    0 /dev/console (5:1)\n\
             -rwxr-xr-x    5 /init\n\
             drwxr-xr-x    0 /sbin\n\
             lrwxrwxrwx    5 /sbin/init -> /init\n"
        );
        let json = serde_json::to_value(&plain[2]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"path": "/init", "type": "file", "mode": "-rwxr-xr-x", "perm": "0755", "size": 5})
        );
    }

    #[test]
    fn scan_names_the_entry() {
        assert!(scan(&sample()).unwrap().is_empty());
        let mut a = Archive::new();
        a.add_file("etc/ok", 0o644, b"fine".to_vec()).unwrap();
        a.add_file(
            "etc/key.pem",
            0o600,
            b"x\n-----BEGIN RSA PRIVATE KEY-----\n".to_vec(),
        )
        .unwrap();
        let found = scan(&gzip(&a.to_bytes()).unwrap()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "/etc/key.pem");
        assert_eq!(found[0].finding.offset, 2);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(list(b"hello"), Err(InspectError::Cpio(_))));
        assert!(matches!(
            list(&[0x1f, 0x8b, 0, 0]),
            Err(InspectError::Decompress(_))
        ));
        assert!(matches!(
            scan(b""),
            Err(InspectError::Cpio(ReadError::MissingTrailer { .. }))
        ));
        let gz = gzip(b"not cpio").unwrap();
        assert!(matches!(scan(&gz), Err(InspectError::Cpio(_))));
    }
}
