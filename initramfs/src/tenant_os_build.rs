//! Writing the tenant test OS image on disk: read the static `tenant-init`, render (see
//! [`crate::tenant_os`]), write `<out>/tenant-initrd.cpio.gz` atomically. The IO shell.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use thiserror::Error;
use tracing::{info, warn};

use crate::build::{BuildError, read_input};
use crate::fsio::{human_bytes, sha256_hex, write_atomic};
use crate::tenant_os::{TENANT_INITRD_NAME, TenantOsError, render};

/// Why the tenant image could not be built.
#[derive(Debug, Error)]
pub enum TenantBuildError {
    #[error(transparent)]
    Input(#[from] BuildError),
    #[error("{init}: {source}")]
    Image {
        init: PathBuf,
        #[source]
        source: TenantOsError,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a tenant image build wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantOsOutput {
    pub initrd: PathBuf,
    pub sha256: String,
    pub size: u64,
    /// Size of the uncompressed cpio archive.
    pub cpio_size: u64,
    /// Entries in the archive (trailer excluded).
    pub entries: usize,
}

/// Build `<out_dir>/tenant-initrd.cpio.gz` with `init` as `/init` (`out_dir` is created).
pub fn build_tenant_os(init: &Path, out_dir: &Path) -> Result<TenantOsOutput, TenantBuildError> {
    let started = Instant::now();
    info!("tenant-os: reading /init from {}", init.display());
    let bytes = read_input("tenant init", init)?;
    if !bytes.starts_with(b"\x7fELF") {
        warn!(path = %init.display(), "the tenant init is not an ELF binary");
    }
    let image = render(&bytes).map_err(|source| TenantBuildError::Image {
        init: init.to_path_buf(),
        source,
    })?;
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TenantBuildError::Write { path, source }
    };
    fs::create_dir_all(out_dir).map_err(write_err(out_dir))?;
    let initrd = out_dir.join(TENANT_INITRD_NAME);
    write_atomic(&initrd, &image.gz).map_err(write_err(&initrd))?;
    let output = TenantOsOutput {
        initrd,
        sha256: sha256_hex(&image.gz),
        size: image.gz.len() as u64,
        cpio_size: image.cpio_size,
        entries: image.entries,
    };
    info!(
        "tenant-os: {} entries, cpio {}, gzip {}, in {:.1} s",
        output.entries,
        human_bytes(output.cpio_size),
        human_bytes(output.size),
        started.elapsed().as_secs_f64()
    );
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::list;
    use crate::tenant_os::TENANT_ENTRIES;

    #[test]
    fn two_builds_write_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let init = dir.path().join("tenant-init");
        fs::write(&init, b"\x7fELF pretend static binary").unwrap();
        let a = build_tenant_os(&init, &dir.path().join("a")).unwrap();
        let b = build_tenant_os(&init, &dir.path().join("b/c")).unwrap();
        assert_eq!(a.sha256, b.sha256);
        let (bytes_a, bytes_b) = (fs::read(&a.initrd).unwrap(), fs::read(&b.initrd).unwrap());
        assert_eq!(bytes_a, bytes_b);
        assert_eq!(a.size, bytes_a.len() as u64);
        assert_eq!(sha256_hex(&bytes_a), a.sha256);
        assert!(a.initrd.ends_with("a/tenant-initrd.cpio.gz"));
        let paths: Vec<String> = list(&bytes_a)
            .unwrap()
            .into_iter()
            .map(|r| r.path)
            .collect();
        assert_eq!(paths, TENANT_ENTRIES);
        // Only the image is left in the folder (no partial file).
        assert_eq!(fs::read_dir(dir.path().join("a")).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_init_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = build_tenant_os(&missing, dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("tenant init") && text.contains("nope"),
            "{text}"
        );
        let empty = dir.path().join("empty");
        fs::write(&empty, b"").unwrap();
        let err = build_tenant_os(&empty, dir.path()).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }
}
