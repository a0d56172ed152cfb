//! Where the console writes: stdout (a closed pipe ends the command quietly, as `| head`
//! expects) and files (credential bundles only to a new file of mode 0600). IO.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;

/// The reader of stdout went away (`lease-manager events --follow | head`): not a failure.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed")]
pub struct StdoutClosed;

fn closed(e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        StdoutClosed.into()
    } else {
        anyhow::Error::new(e).context("writing to stdout")
    }
}

/// Writes `s` to stdout and flushes (streams are read live).
pub fn out(s: &str) -> anyhow::Result<()> {
    if cfg!(test) {
        // Through the test harness's capture.
        print!("{s}");
        return Ok(());
    }
    let mut o = io::stdout().lock();
    o.write_all(s.as_bytes()).map_err(closed)?;
    o.flush().map_err(closed)
}

/// Writes `s` and a newline to stdout.
pub fn out_line(s: &str) -> anyhow::Result<()> {
    out(&format!("{s}\n"))
}

/// Pretty JSON of `v` on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    out_line(&serde_json::to_string_pretty(v)?)
}

/// Creates `path`, which must not exist yet (not even as a symlink), readable by its owner
/// only (mode 0600, whatever the umask).
pub fn create_private(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| match path.try_exists() {
            Ok(true) => format!(
                "{} already exists; it is not overwritten (choose a new file name)",
                path.display()
            ),
            _ => format!("cannot create {}", path.display()),
        })
}

/// Creates `path` for an export, refusing to overwrite an existing file.
pub fn create_new(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| match path.try_exists() {
            Ok(true) => format!(
                "{} already exists; it is not overwritten (choose a new file name)",
                path.display()
            ),
            _ => format!("cannot create {}", path.display()),
        })
}

/// Replaces `path` with `bytes` atomically (a file beside it, then a rename), for data that is
/// fetched again and again (the CRL).
pub fn replace(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn private_files_are_new_and_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("acme.json");
        let mut f = create_private(&p).unwrap();
        f.write_all(b"{}").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let err = format!("{:#}", create_private(&p).unwrap_err());
        assert!(err.contains("already exists"), "{err}");
        // A symlink (even to nowhere) is not followed.
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
        assert!(create_private(&link).is_err());
        assert!(!dir.path().join("nowhere").exists());
        assert!(create_new(&p).is_err());
    }

    #[test]
    fn replace_writes_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("crl.der");
        replace(&p, b"one").unwrap();
        replace(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(!dir.path().join("crl.der.tmp").exists());
    }
}
