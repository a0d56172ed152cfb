//! Building an image on disk: read the inputs, resolve the modules, render (see
//! [`crate::image`]), write `initrd.img` and copy `vmlinuz`. The IO shell around the pure
//! layout; not a cargo build script.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use thiserror::Error;
use tracing::{info, warn};

use crate::fsio::{human_bytes, sha256_hex, write_atomic};
use crate::image::{ExtraFile, ImageError, ImageInputs, ModuleFile, render};
use crate::kernel::KernelDir;
use crate::modules::{ModulesDep, ModulesError};

/// The modules a lab guest needs when nothing else is asked for.
pub const DEFAULT_MODULES: &str = "virtio_pci virtio_net virtio_blk e1000 e1000e tun";
/// File name of the image in the output directory.
pub const INITRD_NAME: &str = "initrd.img";
/// File name of the kernel copy in the output directory.
pub const VMLINUZ_NAME: &str = "vmlinuz";
/// Largest input file read into memory (the agent, a module, an extra file).
pub const MAX_INPUT: u64 = 512 << 20;

/// Why a build failed.
#[derive(Debug, Error)]
pub enum BuildError {
    #[error("reading {what} {path}: {source}")]
    Read {
        what: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} {path} is not a regular file")]
    NotAFile { what: String, path: PathBuf },
    #[error("{what} {path} has {size} bytes; the limit is {MAX_INPUT}")]
    TooLarge {
        what: String,
        path: PathBuf,
        size: u64,
    },
    #[error("{path} is not UTF-8 text")]
    NotText { path: PathBuf },
    #[error("{path}: {source}")]
    Modules {
        path: PathBuf,
        #[source]
        source: ModulesError,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// `--file SRC:DEST`: a host file and its absolute path in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMapping {
    pub src: PathBuf,
    pub dest: String,
}

/// A `--file` argument without a `:` or with an empty side.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("expected SRC:DEST (split at the last ':'), got {0:?}")]
pub struct FileMappingError(String);

impl FromStr for FileMapping {
    type Err = FileMappingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.rsplit_once(':') {
            Some((src, dest)) if !src.is_empty() && !dest.is_empty() => Ok(FileMapping {
                src: PathBuf::from(src),
                dest: dest.to_owned(),
            }),
            _ => Err(FileMappingError(s.to_owned())),
        }
    }
}

impl fmt::Display for FileMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.src.display(), self.dest)
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// The agent binary; becomes `/init`.
    pub agent: PathBuf,
    /// The Lease Manager CA certificate (PEM); becomes `/etc/lease-manager/ca.pem`.
    pub ca: PathBuf,
    pub kernel: KernelDir,
    /// Module names to load (with their dependencies), in the order wanted.
    pub modules: Vec<String>,
    pub files: Vec<FileMapping>,
    /// Where `initrd.img` and `vmlinuz` are written (created if missing).
    pub out_dir: PathBuf,
}

/// What a build wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutput {
    pub initrd: PathBuf,
    pub initrd_sha256: String,
    pub initrd_size: u64,
    pub vmlinuz: PathBuf,
    pub vmlinuz_sha256: String,
    pub vmlinuz_size: u64,
    /// Size of the uncompressed cpio archive.
    pub cpio_size: u64,
    /// Entries in the archive (trailer excluded).
    pub entries: usize,
    /// The module load order, as written to `/etc/agent/modules.order`.
    pub modules_order: Vec<String>,
}

/// Read a whole regular file of at most [`MAX_INPUT`] bytes.
pub fn read_input(what: &str, path: &Path) -> Result<Vec<u8>, BuildError> {
    let read_err = |source| BuildError::Read {
        what: what.to_owned(),
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(read_err)?;
    if !meta.is_file() {
        return Err(BuildError::NotAFile {
            what: what.to_owned(),
            path: path.to_path_buf(),
        });
    }
    if meta.len() > MAX_INPUT {
        return Err(BuildError::TooLarge {
            what: what.to_owned(),
            path: path.to_path_buf(),
            size: meta.len(),
        });
    }
    fs::read(path).map_err(read_err)
}

/// Permission bits of an extra file: 0755 if the source has any execute bit, else 0644.
fn extra_perm(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    match fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o111 != 0 => 0o755,
        _ => 0o644,
    }
}

