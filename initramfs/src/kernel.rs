//! The pinned Debian kernel: download, verify, extract, depmod, cached. Does IO (files and
//! the commands of [`crate::tools`]).
//!
//! Cache layout (default `target/lab/kernel`):
//!
//! ```text
//! <cache>/.lock                                  held while a fetch runs
//! <cache>/<package>_<version>_amd64.deb          the downloaded package (sha256 checked)
//! <cache>/<version>/root/boot/vmlinuz-<release>  dpkg -x output
//! <cache>/<version>/root/lib/modules/<release>/  modules + modules.dep (from depmod)
//! <cache>/<version>/ready                        stamp: the pin; present = usable, next run instant
//! ```

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use thiserror::Error;
use tracing::info;

use crate::fsio::{human_bytes, sha256_file, tree_size, write_atomic};
use crate::pin::Pin;
use crate::tools::{PackageTools, SystemTools, ToolFailure};

/// Default cache directory, relative to the working directory.
pub const DEFAULT_CACHE: &str = "target/lab/kernel";
/// Architecture of the kernel package.
pub const ARCH: &str = "amd64";

/// Why the kernel could not be fetched or opened.
#[derive(Debug, Error)]
pub enum KernelError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot download {package}={version}: {failure}\n\
         Debian replaces security kernels, so the pinned version may be gone. Find the current \
         one with `apt-cache depends linux-image-amd64` (after `apt-get update`), download it and \
         take its sha256, then pass --package/--version/--sha256 or edit initramfs/kernel.pin"
    )]
    Unavailable {
        package: String,
        version: String,
        failure: ToolFailure,
    },
    #[error("`apt-get download` succeeded but {path} is not there")]
    DebMissing { path: PathBuf },
    #[error(
        "sha256 of {path} is {actual}, the pin says {expected}; the file was moved to \
         {rejected} (if Debian rebuilt the package, check it and update the pin)"
    )]
    HashMismatch {
        path: PathBuf,
        rejected: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{step} failed: {failure}")]
    Tool {
        step: &'static str,
        failure: ToolFailure,
    },
    #[error("kernel tree {root} has no {what} for release {release}")]
    Layout {
        root: PathBuf,
        release: String,
        what: &'static str,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> KernelError + 'a {
    move |source| KernelError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// An extracted kernel: the image and the module directory (with `modules.dep`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelDir {
    /// Kernel release, the directory name under `/lib/modules` (`6.1.0-56-amd64`).
    pub release: String,
    /// The extracted package root.
    pub root: PathBuf,
    /// `<root>/lib/modules/<release>`.
    pub modules_dir: PathBuf,
    /// `<root>/boot/vmlinuz-<release>`.
    pub vmlinuz: PathBuf,
}

impl KernelDir {
    /// Open an extracted kernel tree, checking that the image, the module directory and
    /// `modules.dep` are there.
    pub fn open(root: &Path, release: &str) -> Result<Self, KernelError> {
        let layout = |what| KernelError::Layout {
            root: root.to_path_buf(),
            release: release.to_owned(),
            what,
        };
        let vmlinuz = root.join("boot").join(format!("vmlinuz-{release}"));
        if !vmlinuz.is_file() {
            return Err(layout("boot/vmlinuz-<release>"));
        }
        let modules_dir = root.join("lib/modules").join(release);
        if !modules_dir.is_dir() {
            return Err(layout("lib/modules/<release> directory"));
        }
        if !modules_dir.join("modules.dep").is_file() {
            return Err(layout("modules.dep (run depmod -b <root> <release>)"));
        }
        Ok(KernelDir {
            release: release.to_owned(),
            root: root.to_path_buf(),
            modules_dir,
            vmlinuz,
        })
    }

    /// Fetch the pinned kernel into `cache` with the machine's apt/dpkg/depmod.
    pub fn fetch(pin: &Pin, cache: &Path) -> Result<Self, KernelError> {
        Self::fetch_with(pin, cache, &SystemTools)
    }

    /// [`KernelDir::fetch`] with the given tools.
    pub fn fetch_with(
        pin: &Pin,
        cache: &Path,
        tools: &dyn PackageTools,
    ) -> Result<Self, KernelError> {
        let version_dir = cache.join(pin.version());
        let root = version_dir.join("root");
        let stamp = version_dir.join("ready");
        if fs::read_to_string(&stamp).is_ok_and(|s| s == pin.to_toml()) {
            info!(path = %root.display(), "kernel {} {} ready (cached)", pin.package(), pin.version());
            return Self::open(&root, pin.release());
        }
        fs::create_dir_all(cache).map_err(io_err("create", cache))?;
        let lock_path = cache.join(".lock");
        let lock = File::create(&lock_path).map_err(io_err("create", &lock_path))?;
        lock.lock().map_err(io_err("lock", &lock_path))?;
        // Another fetch may have finished while we waited for the lock.
        if fs::read_to_string(&stamp).is_ok_and(|s| s == pin.to_toml()) {
            return Self::open(&root, pin.release());
        }

        let deb = cache.join(pin.deb_file_name(ARCH));
        let cached = deb
            .is_file()
            .then(|| sha256_file(&deb).ok())
            .flatten()
            .filter(|(hash, _)| hash == pin.sha256());
        match cached {
            Some((hash, size)) => {
                info!(
                    "download: {} ({}) already in the cache",
                    deb.display(),
                    human_bytes(size)
                );
                info!("verify: sha256 {hash} ok");
            }
            None => {
                download(pin, cache, &deb, tools)?;
                verify(pin, &deb)?;
            }
        }
        fs::remove_file(&stamp)
            .or_else(ignore_missing)
            .map_err(io_err("remove", &stamp))?;
        extract(pin, &deb, &version_dir, &root, tools)?;

        let started = Instant::now();
        tools
            .depmod(&root, pin.release())
            .map_err(|failure| KernelError::Tool {
                step: "depmod",
                failure,
            })?;
        let kernel = Self::open(&root, pin.release())?;
        let dep_file = kernel.modules_dir.join("modules.dep");
        let dep_text = fs::read_to_string(&dep_file).map_err(io_err("read", &dep_file))?;
        info!(
            "depmod: {} ({} modules, {}) in {:.1} s",
            dep_file.display(),
            dep_text.lines().count(),
            human_bytes(dep_text.len() as u64),
            started.elapsed().as_secs_f64()
        );
        write_atomic(&stamp, pin.to_toml().as_bytes()).map_err(io_err("write", &stamp))?;
        Ok(kernel)
    }
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

fn download(
    pin: &Pin,
    cache: &Path,
    deb: &Path,
    tools: &dyn PackageTools,
) -> Result<(), KernelError> {
    let started = Instant::now();
    if deb.exists() {
        fs::remove_file(deb).map_err(io_err("remove", deb))?;
    }
    info!(
        "download: apt-get download {}={}",
        pin.package(),
        pin.version()
    );
    let unavailable = |failure| KernelError::Unavailable {
        package: pin.package().to_owned(),
        version: pin.version().to_owned(),
        failure,
    };
    if let Err(first) = tools.download(cache, pin.package(), pin.version()) {
        if tools.index_present() {
            return Err(unavailable(first));
        }
        info!("download: apt has no package index; running apt-get update");
        tools.update_index().map_err(|failure| KernelError::Tool {
            step: "apt-get update",
            failure,
        })?;
        tools
            .download(cache, pin.package(), pin.version())
            .map_err(unavailable)?;
    }
    let size = fs::metadata(deb)
        .map_err(|_| KernelError::DebMissing {
            path: deb.to_path_buf(),
        })?
        .len();
    info!(
        "download: {} ({}) in {:.1} s",
        deb.display(),
        human_bytes(size),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn verify(pin: &Pin, deb: &Path) -> Result<(), KernelError> {
    let started = Instant::now();
    let (actual, size) = sha256_file(deb).map_err(io_err("read", deb))?;
    if actual != pin.sha256() {
        let rejected = deb.with_extension("deb.rejected");
        fs::rename(deb, &rejected).map_err(io_err("rename", deb))?;
        return Err(KernelError::HashMismatch {
            path: deb.to_path_buf(),
            rejected,
            expected: pin.sha256().to_owned(),
            actual,
        });
    }
    info!(
        "verify: sha256 {actual} ok ({}, {:.1} s)",
        human_bytes(size),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn extract(
    pin: &Pin,
    deb: &Path,
    version_dir: &Path,
    root: &Path,
    tools: &dyn PackageTools,
) -> Result<(), KernelError> {
    let started = Instant::now();
    let partial = version_dir.join(format!("root.partial-{}", std::process::id()));
    for dir in [&partial, &root.to_path_buf()] {
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(io_err("remove", dir))?;
        }
    }
    fs::create_dir_all(&partial).map_err(io_err("create", &partial))?;
    tools
        .extract(deb, &partial)
        .map_err(|failure| KernelError::Tool {
            step: "dpkg -x",
            failure,
        })?;
    fs::rename(&partial, root).map_err(io_err("rename", &partial))?;
    let (bytes, files) = tree_size(root).map_err(io_err("measure", root))?;
    info!(
        "extract: {} -> {} ({} files, {}) in {:.1} s",
        pin.package(),
        root.display(),
        files,
        human_bytes(bytes),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
#[path = "kernel_tests.rs"]
mod tests;
