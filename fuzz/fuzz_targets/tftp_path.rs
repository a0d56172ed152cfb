//! Fuzz target: arbitrary bytes as a requested TFTP file name through the pure mapping
//! (`pxe::tftp::map_request` for UTF-8, `map_path` for any bytes). It must never panic, and an
//! accepted name must map under the root with normal components only (no `..`, no root or
//! drive prefix), and be a clean `/`-joined relative name.

#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use pxe::tftp::{MAX_NAME_BYTES, RelPath, map_path, map_request};

const ROOT: &str = "/srv/tftp";

fn check(mapped: &RelPath) {
    let root = Path::new(ROOT);
    let joined = mapped.joined();
    assert!(joined.starts_with(root), "{joined:?} escapes {ROOT}");
    let rest = joined.strip_prefix(root).expect("checked above");
    assert!(
        rest.components().all(|c| matches!(c, Component::Normal(_))),
        "{joined:?}"
    );
    assert!(
        rest.components().next().is_some(),
        "{joined:?} names the root"
    );
    let rel = mapped.as_str();
    assert!(!rel.is_empty() && rel.len() <= MAX_NAME_BYTES, "{rel:?}");
    assert!(!rel.starts_with('/') && !rel.contains('\\'), "{rel:?}");
    assert!(
        rel.split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".."),
        "{rel:?}"
    );
    assert!(!rel.chars().any(|c| c == '\0' || c.is_control()), "{rel:?}");
    assert_eq!(
        Path::new(rel),
        rest,
        "relative name and joined path disagree"
    );
}

fuzz_target!(|data: &[u8]| {
    let root = Path::new(ROOT);
    let by_path = map_path(root, Path::new(OsStr::from_bytes(data)));
    match std::str::from_utf8(data) {
        Ok(name) => {
            let by_str = map_request(root, name);
            assert_eq!(
                by_str, by_path,
                "map_request and map_path disagree on {name:?}"
            );
            if let Ok(mapped) = &by_str {
                check(mapped);
            }
        }
        Err(_) => assert!(by_path.is_err(), "non-UTF-8 name accepted"),
    }
});
