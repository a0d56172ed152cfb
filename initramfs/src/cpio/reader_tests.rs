//! Tests of `reader.rs`: round trips with the writer, truncation at every byte, hostile
//! headers and entries, and property tests on garbage and mutations.

use super::super::{Archive, ancestors};
use super::*;
use proptest::prelude::*;

fn sample() -> Vec<u8> {
    let mut a = Archive::new();
    a.add_file("init", 0o755, b"\x7fELF...".to_vec()).unwrap();
    a.add_char_dev("dev/console", 0o600, 5, 1).unwrap();
    a.add_symlink("bin/sh", "/init").unwrap();
    a.add_file("etc/agent/modules.order", 0o644, b"/x\n".to_vec())
        .unwrap();
    a.to_bytes()
}

#[test]
fn round_trip_of_every_kind() {
    let bytes = sample();
    let entries = read_archive(&bytes).unwrap();
    let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bin",
            "bin/sh",
            "dev",
            "dev/console",
            "etc",
            "etc/agent",
            "etc/agent/modules.order",
            "init"
        ]
    );
    let inos: Vec<_> = entries.iter().map(|e| e.ino).collect();
    assert_eq!(inos, (1..=8).collect::<Vec<_>>());
    let console = &entries[3];
    assert_eq!(console.file_type, FileType::CharDev);
    assert_eq!((console.rdev_major, console.rdev_minor), (5, 1));
    assert_eq!(console.perm(), 0o600);
    assert_eq!(entries[1].data, b"/init");
    assert_eq!(entries[7].data, b"\x7fELF...");
    assert!(
        entries
            .iter()
            .all(|e| e.uid == 0 && e.gid == 0 && e.mtime == 0)
    );
    assert_eq!(entries[0].nlink, 2);
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample();
    for len in 0..bytes.len() {
        assert!(
            read_archive(&bytes[..len]).is_err(),
            "prefix of {len} bytes"
        );
    }
}

#[test]
fn trailing_zeros_are_fine_but_garbage_is_not() {
    let mut bytes = sample();
    bytes.extend_from_slice(&[0; 512]);
    assert!(read_archive(&bytes).is_ok());
    bytes.push(1);
    assert!(matches!(
        read_archive(&bytes),
        Err(ReadError::TrailingGarbage { .. })
    ));
}

#[test]
fn hostile_headers() {
    let good = sample();
    let mut bad = good.clone();
    bad[5] = b'2'; // "070702" (crc format) is refused
    assert!(matches!(
        read_archive(&bad),
        Err(ReadError::BadMagic { .. })
    ));

    let mut bad = good.clone();
    bad[6] = b'g';
    assert!(matches!(
        read_archive(&bad),
        Err(ReadError::BadHex { field: "c_ino", .. })
    ));

    let mut bad = good.clone();
    bad[6] = b'+'; // from_str_radix would accept a sign; we do not
    assert!(matches!(read_archive(&bad), Err(ReadError::BadHex { .. })));

    // Name size 0.
    let mut bad = good.clone();
    bad[94..102].copy_from_slice(b"00000000");
    assert!(matches!(
        read_archive(&bad),
        Err(ReadError::BadNameSize { .. })
    ));

    // File size far beyond the input.
    let mut bad = good.clone();
    bad[54..62].copy_from_slice(b"ffffffff");
    assert!(matches!(
        read_archive(&bad),
        Err(ReadError::UnexpectedData { .. } | ReadError::Truncated { .. })
    ));
}

fn raw_entry(name: &[u8], mode: u32, data: &[u8]) -> Vec<u8> {
    let mut out = b"070701".to_vec();
    for f in [
        1,
        mode,
        0,
        0,
        1,
        0,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        0,
    ] {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name);
    out.push(0);
    out.resize(out.len() + pad4(HEADER_LEN + name.len() + 1), 0);
    out.extend_from_slice(data);
    out.resize(out.len() + pad4(data.len()), 0);
    out
}

fn with_trailer(mut body: Vec<u8>) -> Vec<u8> {
    body.extend(raw_entry(TRAILER.as_bytes(), 0, b""));
    body
}

#[test]
fn hostile_entries() {
    let reg = 0o100_644;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            with_trailer(raw_entry(b"../etc/shadow", reg, b"x")),
            "dotdot",
        ),
        (
            with_trailer(raw_entry(b"a//b", reg, b"x")),
            "empty component",
        ),
        (with_trailer(raw_entry(b"a\xff", reg, b"x")), "not utf8"),
        (
            with_trailer(raw_entry(b"x", 0o070_644, b"")),
            "unknown type",
        ),
        (
            with_trailer(raw_entry(b"x", 0xf000_81a4, b"")),
            "bits above the type",
        ),
        (
            with_trailer(raw_entry(b"d", 0o040_755, b"data")),
            "dir with data",
        ),
        (
            with_trailer(raw_entry(b"l", 0o120_777, b"")),
            "empty symlink",
        ),
        (
            with_trailer([raw_entry(b"a", reg, b"1"), raw_entry(b"./a", reg, b"2")].concat()),
            "duplicate",
        ),
        (raw_entry(b"a", reg, b"1"), "no trailer"),
    ];
    for (bytes, what) in cases {
        assert!(read_archive(&bytes).is_err(), "{what}");
    }
    // A NUL inside the name (namesize covers it).
    let mut bytes = with_trailer(raw_entry(b"ab", reg, b""));
    bytes[HEADER_LEN] = 0;
    assert_eq!(
        read_archive(&bytes),
        Err(ReadError::NameNotTerminated { offset: 0 })
    );
    // Non-zero padding after the name.
    let mut bytes = with_trailer(raw_entry(b"abc", reg, b""));
    bytes[HEADER_LEN + 4] = 7;
    assert!(matches!(
        read_archive(&bytes),
        Err(ReadError::BadPadding { .. })
    ));
    // A "." root directory, as `find . | cpio` writes, is accepted.
    let bytes = with_trailer(raw_entry(b".", 0o040_755, b""));
    assert_eq!(read_archive(&bytes).unwrap()[0].name, ".");
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = read_archive(&bytes);
    }

    #[test]
    fn mutated_archives_never_panic(pos in 0usize..400, byte in any::<u8>()) {
        let mut bytes = sample();
        let i = pos % bytes.len();
        bytes[i] = byte;
        let _ = read_archive(&bytes);
    }

    #[test]
    fn writer_reader_round_trip(
        files in proptest::collection::btree_map("[a-z]{1,8}(/[a-z]{1,8}){0,3}", proptest::collection::vec(any::<u8>(), 0..64), 0..12),
    ) {
        let mut a = Archive::new();
        let mut added = Vec::new();
        for (name, data) in &files {
            if a.add_file(name, 0o644, data.clone()).is_ok() {
                added.push((name.clone(), data.clone()));
            }
        }
        let bytes = a.to_bytes();
        prop_assert_eq!(bytes.len() % 4, 0);
        let entries = read_archive(&bytes).unwrap();
        prop_assert_eq!(entries.len(), a.len());
        for (name, data) in added {
            let e = entries.iter().find(|e| e.name == name).unwrap();
            prop_assert_eq!(e.file_type, FileType::File);
            prop_assert_eq!(e.data, &data[..]);
        }
        // Sorted, and every parent before its children.
        for (i, e) in entries.iter().enumerate() {
            for parent in ancestors(&e.name) {
                let p = entries.iter().position(|x| x.name == parent).unwrap();
                prop_assert!(p < i);
            }
        }
    }
}
