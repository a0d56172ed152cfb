//! Tests of the TFTP path mapping: hostile names (pure) and on-disk resolution (temp dirs).

use super::*;
use proptest::prelude::*;
use std::path::Component;

fn root() -> PathBuf {
    PathBuf::from("/srv/tftp")
}

fn mapped(name: &str) -> String {
    match map_request(&root(), name) {
        Ok(p) => p.as_str().to_owned(),
        Err(e) => panic!("{name:?} refused: {e}"),
    }
}

fn refused(name: &str) -> PathRefused {
    match map_request(&root(), name) {
        Ok(p) => panic!("{name:?} accepted as {:?}", p.joined()),
        Err(e) => e,
    }
}

#[test]
fn plain_and_rooted_names_map_inside_the_root() {
    assert_eq!(mapped("undionly.kpxe"), "undionly.kpxe");
    assert_eq!(mapped("/undionly.kpxe"), "undionly.kpxe");
    assert_eq!(mapped("./ipxe.efi"), "ipxe.efi");
    assert_eq!(
        mapped("pxelinux.cfg/01-52-54-00-12-34-56"),
        "pxelinux.cfg/01-52-54-00-12-34-56"
    );
    let p = map_request(&root(), "/etc/passwd").unwrap();
    assert_eq!(p.joined(), Path::new("/srv/tftp/etc/passwd"));
    let p = map_request(&root(), "//etc/passwd").unwrap();
    assert_eq!(p.joined(), Path::new("/srv/tftp/etc/passwd"));
    assert_eq!(mapped("a//b/./c"), "a/b/c");
}

#[test]
fn backslash_is_a_separator() {
    assert_eq!(mapped("boot\\grub\\x64.efi"), "boot/grub/x64.efi");
    assert_eq!(refused("..\\..\\etc\\passwd"), PathRefused::ParentDir);
    assert_eq!(refused("a\\..\\..\\b"), PathRefused::ParentDir);
    // `\\server\share` is just two more separators.
    assert_eq!(mapped("\\\\server\\share"), "server/share");
}

#[test]
fn traversal_is_refused() {
    for name in [
        "../../etc/passwd",
        "/../etc/passwd",
        "a/../../b",
        "a/../b",
        "..",
        "/..",
        "x/..",
    ] {
        assert_eq!(refused(name), PathRefused::ParentDir, "{name:?}");
    }
}

#[test]
fn percent_encoding_is_literal() {
    // No URL decoding: a literal, harmless name that simply does not exist.
    assert_eq!(mapped("%2e%2e/etc/passwd"), "%2e%2e/etc/passwd");
    assert_eq!(mapped("..%2f..%2fetc"), "..%2f..%2fetc");
    // Dots that are not exactly `..` are normal names.
    assert_eq!(mapped(".../x"), ".../x");
    assert_eq!(mapped("..a"), "..a");
}

#[test]
fn drive_prefixes_are_refused() {
    for name in ["C:", "c:\\windows\\win.ini", "C:/x", "/D:foo", "z:..\\x"] {
        assert!(
            matches!(refused(name), PathRefused::DrivePrefix { .. }),
            "{name:?}"
        );
    }
    // A colon later in the name is fine on the server's file system.
    assert_eq!(mapped("a/C:"), "a/C:");
    assert_eq!(mapped("1:x"), "1:x");
}

#[test]
fn nul_control_empty_long_are_refused() {
    assert_eq!(refused(""), PathRefused::Empty);
    assert_eq!(refused("a\0b"), PathRefused::Nul { at: 1 });
    assert_eq!(
        refused("a\nb"),
        PathRefused::ControlChar { ch: '\n', at: 1 }
    );
    assert_eq!(
        refused("\u{7f}"),
        PathRefused::ControlChar {
            ch: '\u{7f}',
            at: 0
        }
    );
    assert_eq!(
        refused("x\u{85}"),
        PathRefused::ControlChar {
            ch: '\u{85}',
            at: 1
        }
    );
    for name in ["/", "//", ".", "./", "/./."] {
        assert_eq!(refused(name), PathRefused::NamesRoot, "{name:?}");
    }
    let long = "a".repeat(MAX_NAME_BYTES + 1);
    assert_eq!(
        refused(&long),
        PathRefused::TooLong {
            len: 256,
            max: MAX_NAME_BYTES
        }
    );
    assert_eq!(mapped(&"a".repeat(MAX_NAME_BYTES)).len(), MAX_NAME_BYTES);
    // 128 two-byte characters: 256 bytes.
    assert!(matches!(
        refused(&"é".repeat(128)),
        PathRefused::TooLong { .. }
    ));
}

