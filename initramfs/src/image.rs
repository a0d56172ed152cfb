//! The initramfs layout: which entries the image holds, and rendering it to gzip'd newc bytes.
//! Pure: every input is already in memory; same inputs give the same bytes.
//!
//! ```text
//! /init                             the agent (0755)
//! /dev/console                      c 5 1 (0600), so the kernel has a console before devtmpfs
//! /dev /proc /sys /run (0755/0555)  mount points; /tmp (1777)
//! /etc/lease-manager/ca.pem         the LM CA: PEM CERTIFICATE blocks only (0644)
//! /etc/agent/modules.order          absolute module paths, dependencies first, one per line
//! /etc/agent/build-info             builder version, kernel release, module list (TOML)
//! /lib/modules/<release>/<path>     each module at its modules.dep path (0644)
//! <extra files>                     from --file SRC:DEST
//! ```
//!
//! Every regular file is checked for private keys before it goes in (see [`crate::secrets`]);
//! the image carries public trust anchors only.

use thiserror::Error;

use crate::compress::gzip;
use crate::cpio::{Archive, CpioError, ReadError, normalize, read_archive};
use crate::modules::ResolvedModule;
use crate::pem::{PemError, parse_certificates};
use crate::secrets::{SecretFinding, find_private_key};

pub const AGENT_PATH: &str = "init";
pub const CA_PATH: &str = "etc/lease-manager/ca.pem";
pub const MODULES_ORDER_PATH: &str = "etc/agent/modules.order";
pub const BUILD_INFO_PATH: &str = "etc/agent/build-info";
/// Name and version written into `build-info`.
pub const BUILDER: &str = concat!("initramfs-build ", env!("CARGO_PKG_VERSION"));

