//! Fuzz target: arbitrary bytes through the strict newc reader (`initramfs::cpio::read_archive`)
//! and the image inspector (`initramfs::inspect::{list, scan}`, which also takes gzip). Nothing
//! may panic. An accepted archive must be internally consistent (every entry inside the input,
//! valid relative names, no duplicates), and writing its entries again with the writer and
//! reading them back must give the same names, types, modes and data.

#![no_main]

use initramfs::cpio::{Archive, FileType, PERM_MASK, normalize, read_archive};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = initramfs::inspect::list(data);
    let _ = initramfs::inspect::scan(data);

    let Ok(entries) = read_archive(data) else {
        return;
    };
    let mut names = std::collections::HashSet::new();
    for e in &entries {
        assert!(e.offset < data.len());
        assert!(
            names.insert(e.name.clone()),
            "duplicate {:?} accepted",
            e.name
        );
        if e.name != "." {
            assert_eq!(normalize(&e.name).as_deref(), Ok(e.name.as_str()));
        }
        if !matches!(e.file_type, FileType::File | FileType::Symlink) {
            assert!(e.data.is_empty());
        }
    }

    // Re-write the entries the writer supports; if it takes them all, the round trip must hold.
    let mut archive = Archive::new();
    let mut kept = Vec::new();
    for e in &entries {
        let perm = e.mode & PERM_MASK;
        let added = match e.file_type {
            FileType::Dir if e.name != "." => archive.add_dir(&e.name, perm),
            FileType::File => archive.add_file(&e.name, perm, e.data),
            FileType::CharDev => archive.add_char_dev(&e.name, perm, e.rdev_major, e.rdev_minor),
            FileType::Symlink => match std::str::from_utf8(e.data) {
                Ok(target) => archive.add_symlink(&e.name, target),
                Err(_) => continue,
            },
            _ => continue,
        };
        if added.is_err() {
            return; // e.g. a file below a file: legal in cpio, refused by the writer
        }
        kept.push(e);
    }
    let bytes = archive.to_bytes();
    let again = read_archive(&bytes).expect("the writer's output must read back");
    for e in kept {
        let r = again
            .iter()
            .find(|x| x.name == e.name)
            .expect("entry lost in the round trip");
        assert_eq!((r.file_type, r.data), (e.file_type, e.data));
        if e.file_type != FileType::Symlink {
            assert_eq!(r.mode, e.mode);
        }
    }
});
