//! The `initramfs-build` binary end to end on synthetic inputs: `build` with a pre-fetched
//! kernel cache (no download), `list`, `list --json`, `scan`, and the exit codes.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use initramfs::compress::gzip;
use initramfs::cpio::Archive;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_initramfs-build"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn cli_build(dir: &Path, out: &str, files: &[String]) -> Output {
    let (pin, cache) = fake_cache(dir);
    let (agent, ca) = agent_and_ca(dir);
    let mut args: Vec<String> = [
        "build",
        "--agent",
        agent.to_str().unwrap(),
        "--ca",
        ca.to_str().unwrap(),
        "--out",
        dir.join(out).to_str().unwrap(),
        "--kernel-cache",
        cache.to_str().unwrap(),
        "--pin",
        pin.to_str().unwrap(),
        "--modules",
        "virtio-net,tun",
    ]
    .map(String::from)
    .to_vec();
    for f in files {
        args.push("--file".into());
        args.push(f.clone());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&refs)
}

#[test]
fn build_list_scan() {
    let d = tempfile::tempdir().unwrap();
    let a = put(d.path(), "a.txt", b"a\n");
    let b = put(d.path(), "b.txt", b"b\n");
    let fa = format!("{}:/etc/a", a.display());
    let fb = format!("{}:/etc/b", b.display());
    let first = cli_build(d.path(), "out1", &[fa.clone(), fb.clone()]);
    assert!(first.status.success(), "{}", text(&first));
    let second = cli_build(d.path(), "out2", &[fb, fa]);
    assert!(second.status.success(), "{}", text(&second));
    let img1 = std::fs::read(d.path().join("out1/initrd.img")).unwrap();
    let img2 = std::fs::read(d.path().join("out2/initrd.img")).unwrap();
    assert_eq!(img1, img2);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains(&initramfs::sha256_hex(&img1)), "{stdout}");
    assert!(stdout.contains("modules in load order: 6"), "{stdout}");

    let image = d.path().join("out1/initrd.img");
    let listed = run(&["list", image.to_str().unwrap()]);
    assert!(listed.status.success(), "{}", text(&listed));
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(table.starts_with("MODE"), "{table}");
    assert!(
        table.contains("-rwxr-xr-x") && table.contains(" /init\n"),
        "{table}"
    );
    assert!(
        table.contains("crw------- ") && table.contains("/dev/console (5:1)"),
        "{table}"
    );

    let json = run(&["list", "--json", image.to_str().unwrap()]);
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    let init = rows.iter().find(|r| r["path"] == "/init").unwrap();
    assert_eq!(init["perm"], "0755");
    assert_eq!(init["type"], "file");
    assert!(
        rows.iter()
            .any(|r| r["path"] == "/etc/lease-manager/ca.pem")
    );

    let scanned = run(&["scan", image.to_str().unwrap()]);
    assert_eq!(scanned.status.code(), Some(0), "{}", text(&scanned));
}

#[test]
fn scan_fails_and_names_the_entry() {
    let d = tempfile::tempdir().unwrap();
    let mut a = Archive::new();
    a.add_file("init", 0o755, b"\x7fELF".to_vec()).unwrap();
    a.add_file(
        "etc/wg/private.key",
        0o600,
        b"-----BEGIN OPENSSH PRIVATE KEY-----\n".to_vec(),
    )
    .unwrap();
    let path = put(d.path(), "bad.img", &gzip(&a.to_bytes()).unwrap());
    let out = run(&["scan", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("/etc/wg/private.key"));

    let garbage = put(d.path(), "garbage.img", b"070701zzzz");
    let out = run(&["scan", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error:"));
}

#[test]
fn build_refuses_a_secret_extra_file() {
    let d = tempfile::tempdir().unwrap();
    let key = put(
        d.path(),
        "tls.key",
        b"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n",
    );
    let out = cli_build(
        d.path(),
        "out",
        &[format!("{}:/etc/tls.key", key.display())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("private key") && err.contains("tls.key"),
        "{err}"
    );
    assert!(!d.path().join("out/initrd.img").exists());
}

#[test]
fn bad_pin_overrides_are_refused_before_any_download() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let out = run(&[
        "kernel-fetch",
        "--cache",
        cache.to_str().unwrap(),
        "--package",
        "linux-image-../../etc",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Debian kernel image package"));
    assert!(!cache.exists());
}
