//! File helpers for the state folder: whole-file atomic replacement with fsync (records that
//! must survive a crash), private files of mode 0600 (keys), private folders of mode 0700, and
//! reads whose errors name the path. IO.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Creates `dir` (and parents) if missing, and makes it mode 0700.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} private (mode 0700)", dir.display()))
}

fn tmp_path(path: &Path) -> anyhow::Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let mut tmp = name.to_os_string();
    tmp.push(".tmp");
    Ok(path.with_file_name(tmp))
}

/// Replaces `path` with `bytes` atomically and durably: a private file beside it (mode 0600),
/// fsync, rename over `path`, fsync of the folder. After a crash `path` holds either the old
/// or the new bytes.
pub fn replace_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = tmp_path(path)?;
    let write = || -> io::Result<()> {
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

/// Creates `path` with `bytes`, mode 0600, refusing to replace an existing file (or symlink).
pub fn create_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| match path.symlink_metadata() {
            Ok(_) => format!("{} already exists; it is not overwritten", path.display()),
            Err(_) => format!("cannot create {}", path.display()),
        })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Reads `path`, or `None` when it does not exist.
pub fn read_optional(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Refuses a key file that others can read (mode must be 0600 or stricter).
pub fn check_private(path: &Path) -> anyhow::Result<()> {
    let mode = fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{} is readable by others (mode {:o}); it holds a secret: run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_is_whole_and_private() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("leases.json");
        replace_private(&p, b"one").unwrap();
        replace_private(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!d.path().join("leases.json.tmp").exists());
        check_private(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(format!("{:#}", check_private(&p).unwrap_err()).contains("chmod 600"));
    }

    #[test]
    fn create_private_never_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        create_private(&p, b"secret").unwrap();
        let e = format!("{:#}", create_private(&p, b"other").unwrap_err());
        assert!(e.contains("already exists"), "{e}");
        assert_eq!(fs::read(&p).unwrap(), b"secret");
        let link = d.path().join("link");
        std::os::unix::fs::symlink(d.path().join("nowhere"), &link).unwrap();
        assert!(create_private(&link, b"x").is_err());
        assert!(!d.path().join("nowhere").exists());
        assert_eq!(read_optional(&d.path().join("none")).unwrap(), None);
    }
}
