//! The real initramfs (pinned Debian kernel's modules, the static musl agent, the lab CA) is
//! reproducible: two builds into different folders give the same bytes and sha256, and the
//! image holds no private key. Needs `scripts/lab-prepare.sh`; enabled with `--features lab/e2e`.
#![cfg(feature = "e2e")]

use std::path::Path;
use std::process::Command;

use lab::Artifacts;

fn build(art: &Artifacts, agent: &Path, out: &Path) -> String {
    let o = Command::new(art.bin_dir.join("initramfs-build"))
        .arg("build")
        .arg("--agent")
        .arg(agent)
        .arg("--ca")
        .arg(art.ca_dir().join("ca.pem"))
        .arg("--kernel-cache")
        .arg(art.dir.join("kernel"))
        .arg("--out")
        .arg(out)
        .output()
        .expect("initramfs-build");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(out.join("initrd.img")).expect("initrd.img");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let printed = stdout
        .lines()
        .find(|l| l.contains("initrd.img"))
        .and_then(|l| l.split_whitespace().next())
        .expect("sha256 line")
        .to_string();
    assert_eq!(printed.len(), 64, "{stdout}");
    assert!(!bytes.is_empty());
    printed
}

#[test]
fn building_the_initramfs_twice_gives_the_same_sha256() {
    let art = Artifacts::locate().expect("artifacts");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    let agent = root.join("target/x86_64-unknown-linux-musl/agent/ramdisk-agent");
    let tmp = std::env::temp_dir().join(format!("initramfs-repro-{}", std::process::id()));
    let (a, b) = (tmp.join("a"), tmp.join("b"));
    let sha_a = build(&art, &agent, &a);
    let sha_b = build(&art, &agent, &b);
    assert_eq!(sha_a, sha_b);
    assert_eq!(
        std::fs::read(a.join("initrd.img")).unwrap(),
        std::fs::read(b.join("initrd.img")).unwrap()
    );
    // The image the lab boots was built from the same inputs, so it is the same image.
    assert_eq!(
        std::fs::read(a.join("initrd.img")).unwrap(),
        std::fs::read(art.initrd()).unwrap()
    );
    // No private key anywhere in it.
    let scan = Command::new(art.bin_dir.join("initramfs-build"))
        .arg("scan")
        .arg(a.join("initrd.img"))
        .output()
        .unwrap();
    assert!(
        scan.status.success(),
        "{}",
        String::from_utf8_lossy(&scan.stdout)
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
