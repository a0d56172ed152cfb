//! Fuzz target: hostile entry names, targets and contents through the newc writer
//! (`initramfs::cpio::Archive`). Nothing may panic; every entry the writer accepts must read
//! back unchanged, the output must be sorted with parents first, and writing the same entries
//! in another order must give the same bytes (determinism).
//!
//! Input: records of `[kind][name_len][name][data_len][data]`.

#![no_main]

use initramfs::cpio::{Archive, FileType, read_archive};
use libfuzzer_sys::fuzz_target;

#[derive(Clone)]
enum Rec {
    Dir(String),
    File(String, Vec<u8>),
    Link(String, String),
}

fn records(mut d: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    while d.len() >= 3 {
        let kind = d[0] % 3;
        let n = d[1] as usize;
        let Some(name) = d.get(2..2 + n) else { break };
        let name = String::from_utf8_lossy(name).into_owned();
        d = &d[2 + n..];
        let Some(&m) = d.first() else { break };
        let Some(data) = d.get(1..1 + m as usize) else { break };
        d = &d[1 + m as usize..];
        out.push(match kind {
            0 => Rec::Dir(name),
            1 => Rec::File(name, data.to_vec()),
            _ => Rec::Link(name, String::from_utf8_lossy(data).into_owned()),
        });
    }
    out
}

fn build(recs: &[Rec]) -> (Archive, Vec<Rec>) {
    let mut a = Archive::new();
    let mut kept = Vec::new();
    for r in recs {
        let ok = match r {
            Rec::Dir(n) => a.add_dir(n, 0o755).is_ok(),
            Rec::File(n, d) => a.add_file(n, 0o644, d.clone()).is_ok(),
            Rec::Link(n, t) => a.add_symlink(n, t).is_ok(),
        };
        if ok {
            kept.push(r.clone());
        }
    }
    (a, kept)
}

fuzz_target!(|data: &[u8]| {
    let recs = records(data);
    let (archive, kept) = build(&recs);
    let bytes = archive.to_bytes();
    let entries = read_archive(&bytes).expect("the writer's output must read back");
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries not sorted");
    for e in &entries {
        if let Some((parent, _)) = e.name.rsplit_once('/') {
            assert!(names.contains(&parent), "{} has no parent entry", e.name);
        }
    }
    for r in &kept {
        if let Rec::File(n, d) = r {
            let e = entries.iter().find(|e| e.name == initramfs::cpio::normalize(n).unwrap_or_default());
            let e = e.expect("accepted file missing");
            assert_eq!((e.file_type, e.data), (FileType::File, d.as_slice()));
        }
    }
    // Same accepted entries, reversed order: same bytes.
    let mut rev = kept.clone();
    rev.reverse();
    let (again, kept_again) = build(&rev);
    let key = |v: &[Rec]| {
        let mut k: Vec<String> = v
            .iter()
            .map(|r| match r {
                Rec::Dir(n) => format!("d{n}"),
                Rec::File(n, d) => format!("f{n}{d:?}"),
                Rec::Link(n, t) => format!("l{n}{t}"),
            })
            .collect();
        k.sort();
        k
    };
    if key(&kept_again) == key(&kept) {
        assert_eq!(again.to_bytes(), bytes, "output depends on insertion order");
    }
});
