//! Tests of `image.rs`: the layout contract with the agent, determinism, secret refusal.

use super::*;
use crate::compress::gunzip_limited;
use crate::cpio::{Entry, FileType};

const CA: &str = include_str!("../tests/fixtures/test-ca.pem");

fn module(name: &str, path: &str) -> ModuleFile {
    ModuleFile {
        module: ResolvedModule {
            name: name.into(),
            path: path.into(),
        },
        data: format!("\x7fELF {name}").into_bytes(),
    }
}

fn inputs() -> ImageInputs {
    ImageInputs {
        agent: b"\x7fELF agent".to_vec(),
        ca_pem: CA.as_bytes().to_vec(),
        release: "6.1.0-56-amd64".into(),
        requested_modules: vec!["virtio-net".into()],
        modules: vec![
            module("failover", "kernel/net/core/failover.ko"),
            module("net_failover", "kernel/drivers/net/net_failover.ko"),
            module("virtio_net", "kernel/drivers/net/virtio_net.ko"),
        ],
        extra_files: vec![
            ExtraFile {
                dest: "/etc/motd".into(),
                perm: 0o644,
                data: b"hello\n".to_vec(),
                source: "motd".into(),
            },
            ExtraFile {
                dest: "/bin/tool".into(),
                perm: 0o755,
                data: b"#!tool".to_vec(),
                source: "tool".into(),
            },
        ],
    }
}

fn unpack(gz: &[u8]) -> Vec<u8> {
    gunzip_limited(gz, 1 << 24).unwrap()
}

fn find<'a>(entries: &'a [Entry<'a>], name: &str) -> &'a Entry<'a> {
    entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("{name} not in the image"))
}

#[test]
fn layout_is_the_agent_contract() {
    let image = render(&inputs()).unwrap();
    let cpio = unpack(&image.gz);
    assert_eq!(cpio.len() as u64, image.cpio_size);
    let entries = read_archive(&cpio).unwrap();
    assert_eq!(entries.len(), image.entries);

    let init = find(&entries, "init");
    assert_eq!((init.file_type, init.perm()), (FileType::File, 0o755));
    assert_eq!(init.data, b"\x7fELF agent");
    let console = find(&entries, "dev/console");
    assert_eq!(console.file_type, FileType::CharDev);
    assert_eq!(
        (console.rdev_major, console.rdev_minor, console.perm()),
        (5, 1, 0o600)
    );
    for (dir, perm) in [
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("run", 0o755),
        ("tmp", 0o1777),
    ] {
        let e = find(&entries, dir);
        assert_eq!((e.file_type, e.perm()), (FileType::Dir, perm), "{dir}");
    }
    assert_eq!(find(&entries, CA_PATH).data, CA.as_bytes());
    assert_eq!(
        std::str::from_utf8(find(&entries, MODULES_ORDER_PATH).data).unwrap(),
        "/lib/modules/6.1.0-56-amd64/kernel/net/core/failover.ko\n\
         /lib/modules/6.1.0-56-amd64/kernel/drivers/net/net_failover.ko\n\
         /lib/modules/6.1.0-56-amd64/kernel/drivers/net/virtio_net.ko\n"
    );
    assert_eq!(image.modules_order.len(), 3);
    // Every path in modules.order is a file in the image.
    for path in &image.modules_order {
        let e = find(&entries, path.trim_start_matches('/'));
        assert!(e.data.starts_with(b"\x7fELF"));
    }
    let info = std::str::from_utf8(find(&entries, BUILD_INFO_PATH).data).unwrap();
    assert_eq!(
        info,
        format!(
            "builder = \"initramfs-build {}\"\nkernel_release = \"6.1.0-56-amd64\"\n\
             modules_requested = [\"virtio-net\"]\n\
             modules_loaded = [\"failover\", \"net_failover\", \"virtio_net\"]\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(find(&entries, "bin/tool").perm(), 0o755);
    assert_eq!(find(&entries, "etc/motd").data, b"hello\n");
    assert!(
        entries
            .iter()
            .all(|e| e.mtime == 0 && e.uid == 0 && e.gid == 0)
    );
}

#[test]
fn same_inputs_same_bytes_whatever_the_extra_file_order() {
    let a = render(&inputs()).unwrap();
    let b = render(&inputs()).unwrap();
    assert_eq!(a, b);
    let mut swapped = inputs();
    swapped.extra_files.reverse();
    assert_eq!(render(&swapped).unwrap().gz, a.gz);
    // A real change changes the bytes.
    let mut changed = inputs();
    changed.extra_files[0].data = b"hello!\n".to_vec();
    assert_ne!(render(&changed).unwrap().gz, a.gz);
}

#[test]
fn secrets_are_refused_everywhere() {
    let pem_key =
        b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
    let der_key = [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x05];

    let mut bad = inputs();
    bad.ca_pem.extend_from_slice(pem_key);
    assert!(matches!(
        render(&bad),
        Err(ImageError::Ca(PemError::PrivateKey(_)))
    ));

    let mut bad = inputs();
    bad.extra_files[0].data = der_key.to_vec();
    let err = render(&bad).unwrap_err();
    assert!(
        matches!(&err, ImageError::Secret { what, .. } if what.contains("motd")),
        "{err}"
    );

    let mut bad = inputs();
    bad.extra_files[1].data = pem_key.to_vec();
    assert!(matches!(render(&bad), Err(ImageError::Secret { .. })));

    let mut bad = inputs();
    bad.agent.extend_from_slice(pem_key);
    assert!(matches!(render(&bad), Err(ImageError::Secret { what, .. }) if what.contains("agent")));
}

#[test]
fn bad_inputs_are_refused() {
    let mut bad = inputs();
    bad.ca_pem = b"not a certificate".to_vec();
    assert!(matches!(render(&bad), Err(ImageError::Ca(_))));

    let mut bad = inputs();
    bad.agent.clear();
    assert!(matches!(render(&bad), Err(ImageError::EmptyAgent)));

    for release in ["", "..", "a/b", "x\ny"] {
        let mut bad = inputs();
        bad.release = release.into();
        assert!(
            matches!(render(&bad), Err(ImageError::BadRelease(_))),
            "{release:?}"
        );
    }

    let mut bad = inputs();
    bad.extra_files[0].dest = "/init".into();
    assert!(matches!(
        render(&bad),
        Err(ImageError::Entry {
            source: CpioError::Duplicate { .. },
            ..
        })
    ));
    let mut bad = inputs();
    bad.extra_files[0].dest = "../etc/passwd".into();
    assert!(matches!(
        render(&bad),
        Err(ImageError::Entry {
            source: CpioError::InvalidName { .. },
            ..
        })
    ));
    let mut bad = inputs();
    bad.extra_files[0].dest = "init/x".into();
    assert!(matches!(
        render(&bad),
        Err(ImageError::Entry {
            source: CpioError::ParentNotDir { .. },
            ..
        })
    ));
    let mut bad = inputs();
    bad.modules
        .push(module("virtio_net", "kernel/drivers/net/virtio_net.ko"));
    assert!(matches!(
        render(&bad),
        Err(ImageError::Entry {
            source: CpioError::Duplicate { .. },
            ..
        })
    ));
}
