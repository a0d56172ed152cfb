//! Library-level build tests on synthetic inputs in temp dirs: determinism across
//! directories and `--file` order, the module contract, secret refusal, clear errors.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use initramfs::cpio::read_archive;
use initramfs::inspect::decode;
use initramfs::{BuildError, BuildSpec, FileMapping, KernelDir, build};

/// A complete, independent set of inputs in `dir`.
fn spec_in(dir: &Path, files: Vec<FileMapping>) -> BuildSpec {
    let root = dir.join("kernel");
    fake_kernel_tree(&root);
    let (agent, ca) = agent_and_ca(dir);
    BuildSpec {
        agent,
        ca,
        kernel: KernelDir::open(&root, RELEASE).unwrap(),
        modules: ["virtio_pci", "virtio_net", "e1000", "e1000e", "tun"]
            .map(String::from)
            .to_vec(),
        files,
        out_dir: dir.join("out"),
    }
}

fn extras(dir: &Path) -> Vec<FileMapping> {
    let a = put(dir, "extra/motd", b"welcome\n");
    let b = put(dir, "extra/policy.toml", b"mode = \"strict\"\n");
    vec![
        FileMapping {
            src: a,
            dest: "/etc/motd".into(),
        },
        FileMapping {
            src: b,
            dest: "/etc/agent/policy.toml".into(),
        },
    ]
}

#[test]
fn two_builds_in_different_directories_give_identical_bytes() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let files1 = extras(d1.path());
    let mut files2 = extras(d2.path());
    files2.reverse(); // --file order must not matter
    let out1 = build(&spec_in(d1.path(), files1)).unwrap();
    let out2 = build(&spec_in(d2.path(), files2)).unwrap();

    let bytes1 = fs::read(&out1.initrd).unwrap();
    let bytes2 = fs::read(&out2.initrd).unwrap();
    assert_eq!(bytes1, bytes2);
    assert_eq!(out1.initrd_sha256, out2.initrd_sha256);
    assert_eq!(out1.initrd_sha256, initramfs::sha256_hex(&bytes1));
    assert_eq!(out1.initrd_size, bytes1.len() as u64);
    assert_eq!(fs::read(&out1.vmlinuz).unwrap(), b"MZ fake bzImage");
    assert_eq!(out1.vmlinuz_sha256, out2.vmlinuz_sha256);

    // Building again into the same directory overwrites with the same bytes.
    let again = build(&spec_in(d1.path(), extras(d1.path()))).unwrap();
    assert_eq!(again, out1);
}

#[test]
fn the_image_holds_the_modules_in_load_order() {
    let d = tempfile::tempdir().unwrap();
    let out = build(&spec_in(d.path(), Vec::new())).unwrap();
    let gz = fs::read(&out.initrd).unwrap();
    let cpio = decode(&gz).unwrap();
    let entries = read_archive(&cpio).unwrap();
    assert_eq!(entries.len(), out.entries);
    let order = entries
        .iter()
        .find(|e| e.name == "etc/agent/modules.order")
        .unwrap();
    let lines: Vec<&str> = std::str::from_utf8(order.data).unwrap().lines().collect();
    let short: Vec<&str> = lines
        .iter()
        .map(|l| l.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        short,
        [
            "virtio_ring.ko",
            "virtio.ko",
            "virtio_pci_modern_dev.ko",
            "virtio_pci_legacy_dev.ko",
            "virtio_pci.ko",
            "failover.ko",
            "net_failover.ko",
            "virtio_net.ko",
            "e1000.ko",
            "e1000e.ko",
            "tun.ko",
        ]
    );
    assert_eq!(lines, out.modules_order);
    for line in lines {
        let e = entries
            .iter()
            .find(|e| format!("/{}", e.name) == line)
            .unwrap();
        assert!(line.starts_with(&format!("/lib/modules/{RELEASE}/kernel/")));
        assert_eq!(e.perm(), 0o644);
        assert!(e.data.starts_with(b"\x7fELF kernel/"));
    }
}

fn expect_err(spec: &BuildSpec) -> BuildError {
    match build(spec) {
        Ok(out) => panic!("build succeeded: {out:?}"),
        Err(e) => e,
    }
}

#[test]
fn files_with_private_keys_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let pem = put(
        d.path(),
        "k.pem",
        b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
    );
    // `openssl genpkey -algorithm ed25519 -outform DER` layout.
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend([7u8; 32]);
    let der = put(d.path(), "k.der", &der);

    for src in [&pem, &der] {
        let spec = spec_in(
            d.path(),
            vec![FileMapping {
                src: src.clone(),
                dest: "/etc/k".into(),
            }],
        );
        let err = expect_err(&spec).to_string();
        assert!(err.contains("private key"), "{err}");
        assert!(err.contains(&src.display().to_string()), "{err}");
    }

    let mut spec = spec_in(d.path(), Vec::new());
    let ca_with_key = format!("{CA}-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n");
    spec.ca = put(d.path(), "ca-and-key.pem", ca_with_key.as_bytes());
    let err = expect_err(&spec).to_string();
    assert!(
        err.contains("CA certificate") && err.contains("private key"),
        "{err}"
    );
    assert!(
        !spec.out_dir.join("initrd.img").exists(),
        "nothing is written on refusal"
    );
}

#[test]
fn clear_errors_for_bad_inputs() {
    let d = tempfile::tempdir().unwrap();
    let mut spec = spec_in(d.path(), Vec::new());
    spec.modules.push("wireguard".into());
    let err = expect_err(&spec).to_string();
    assert!(err.contains("no module named wireguard"), "{err}");
    assert!(err.contains("modules.dep"), "{err}");

    let mut spec = spec_in(d.path(), Vec::new());
    spec.agent = d.path().join("missing-agent");
    let err = expect_err(&spec).to_string();
    assert!(
        err.contains("agent") && err.contains("missing-agent"),
        "{err}"
    );

    let mut spec = spec_in(d.path(), Vec::new());
    spec.ca = put(d.path(), "not-a-cert.pem", b"hello");
    assert!(expect_err(&spec).to_string().contains("CA certificate"));

    let mut spec = spec_in(d.path(), Vec::new());
    let src = put(d.path(), "x", b"x");
    spec.files = vec![FileMapping {
        src,
        dest: "/lib/../etc/x".into(),
    }];
    let err = expect_err(&spec).to_string();
    assert!(err.contains("..") || err.contains("'..'"), "{err}");

    // A module file missing from the tree.
    let mut spec = spec_in(d.path(), Vec::new());
    fs::remove_file(spec.kernel.modules_dir.join("kernel/drivers/net/tun.ko")).unwrap();
    spec.modules = vec!["tun".into()];
    let err = expect_err(&spec);
    assert!(
        matches!(&err, BuildError::Read { what, .. } if what == "module tun"),
        "{err}"
    );
}
