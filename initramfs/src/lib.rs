//! Deterministic initramfs builder for the ramdisk agent.
//!
//! Takes the agent binary, the Lease Manager's CA certificate, kernel modules from a pinned
//! Debian kernel package and optional extra files, and writes a gzip'd newc cpio image whose
//! bytes depend only on those inputs (same inputs, same sha256).
//!
//! Pure cores (no IO): [`cpio`] (writer and strict reader), [`compress`], [`modules`]
//! (`modules.dep` parsing and load order), [`secrets`] and [`pem`] (private keys never go in;
//! only CERTIFICATE blocks as trust anchors), [`pin`] (`kernel.pin`), [`image`] (the layout),
//! [`inspect`] (list/scan), [`tenant_os`] (the tenant test OS image's layout). IO shells:
//! [`kernel`] (apt-get download, sha256, dpkg -x, depmod, cache) with its commands in
//! [`tools`], [`build`] (read inputs, write `initrd.img` and `vmlinuz`) and
//! [`tenant_os_build`] (write `tenant-initrd.cpio.gz` around the static `tenant-init`).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::{Path, PathBuf};
//! let pin = initramfs::Pin::builtin()?;
//! let kernel = initramfs::KernelDir::fetch(&pin, Path::new(initramfs::kernel::DEFAULT_CACHE))?;
//! let out = initramfs::build(&initramfs::BuildSpec {
//!     agent: PathBuf::from("target/agent/init"),
//!     ca: PathBuf::from("ca.pem"),
//!     kernel,
//!     modules: vec!["virtio_pci".into(), "virtio_net".into()],
//!     files: vec![],
//!     out_dir: PathBuf::from("target/lab/boot"),
//! })?;
//! println!("{} {}", out.initrd_sha256, out.initrd.display());
//! # Ok(()) }
//! ```

pub mod build;
pub mod compress;
pub mod cpio;
mod fsio;
pub mod image;
pub mod inspect;
pub mod kernel;
pub mod modules;
pub mod pem;
pub mod pin;
pub mod secrets;
pub mod tenant_os;
pub mod tenant_os_build;
pub mod tools;

pub use build::{BuildError, BuildOutput, BuildSpec, DEFAULT_MODULES, FileMapping, build};
pub use fsio::{human_bytes, sha256_file, sha256_hex};
pub use kernel::{KernelDir, KernelError};
pub use pin::{Pin, PinError};
pub use tenant_os_build::{TenantBuildError, TenantOsOutput, build_tenant_os};