/// Why an image could not be assembled.
#[derive(Debug, Error)]
pub enum ImageError {
    #[error("{what} contains a private key ({finding}); the initramfs never carries secrets")]
    Secret {
        what: String,
        finding: SecretFinding,
    },
    #[error("CA certificate: {0}")]
    Ca(#[source] PemError),
    #[error("the agent binary is empty")]
    EmptyAgent,
    #[error("kernel release {0:?} is not a single path component")]
    BadRelease(String),
    #[error("cannot add {what}: {source}")]
    Entry {
        what: String,
        #[source]
        source: CpioError,
    },
    #[error("compressing the image: {0}")]
    Compress(#[source] std::io::Error),
    #[error("the written archive does not read back ({0}); this is a bug in the writer")]
    SelfCheck(#[source] ReadError),
}

/// A module and its `.ko` contents.
#[derive(Debug, Clone)]
pub struct ModuleFile {
    pub module: ResolvedModule,
    pub data: Vec<u8>,
}

/// An extra file: where it goes, its permission bits, its contents, and where it came from
/// (for error messages).
#[derive(Debug, Clone)]
pub struct ExtraFile {
    pub dest: String,
    pub perm: u32,
    pub data: Vec<u8>,
    pub source: String,
}

/// Everything that goes into an image.
#[derive(Debug, Clone)]
pub struct ImageInputs {
    pub agent: Vec<u8>,
    pub ca_pem: Vec<u8>,
    pub release: String,
    /// The module names as requested (recorded in build-info).
    pub requested_modules: Vec<String>,
    /// The modules in load order.
    pub modules: Vec<ModuleFile>,
    pub extra_files: Vec<ExtraFile>,
}

/// A rendered image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedImage {
    /// The gzip-compressed archive.
    pub gz: Vec<u8>,
    /// Size of the uncompressed cpio archive.
    pub cpio_size: u64,
    /// Entries in the archive (trailer excluded).
    pub entries: usize,
    /// Contents of `/etc/agent/modules.order`, one path per line.
    pub modules_order: Vec<String>,
}

fn add_file(
    archive: &mut Archive,
    what: &str,
    dest: &str,
    perm: u32,
    data: &[u8],
) -> Result<(), ImageError> {
    if let Some(finding) = find_private_key(data) {
        return Err(ImageError::Secret {
            what: what.to_owned(),
            finding,
        });
    }
    archive
        .add_file(dest, perm, data)
        .map_err(|source| ImageError::Entry {
            what: what.to_owned(),
            source,
        })
}

fn fixed_entry(result: Result<(), CpioError>, what: &str) -> Result<(), ImageError> {
    result.map_err(|source| ImageError::Entry {
        what: what.to_owned(),
        source,
    })
}

/// The absolute in-image paths of the modules, in load order.
pub fn module_paths(release: &str, modules: &[ResolvedModule]) -> Vec<String> {
    modules
        .iter()
        .map(|m| format!("/lib/modules/{release}/{}", m.path))
        .collect()
}

/// The text of `/etc/agent/build-info` (TOML; no timestamps).
pub fn build_info(release: &str, requested: &[String], modules: &[ResolvedModule]) -> String {
    let quote = |items: Vec<&str>| {
        items
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "builder = {BUILDER:?}\nkernel_release = {release:?}\nmodules_requested = [{}]\nmodules_loaded = [{}]\n",
        quote(requested.iter().map(String::as_str).collect()),
        quote(modules.iter().map(|m| m.name.as_str()).collect()),
    )
}

/// Build the archive from the inputs (see the module docs for the layout).
pub fn assemble(inputs: &ImageInputs) -> Result<Archive, ImageError> {
    let release = &inputs.release;
    if release.contains('/') || normalize(release).as_deref() != Ok(release.as_str()) {
        return Err(ImageError::BadRelease(release.clone()));
    }
    if inputs.agent.is_empty() {
        return Err(ImageError::EmptyAgent);
    }
    parse_certificates(&inputs.ca_pem).map_err(ImageError::Ca)?;

    let mut a = Archive::new();
    for (dir, perm) in [
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("run", 0o755),
        ("tmp", 0o1777),
    ] {
        fixed_entry(a.add_dir(dir, perm), dir)?;
    }
    fixed_entry(a.add_char_dev("dev/console", 0o600, 5, 1), "dev/console")?;
    add_file(
        &mut a,
        "the agent (/init)",
        AGENT_PATH,
        0o755,
        &inputs.agent,
    )?;
    add_file(&mut a, "the CA certificate", CA_PATH, 0o644, &inputs.ca_pem)?;

    let resolved: Vec<ResolvedModule> = inputs.modules.iter().map(|m| m.module.clone()).collect();
    for m in &inputs.modules {
        let dest = format!("lib/modules/{release}/{}", m.module.path);
        add_file(
            &mut a,
            &format!("module {}", m.module.name),
            &dest,
            0o644,
            &m.data,
        )?;
    }
    let order = module_paths(release, &resolved);
    let order_text: String = order.iter().map(|p| format!("{p}\n")).collect();
    add_file(
        &mut a,
        "modules.order",
        MODULES_ORDER_PATH,
        0o644,
        order_text.as_bytes(),
    )?;
    let info = build_info(release, &inputs.requested_modules, &resolved);
    add_file(
        &mut a,
        "build-info",
        BUILD_INFO_PATH,
        0o644,
        info.as_bytes(),
    )?;

    for f in &inputs.extra_files {
        let what = format!("--file {}:{}", f.source, f.dest);
        add_file(&mut a, &what, &f.dest, f.perm, &f.data)?;
    }
    Ok(a)
}

/// Assemble, write the cpio, gzip it, and read the archive back as a self-check.
pub fn render(inputs: &ImageInputs) -> Result<RenderedImage, ImageError> {
    let archive = assemble(inputs)?;
    let cpio = archive.to_bytes();
    let entries = read_archive(&cpio).map_err(ImageError::SelfCheck)?.len();
    let gz = gzip(&cpio).map_err(ImageError::Compress)?;
    let modules: Vec<ResolvedModule> = inputs.modules.iter().map(|m| m.module.clone()).collect();
    Ok(RenderedImage {
        gz,
        cpio_size: cpio.len() as u64,
        entries,
        modules_order: module_paths(&inputs.release, &modules),
    })
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
