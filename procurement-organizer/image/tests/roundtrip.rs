//! Sealing then opening gives back the plaintext: every size edge, both AEADs, sections,
//! single chunks, resume at every chunk, resume after a dropped stream, and the file shell.

mod common;

use std::io::{Read, Write};

use common::*;
use sealed_image::{
    Aead, Error, ImageId, ImageKey, KeyEpoch, OpenReader, Opener, SealParams, Sealer,
    SignedManifest, TAG_LEN, read_manifest_file, seal_files,
};

const CS: usize = 64;

#[test]
fn sizes_round_trip_in_both_modes() {
    for aead in Aead::ALL {
        for len in [0, 1, CS - 1, CS, CS + 1, 2 * CS, 3 * CS + 5] {
            let f = sealed(len, CS as u32, aead);
            let m = &f.manifest;
            let count = (len.div_ceil(CS)).max(1) as u64;
            assert_eq!(m.chunk_count, count, "len {len}");
            assert_eq!(m.plaintext_len, len as u64);
            assert_eq!(m.aead, aead);
            assert_eq!(m.chunk_tags.len() as u64, count);
            assert_eq!(f.chunks.len(), len + count as usize * TAG_LEN, "len {len}");
            assert_eq!(m.chunks_file_len(), f.chunks.len() as u64);
            for i in 0..count {
                // Chunk i starts at i * (chunk_size + 16); all but the last are full.
                assert_eq!(f.chunk(i).start, i as usize * (CS + TAG_LEN));
                if i + 1 < count {
                    assert_eq!(f.chunk(i).len(), CS + TAG_LEN);
                }
            }
            let (out, fin) = f.open(&f.chunks);
            let v = fin.unwrap_or_else(|e| panic!("{aead} len {len}: {e}"));
            assert_eq!(out, f.plaintext, "{aead} len {len}");
            assert_eq!(v.first_chunk, 0);
            assert_eq!(v.chunk_count, count);
            assert_eq!(v.plaintext_bytes, len as u64);
            assert_eq!(v.ciphertext_bytes, f.chunks.len() as u64);
        }
    }
}

#[test]
fn default_chunk_size_round_trips() {
    let len = (1 << 20) * 2 + 17;
    let f = sealed(len, sealed_image::DEFAULT_CHUNK_SIZE, Aead::Aes256Gcm);
    assert_eq!(f.manifest.chunk_count, 3);
    let (out, fin) = f.open(&f.chunks);
    fin.unwrap();
    assert!(out == f.plaintext);
}

#[test]
fn sections_round_trip_and_straddle_chunks() {
    for aead in Aead::ALL {
        let f = sealed_multi(CS as u32, aead);
        let m = &f.manifest;
        let names: Vec<_> = m.sections.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["kernel", "initramfs", "extra"]);
        assert_eq!((m.sections[1].offset, m.sections[1].len), (300, 1000));
        assert_eq!(m.section("extra").unwrap().range(), 1300..1377);
        assert_eq!(m.cmdline, f.cmdline);
        let (out, fin) = f.open(&f.chunks);
        fin.unwrap();
        assert_eq!(out, f.plaintext);
        let ext = m.section("extra").unwrap().range();
        assert_eq!(
            &out[ext.start as usize..ext.end as usize],
            &f.plaintext[1300..]
        );
    }
}

#[test]
fn write_interface_gives_the_same_bytes_as_add_section() {
    let f = sealed_multi(CS as u32, Aead::Aes256Gcm);
    let mut chunks = Vec::new();
    let mut s = Sealer::new(&f.params, &f.cmdline, &f.key, &mut chunks).unwrap();
    let mut at = 0;
    for (name, len) in &f.sections {
        s.start_section(name).unwrap();
        // Odd-sized writes, one byte at a time at the start.
        let part = &f.plaintext[at..at + len];
        for b in &part[..5] {
            s.write_all(std::slice::from_ref(b)).unwrap();
        }
        for piece in part[5..].chunks(7) {
            s.write_all(piece).unwrap();
        }
        at += len;
    }
    let signed = s.finish(&f.signer).unwrap();
    assert_eq!(
        chunks, f.chunks,
        "sealing is deterministic for one key, id and epoch"
    );
    assert_eq!(signed.verify(&f.vk).unwrap(), f.manifest);
}

