//! Synthetic inputs for the integration tests: a fake extracted kernel tree (with a
//! `modules.dep` shaped like Debian's), an agent, the test CA, and a kernel cache whose
//! `ready` stamp matches a test pin so the CLI does not download anything. Does IO (temp dirs).

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

pub const RELEASE: &str = "6.1.0-99-amd64";
pub const PACKAGE: &str = "linux-image-6.1.0-99-amd64";
pub const VERSION: &str = "6.1.999-1";
pub const CA: &str = include_str!("../fixtures/test-ca.pem");

pub const MODULES_DEP: &str = "\
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko:
kernel/drivers/net/tun.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
";

/// Write `data` at `dir/rel`, creating parents.
pub fn put(dir: &Path, rel: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, data).unwrap();
    path
}

/// An extracted kernel tree under `root`: vmlinuz, every module of MODULES_DEP, modules.dep.
pub fn fake_kernel_tree(root: &Path) {
    put(root, &format!("boot/vmlinuz-{RELEASE}"), b"MZ fake bzImage");
    let mods = format!("lib/modules/{RELEASE}");
    for line in MODULES_DEP.lines() {
        let path = line.split(':').next().unwrap();
        put(
            root,
            &format!("{mods}/{path}"),
            format!("\x7fELF {path}").as_bytes(),
        );
    }
    put(root, &format!("{mods}/modules.dep"), MODULES_DEP.as_bytes());
}

/// A pin file for the fake kernel, and a cache in which that kernel is already "fetched".
/// Returns (pin file, cache dir).
pub fn fake_cache(dir: &Path) -> (PathBuf, PathBuf) {
    let pin = format!(
        "package = \"{PACKAGE}\"\nversion = \"{VERSION}\"\nsha256 = \"{}\"\n",
        "0".repeat(64)
    );
    let pin_file = put(dir, "kernel.pin", pin.as_bytes());
    let cache = dir.join("cache");
    fake_kernel_tree(&cache.join(VERSION).join("root"));
    put(&cache, &format!("{VERSION}/ready"), pin.as_bytes());
    (pin_file, cache)
}

/// The agent (an ELF-looking file) and the CA certificate, in `dir`.
pub fn agent_and_ca(dir: &Path) -> (PathBuf, PathBuf) {
    let mut agent = b"\x7fELF".to_vec();
    agent.extend((0..50_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    (put(dir, "agent", &agent), put(dir, "ca.pem", CA.as_bytes()))
}