/// Read the inputs of `spec` into memory.
pub fn load_inputs(spec: &BuildSpec) -> Result<ImageInputs, BuildError> {
    let agent = read_input("agent", &spec.agent)?;
    if !agent.starts_with(b"\x7fELF") {
        warn!(path = %spec.agent.display(), "the agent is not an ELF binary");
    }
    let ca_pem = read_input("CA certificate", &spec.ca)?;

    let dep_path = spec.kernel.modules_dir.join("modules.dep");
    let dep_bytes = read_input("modules.dep", &dep_path)?;
    let dep_text = std::str::from_utf8(&dep_bytes).map_err(|_| BuildError::NotText {
        path: dep_path.clone(),
    })?;
    let dep = ModulesDep::parse(dep_text).map_err(|source| BuildError::Modules {
        path: dep_path.clone(),
        source,
    })?;
    let order = dep
        .resolve(&spec.modules)
        .map_err(|source| BuildError::Modules {
            path: dep_path.clone(),
            source,
        })?;
    let mut modules = Vec::with_capacity(order.len());
    for module in order {
        let path = spec.kernel.modules_dir.join(&module.path);
        let data = read_input(&format!("module {}", module.name), &path)?;
        modules.push(ModuleFile { module, data });
    }

    let mut extra_files = Vec::with_capacity(spec.files.len());
    for file in &spec.files {
        let data = read_input(&format!("--file {file}"), &file.src)?;
        extra_files.push(ExtraFile {
            dest: file.dest.clone(),
            perm: extra_perm(&file.src),
            data,
            source: file.src.display().to_string(),
        });
    }
    Ok(ImageInputs {
        agent,
        ca_pem,
        release: spec.kernel.release.clone(),
        requested_modules: spec.modules.clone(),
        modules,
        extra_files,
    })
}

/// Build the image: read, resolve, render, write `initrd.img` and `vmlinuz` into `out_dir`.
pub fn build(spec: &BuildSpec) -> Result<BuildOutput, BuildError> {
    let started = Instant::now();
    let inputs = load_inputs(spec)?;
    let image = render(&inputs)?;
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Write { path, source }
    };
    fs::create_dir_all(&spec.out_dir).map_err(write_err(&spec.out_dir))?;
    let initrd = spec.out_dir.join(INITRD_NAME);
    write_atomic(&initrd, &image.gz).map_err(write_err(&initrd))?;
    let kernel = read_input("kernel image", &spec.kernel.vmlinuz)?;
    let vmlinuz = spec.out_dir.join(VMLINUZ_NAME);
    write_atomic(&vmlinuz, &kernel).map_err(write_err(&vmlinuz))?;

    let output = BuildOutput {
        initrd,
        initrd_sha256: sha256_hex(&image.gz),
        initrd_size: image.gz.len() as u64,
        vmlinuz,
        vmlinuz_sha256: sha256_hex(&kernel),
        vmlinuz_size: kernel.len() as u64,
        cpio_size: image.cpio_size,
        entries: image.entries,
        modules_order: image.modules_order,
    };
    info!(
        "build: {} entries, cpio {}, gzip {}, {} modules, in {:.1} s",
        output.entries,
        human_bytes(output.cpio_size),
        human_bytes(output.initrd_size),
        output.modules_order.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_mappings() {
        let m: FileMapping = "a/b:c:/etc/x".parse().unwrap();
        assert_eq!(m.src, PathBuf::from("a/b:c"));
        assert_eq!(m.dest, "/etc/x");
        assert_eq!(m.to_string(), "a/b:c:/etc/x");
        for bad in ["nocolon", ":/x", "src:", ""] {
            assert!(bad.parse::<FileMapping>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn inputs_must_be_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_input("agent", dir.path()),
            Err(BuildError::NotAFile { .. })
        ));
        let err = read_input("agent", &dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("reading agent"), "{err}");
    }

    #[test]
    fn execute_bits_decide_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, b"x").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(extra_perm(&f), 0o644);
        fs::set_permissions(&f, fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(extra_perm(&f), 0o755);
    }
}
