//! Tests of `kernel.rs` with a fake package toolset: the cache, the checksum, the
//! "version gone" message, the index refresh, the layout checks.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::*;
use crate::fsio::sha256_hex;

const RELEASE: &str = "6.1.0-99-amd64";
const PACKAGE: &str = "linux-image-6.1.0-99-amd64";

/// A fake apt/dpkg/depmod. The "archive" maps package=version to .deb bytes; `extract`
/// writes a minimal kernel tree, `depmod` writes a modules.dep. Every call is recorded.
struct FakeTools {
    archive: HashMap<String, Vec<u8>>,
    index: Cell<bool>,
    calls: RefCell<Vec<String>>,
}

impl FakeTools {
    fn new(deb: &[u8], index: bool) -> Self {
        let mut archive = HashMap::new();
        archive.insert(format!("{PACKAGE}=1.0-1"), deb.to_vec());
        FakeTools {
            archive,
            index: Cell::new(index),
            calls: RefCell::new(Vec::new()),
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    fn fail(&self, command: &str, output: &str) -> ToolFailure {
        ToolFailure {
            command: command.to_owned(),
            status: Some(100),
            output: output.to_owned(),
        }
    }
}

impl PackageTools for FakeTools {
    fn download(&self, dir: &Path, package: &str, version: &str) -> Result<(), ToolFailure> {
        self.calls.borrow_mut().push("download".into());
        if !self.index.get() {
            return Err(self.fail("apt-get download", "E: Unable to locate package"));
        }
        let key = format!("{package}={version}");
        let data = self.archive.get(&key).ok_or_else(|| {
            self.fail(
                "apt-get download",
                "E: Can't find a source to download version",
            )
        })?;
        let name = format!("{package}_{version}_amd64.deb");
        fs::write(dir.join(name), data).map_err(|e| self.fail("write", &e.to_string()))
    }

    fn index_present(&self) -> bool {
        self.index.get()
    }

    fn update_index(&self) -> Result<(), ToolFailure> {
        self.calls.borrow_mut().push("update".into());
        self.index.set(true);
        Ok(())
    }

    fn extract(&self, _deb: &Path, dest: &Path) -> Result<(), ToolFailure> {
        self.calls.borrow_mut().push("extract".into());
        let w = |p: &str, data: &[u8]| -> io::Result<()> {
            let path = dest.join(p);
            fs::create_dir_all(path.parent().unwrap_or(dest))?;
            fs::write(path, data)
        };
        w(&format!("boot/vmlinuz-{RELEASE}"), b"bzImage")
            .and_then(|()| {
                w(
                    &format!("lib/modules/{RELEASE}/kernel/net/tun.ko"),
                    b"\x7fELF tun",
                )
            })
            .map_err(|e| self.fail("dpkg -x", &e.to_string()))
    }

    fn depmod(&self, root: &Path, release: &str) -> Result<(), ToolFailure> {
        self.calls.borrow_mut().push("depmod".into());
        let path = root.join("lib/modules").join(release).join("modules.dep");
        fs::write(path, "kernel/net/tun.ko:\n").map_err(|e| self.fail("depmod", &e.to_string()))
    }
}

fn pin_for(deb: &[u8]) -> Pin {
    Pin::new(PACKAGE, "1.0-1", &sha256_hex(deb)).unwrap()
}

#[test]
fn fetch_then_cached() {
    let cache = tempfile::tempdir().unwrap();
    let deb = b"fake deb bytes";
    let tools = FakeTools::new(deb, true);
    let kernel = KernelDir::fetch_with(&pin_for(deb), cache.path(), &tools).unwrap();
    assert_eq!(tools.calls(), ["download", "extract", "depmod"]);
    assert_eq!(kernel.release, RELEASE);
    assert_eq!(fs::read(&kernel.vmlinuz).unwrap(), b"bzImage");
    assert!(kernel.modules_dir.join("modules.dep").is_file());
    assert_eq!(
        fs::read_to_string(cache.path().join("1.0-1/ready")).unwrap(),
        pin_for(deb).to_toml()
    );

    // Second run: nothing is run again.
    let again = KernelDir::fetch_with(&pin_for(deb), cache.path(), &tools).unwrap();
    assert_eq!(again, kernel);
    assert_eq!(tools.calls().len(), 3);
}

#[test]
fn a_cached_deb_with_the_right_hash_is_not_downloaded_again() {
    let cache = tempfile::tempdir().unwrap();
    let deb = b"fake deb bytes";
    let pin = pin_for(deb);
    fs::write(cache.path().join(pin.deb_file_name(ARCH)), deb).unwrap();
    let tools = FakeTools::new(deb, true);
    KernelDir::fetch_with(&pin, cache.path(), &tools).unwrap();
    assert_eq!(tools.calls(), ["extract", "depmod"]);
}

#[test]
fn a_stamp_for_another_pin_is_not_trusted() {
    let cache = tempfile::tempdir().unwrap();
    let deb = b"fake deb bytes";
    let tools = FakeTools::new(deb, true);
    KernelDir::fetch_with(&pin_for(deb), cache.path(), &tools).unwrap();
    fs::write(cache.path().join("1.0-1/ready"), "package = \"other\"\n").unwrap();
    KernelDir::fetch_with(&pin_for(deb), cache.path(), &tools).unwrap();
    assert_eq!(
        tools.calls(),
        ["download", "extract", "depmod", "extract", "depmod"]
    );
}

#[test]
fn hash_mismatch_is_refused_and_the_file_set_aside() {
    let cache = tempfile::tempdir().unwrap();
    let tools = FakeTools::new(b"tampered", true);
    let err = KernelDir::fetch_with(&pin_for(b"expected"), cache.path(), &tools).unwrap_err();
    let KernelError::HashMismatch {
        rejected, actual, ..
    } = &err
    else {
        panic!("wrong error: {err}");
    };
    assert_eq!(actual, &sha256_hex(b"tampered"));
    assert!(rejected.is_file());
    assert!(!cache.path().join("1.0-1/ready").exists());
    assert_eq!(tools.calls(), ["download"]);
}

#[test]
fn a_vanished_version_says_how_to_find_the_current_one() {
    let cache = tempfile::tempdir().unwrap();
    let tools = FakeTools::new(b"x", true);
    let pin = Pin::new(PACKAGE, "0.9-1", &"0".repeat(64)).unwrap();
    let err = KernelDir::fetch_with(&pin, cache.path(), &tools).unwrap_err();
    assert!(matches!(err, KernelError::Unavailable { .. }));
    let text = err.to_string();
    for needle in [
        "linux-image-6.1.0-99-amd64=0.9-1",
        "apt-cache depends linux-image-amd64",
        "--package/--version/--sha256",
        "kernel.pin",
        "Can't find a source",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
    // The index was present, so no `apt-get update` was tried.
    assert_eq!(tools.calls(), ["download"]);
}

#[test]
fn a_missing_index_is_refreshed_once() {
    let cache = tempfile::tempdir().unwrap();
    let deb = b"deb";
    let tools = FakeTools::new(deb, false);
    KernelDir::fetch_with(&pin_for(deb), cache.path(), &tools).unwrap();
    assert_eq!(
        tools.calls(),
        ["download", "update", "download", "extract", "depmod"]
    );
}

#[test]
fn open_checks_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let err = KernelDir::open(dir.path(), RELEASE).unwrap_err();
    assert!(matches!(err, KernelError::Layout { what, .. } if what.starts_with("boot/")));
    fs::create_dir_all(dir.path().join("boot")).unwrap();
    fs::write(dir.path().join(format!("boot/vmlinuz-{RELEASE}")), b"k").unwrap();
    let mods = dir.path().join(format!("lib/modules/{RELEASE}"));
    fs::create_dir_all(&mods).unwrap();
    let err = KernelDir::open(dir.path(), RELEASE).unwrap_err();
    assert!(err.to_string().contains("depmod"), "{err}");
    fs::write(mods.join("modules.dep"), "").unwrap();
    assert!(KernelDir::open(dir.path(), RELEASE).is_ok());
}