#[test]
fn sealer_refusals() {
    let key = ImageKey::from_bytes([1; 32]);
    let p = params(1, 1, Aead::Aes256Gcm, CS as u32);
    let mut sink = Vec::new();
    for bad in [0, 63, (16 << 20) + 1] {
        let q = SealParams {
            chunk_size: bad,
            ..p.clone()
        };
        assert!(matches!(
            Sealer::new(&q, "", &key, &mut sink),
            Err(Error::InvalidInput {
                field: "chunk_size",
                ..
            })
        ));
    }
    assert!(matches!(
        Sealer::new(&p, "a\nb", &key, &mut sink),
        Err(Error::InvalidInput {
            field: "cmdline",
            ..
        })
    ));
    let mut s = Sealer::new(&p, "", &key, &mut sink).unwrap();
    assert!(s.write_all(b"no section yet").is_err());
    s.start_section("kernel").unwrap();
    assert!(matches!(
        s.start_section("kernel"),
        Err(Error::InvalidInput {
            field: "section",
            ..
        })
    ));
    assert!(matches!(
        s.start_section("Bad Name"),
        Err(Error::InvalidInput {
            field: "section",
            ..
        })
    ));
    for i in 0..15 {
        s.start_section(&format!("s{i}")).unwrap();
    }
    assert!(matches!(
        s.start_section("one-too-many"),
        Err(Error::InvalidInput {
            field: "section",
            ..
        })
    ));
    assert_eq!(s.buffer_capacity(), CS);

    // A failing output poisons the sealer: no manifest for an incomplete image.
    let mut s = Sealer::new(&p, "", &key, FailingWriter { budget: 100 }).unwrap();
    let err = s
        .add_section("kernel", &mut &plaintext(1000, 1)[..])
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(matches!(s.finish(&signer()), Err(Error::Io { .. })));

    // A failing input too.
    let mut s = Sealer::new(&p, "", &key, Vec::new()).unwrap();
    let mut r = DroppingReader {
        data: &[7; 500],
        budget: 200,
    };
    assert!(matches!(
        s.add_section("kernel", &mut r),
        Err(Error::Io { .. })
    ));
    assert!(s.finish(&signer()).is_err());
}

#[test]
fn every_chunk_opens_on_its_own() {
    let f = sealed(5 * CS + 3, CS as u32, Aead::ChaCha20Poly1305);
    let o = f.opener();
    let mut all = Vec::new();
    for i in 0..f.manifest.chunk_count {
        let pt = o.open_chunk(i, &f.chunks[f.chunk(i)]).unwrap();
        assert_eq!(pt.len() as u64, f.manifest.chunk_plaintext_len(i).unwrap());
        all.extend_from_slice(&pt);
    }
    assert_eq!(all, f.plaintext);
}

#[test]
fn resume_at_every_chunk() {
    let f = sealed(4 * CS + 10, CS as u32, Aead::Aes256Gcm);
    let count = f.manifest.chunk_count;
    for k in 0..=count {
        let start = if k == count {
            f.chunks.len()
        } else {
            f.chunk(k).start
        };
        let r = OpenReader::resume_at(f.opener(), &f.chunks[start..], k).unwrap();
        let (out, fin) = drain(r);
        let v = fin.unwrap_or_else(|e| panic!("resume at {k}: {e}"));
        assert_eq!(out, &f.plaintext[f.pt_offset(k)..], "resume at {k}");
        assert_eq!(v.first_chunk, k);
    }
    assert!(matches!(
        OpenReader::resume_at(f.opener(), &f.chunks[..], count + 1),
        Err(Error::ChunkOutOfRange { .. })
    ));
    // Resuming at the wrong offset is caught by the first chunk's tag.
    let r = OpenReader::resume_at(f.opener(), &f.chunks[f.chunk(2).start..], 1).unwrap();
    let (out, fin) = drain(r);
    assert!(out.is_empty());
    assert!(
        matches!(
            fin,
            Err(Error::ReorderedOrWrongChunk { index: 1, found: 2 })
        ),
        "{fin:?}"
    );
}

#[test]
fn resume_after_a_dropped_stream() {
    let f = sealed(6 * CS + 1, CS as u32, Aead::Aes256Gcm);
    for cut in [
        0,
        1,
        CS + TAG_LEN,
        2 * (CS + TAG_LEN) + 30,
        f.chunks.len() - 1,
    ] {
        let mut r = OpenReader::new(
            f.opener(),
            DroppingReader {
                data: &f.chunks,
                budget: cut,
            },
        );
        let mut first = Vec::new();
        let err = r.read_to_end(&mut first).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
        let k = r.resume_point();
        assert_eq!(
            first.len(),
            f.pt_offset(k),
            "cut {cut}: handed out exactly the chunks before {k}"
        );
        let (opener, _) = r.into_parts();
        let r2 = OpenReader::resume_at(opener, &f.chunks[f.chunk(k).start..], k).unwrap();
        let (rest, fin) = drain(r2);
        fin.unwrap();
        first.extend_from_slice(&rest);
        assert_eq!(first, f.plaintext, "cut {cut}");
    }
}