#[test]
fn non_utf8_paths_are_refused() {
    use std::os::unix::ffi::OsStrExt;
    let raw = Path::new(OsStr::from_bytes(b"boot\xff.efi"));
    assert_eq!(map_path(&root(), raw), Err(PathRefused::NotUtf8));
    assert_eq!(display_name(raw.as_os_str()), "boot\u{fffd}.efi");
    assert_eq!(
        map_path(&root(), Path::new("/ok.efi")).unwrap().as_str(),
        "ok.efi"
    );
    assert_eq!(display_name(OsStr::new("a\nb")), "a\\nb");
}

proptest! {
    #[test]
    fn mapping_never_escapes(name in "[a-zA-Z0-9./\\\\:%\\x00-\\x1f]{0,40}") {
        if let Ok(p) = map_request(&root(), &name) {
            prop_assert!(p.joined().starts_with(root()));
            prop_assert!(p.joined().components().skip(3).all(|c| matches!(c, Component::Normal(_))));
            prop_assert!(!p.as_str().split('/').any(|c| c == ".." || c.is_empty()));
        }
    }

    #[test]
    fn any_string_never_escapes(name in any::<String>()) {
        if let Ok(p) = map_request(&root(), &name) {
            prop_assert!(p.joined().starts_with(root()));
            prop_assert!(!p.joined().components().any(|c| c == Component::ParentDir));
        }
    }
}

// ---- on disk ----

struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("undionly.kpxe"), b"kpxe").unwrap();
    std::fs::write(root.join("sub/file"), b"x").unwrap();
    std::fs::write(root.parent().unwrap().join("secret"), b"s").unwrap();
    Tree { _dir: dir, root }
}

fn open(t: &Tree, name: &str) -> Result<OpenedFile, ResolveError> {
    let m = map_request(&t.root, name).unwrap();
    open_in_root(&t.root, &m)
}

#[test]
fn opens_regular_files() {
    let t = tree();
    let f = open(&t, "/undionly.kpxe").unwrap();
    assert_eq!(f.len, 4);
    assert_eq!(f.path, t.root.join("undionly.kpxe"));
    assert_eq!(open(&t, "sub\\file").unwrap().len, 1);
}

#[test]
fn missing_directories_and_literals_are_not_found() {
    let t = tree();
    assert!(matches!(
        open(&t, "nope"),
        Err(ResolveError::Missing { .. })
    ));
    assert!(matches!(
        open(&t, "%2e%2e/secret"),
        Err(ResolveError::Missing { .. })
    ));
    assert!(matches!(
        open(&t, "/etc/passwd"),
        Err(ResolveError::Missing { .. })
    ));
    assert!(matches!(
        open(&t, "sub"),
        Err(ResolveError::NotAFile { .. })
    ));
}

#[test]
fn symlinks_out_of_the_root_are_refused() {
    use std::os::unix::fs::symlink;
    let t = tree();
    symlink("/etc", t.root.join("etc-link")).unwrap();
    symlink("../secret", t.root.join("secret-link")).unwrap();
    symlink("sub/file", t.root.join("inside-link")).unwrap();
    symlink("loop", t.root.join("loop")).unwrap();
    let e = open(&t, "etc-link/passwd").unwrap_err();
    assert!(matches!(e, ResolveError::OutsideRoot { .. }), "{e}");
    let e = open(&t, "etc-link").unwrap_err();
    assert!(matches!(e, ResolveError::OutsideRoot { .. }), "{e}");
    let e = open(&t, "secret-link").unwrap_err();
    assert!(matches!(e, ResolveError::OutsideRoot { .. }), "{e}");
    assert!(e.to_string().contains("secret-link"), "{e}");
    assert_eq!(open(&t, "inside-link").unwrap().len, 1);
    assert!(matches!(open(&t, "loop"), Err(ResolveError::Io { .. })));
}

#[test]
fn root_that_is_a_prefix_string_does_not_leak() {
    // `/x/root` must not accept `/x/root2/...` through a symlink.
    use std::os::unix::fs::symlink;
    let t = tree();
    let sibling = t.root.with_file_name("root2");
    std::fs::create_dir_all(&sibling).unwrap();
    std::fs::write(sibling.join("f"), b"f").unwrap();
    symlink(&sibling, t.root.join("r2")).unwrap();
    assert!(matches!(
        open(&t, "r2/f"),
        Err(ResolveError::OutsideRoot { .. })
    ));
}
