//! Kernel module loading from the list the initramfs builder writes.
//!
//! Does IO (reads the list, opens `.ko` files, calls `finit_module`). The list,
//! [`MODULES_ORDER`], holds one absolute path per line, dependencies first; blank lines and
//! `#` comments are skipped. A module that is already loaded (EEXIST) counts as loaded; any other
//! failure is logged and the rest are still tried (a missing NIC driver shows up as a `link`
//! failure that names the interfaces present).

use std::fs::File;
use std::os::fd::AsRawFd;

use anyhow::{Context, Result, bail};

/// Written by the initramfs builder.
pub const MODULES_ORDER: &str = "/etc/agent/modules.order";
/// Largest list accepted.
const MAX_LIST: u64 = 256 * 1024;

/// What loading the list did.
#[derive(Debug, Default)]
pub struct Loaded {
    pub loaded: usize,
    pub already: usize,
    pub failed: Vec<String>,
}

impl Loaded {
    /// One-line summary for the phase marker.
    pub fn detail(&self) -> String {
        format!(
            "loaded={} already={} failed={}",
            self.loaded,
            self.already,
            self.failed.len()
        )
    }
}

/// The module paths in a list: absolute, no `..`, no NUL; other lines are errors.
pub fn parse_list(text: &str) -> Result<Vec<&str>> {
    let mut out = vec![];
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !line.starts_with('/') || line.split('/').any(|c| c == "..") || line.contains('\0') {
            bail!(
                "{MODULES_ORDER} line {}: {line:?} is not an absolute module path",
                n + 1
            );
        }
        out.push(line);
    }
    Ok(out)
}

fn load_one(path: &str) -> Result<bool> {
    let f = File::open(path).with_context(|| format!("opening {path}"))?;
    // SAFETY: finit_module reads the open descriptor and a NUL-terminated, empty parameter string.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), c"".as_ptr(), 0) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EEXIST) {
        return Ok(false);
    }
    Err(err).with_context(|| format!("finit_module {path}"))
}

/// Loads every module of [`MODULES_ORDER`]. A missing list means "nothing to load" (an
/// initramfs whose NIC drivers are built in).
pub fn load_all() -> Result<Loaded> {
    let file = match File::open(MODULES_ORDER) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!("no {MODULES_ORDER}: no modules to load");
            return Ok(Loaded::default());
        }
        Err(e) => return Err(e).with_context(|| format!("opening {MODULES_ORDER}")),
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > MAX_LIST {
        bail!("{MODULES_ORDER} is {len} bytes, more than {MAX_LIST}");
    }
    let text = std::io::read_to_string(file).with_context(|| format!("reading {MODULES_ORDER}"))?;
    let mut result = Loaded::default();
    for path in parse_list(&text)? {
        match load_one(path) {
            Ok(true) => {
                tracing::debug!(module = path, "loaded");
                result.loaded += 1;
            }
            Ok(false) => result.already += 1,
            Err(e) => {
                tracing::warn!("module not loaded: {e:#}");
                result.failed.push(format!("{e:#}"));
            }
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_builders_list() {
        let text = "# virtio\n/lib/modules/6.1.0-56-amd64/kernel/drivers/virtio/virtio.ko\n\n  \
                    /lib/modules/6.1.0-56-amd64/kernel/drivers/net/virtio_net.ko  \n";
        assert_eq!(
            parse_list(text).unwrap(),
            vec![
                "/lib/modules/6.1.0-56-amd64/kernel/drivers/virtio/virtio.ko",
                "/lib/modules/6.1.0-56-amd64/kernel/drivers/net/virtio_net.ko"
            ]
        );
        assert!(parse_list("").unwrap().is_empty());
    }

    #[test]
    fn refuses_relative_and_escaping_paths() {
        for bad in ["virtio.ko", "/lib/../etc/x.ko", "./x.ko", "/a\0b.ko"] {
            let err = parse_list(bad).unwrap_err().to_string();
            assert!(err.contains("line 1"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_missing_module_is_an_error_naming_it() {
        let err = load_one("/nonexistent/agent-test.ko").unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/agent-test.ko"));
    }
}