#[test]
fn manifest_file_round_trip_and_no_plaintext_in_the_clear() {
    let f = sealed_multi(CS as u32, Aead::Aes256Gcm);
    let again = SignedManifest::decode(&f.manifest_file).unwrap();
    assert_eq!(again, f.signed);
    assert_eq!(again.encode(), f.manifest_file);
    assert_eq!(again.parse_unverified().unwrap(), f.manifest);
    assert_eq!(
        f.manifest
            .expect(f.params.image_id, f.params.key_epoch)
            .map_err(|e| e.to_string()),
        Ok(())
    );
    // A marker planted in the plaintext never appears in the chunks.
    let marker = b"PLANTED-MARKER-1234567890";
    let mut pt = plaintext(500, 3);
    pt[200..200 + marker.len()].copy_from_slice(marker);
    let mut chunks = Vec::new();
    let mut s = Sealer::new(&f.params, "", &f.key, &mut chunks).unwrap();
    s.add_section("kernel", &mut &pt[..]).unwrap();
    s.finish(&f.signer).unwrap();
    assert!(!chunks.windows(marker.len()).any(|w| w == marker));
    // Both modes give different ciphertext for the same input.
    let a = sealed(300, CS as u32, Aead::Aes256Gcm);
    let c = sealed(300, CS as u32, Aead::ChaCha20Poly1305);
    assert_ne!(a.chunks, c.chunks);
}

#[test]
fn seal_files_writes_both_files_and_refuses_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&inp).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let kernel = plaintext(3000, 1);
    let initrd = plaintext(5000, 2);
    let extra = plaintext(10, 3);
    std::fs::write(inp.join("vmlinuz"), &kernel).unwrap();
    std::fs::write(inp.join("initrd"), &initrd).unwrap();
    std::fs::write(inp.join("extra"), &extra).unwrap();
    let id = ImageId::generate(&ring::rand::SystemRandom::new()).unwrap();
    let p = SealParams {
        chunk_size: 1024,
        ..SealParams::new(id, KeyEpoch(3), 5)
    };
    let key = ImageKey::generate(&ring::rand::SystemRandom::new()).unwrap();
    let sk = signer();
    let mut calls = Vec::new();
    let signed = seal_files(
        &inp.join("vmlinuz"),
        &inp.join("initrd"),
        "console=ttyS0",
        Some(&inp.join("extra")),
        &key,
        &sk,
        &p,
        &out,
        &mut |d, t| calls.push((d, t)),
    )
    .unwrap();
    assert_eq!(calls.first(), Some(&(0, 8010)));
    assert_eq!(calls.last(), Some(&(8010, 8010)));
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));
    let mut names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [format!("{id}.chunks"), format!("{id}.manifest")]);
    let read = read_manifest_file(&out.join(format!("{id}.manifest"))).unwrap();
    assert_eq!(read, signed);
    let (m, opener) =
        Opener::from_signed(&read.encode(), &sk.verifying_key(), id, KeyEpoch(3), &key).unwrap();
    assert_eq!(m.created_ms, 5);
    let chunks = std::fs::File::open(out.join(format!("{id}.chunks"))).unwrap();
    let (pt, fin) = drain(OpenReader::new(opener, std::io::BufReader::new(chunks)));
    fin.unwrap();
    assert_eq!(pt, [kernel, initrd, extra].concat());

    // The same id again: refused, nothing overwritten.
    let again = seal_files(
        &inp.join("vmlinuz"),
        &inp.join("initrd"),
        "",
        None,
        &key,
        &sk,
        &p,
        &out,
        &mut |_, _| {},
    );
    assert!(matches!(
        again,
        Err(Error::InvalidInput {
            field: "out_dir",
            ..
        })
    ));
    // A missing input: an error naming it, and no files left behind.
    let p2 = SealParams::new(ImageId::from_bytes([9; 16]), KeyEpoch(1), 0);
    let err = seal_files(
        &inp.join("nope"),
        &inp.join("initrd"),
        "",
        None,
        &key,
        &sk,
        &p2,
        &out,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);
}
