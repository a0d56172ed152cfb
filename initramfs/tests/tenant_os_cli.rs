//! `initramfs-build tenant-os` end to end: the sha256 line on stdout, the same bytes twice,
//! `list` shows exactly the tenant layout, and a missing `--init` is an error naming the path.

use std::process::{Command, Output};

use initramfs::sha256_hex;
use initramfs::tenant_os::TENANT_ENTRIES;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_initramfs-build"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn tenant_os_twice_then_list() {
    let d = tempfile::tempdir().unwrap();
    let init = d.path().join("tenant-init");
    std::fs::write(&init, b"\x7fELF a pretend tenant-init").unwrap();
    let mut shas = Vec::new();
    for out in ["one", "two"] {
        let dir = d.path().join(out);
        let o = run(&[
            "tenant-os",
            "--init",
            init.to_str().unwrap(),
            "--out",
            dir.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{o:?}");
        let first = stdout.lines().next().unwrap();
        let file = dir.join("tenant-initrd.cpio.gz");
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(
            first,
            format!(
                "{}  {}  {} B ({} bytes)",
                sha256_hex(&bytes),
                file.display(),
                bytes.len(),
                bytes.len()
            )
        );
        assert!(stdout.contains("entries: 5, cpio: "), "{stdout}");
        shas.push(sha256_hex(&bytes));
    }
    assert_eq!(shas[0], shas[1]);

    let file = d.path().join("one/tenant-initrd.cpio.gz");
    let o = run(&["list", "--json", file.to_str().unwrap()]);
    assert!(o.status.success(), "{o:?}");
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let paths: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, TENANT_ENTRIES);
}

#[test]
fn a_missing_init_is_named() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("no-such-init");
    let o = run(&[
        "tenant-os",
        "--init",
        missing.to_str().unwrap(),
        "--out",
        d.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("no-such-init"), "{stderr}");
    assert!(!d.path().join("tenant-initrd.cpio.gz").exists());
}
