//! Every refusal: each names what failed, and no byte of a refused chunk (or anything at all,
//! for a refused manifest or key) is handed out. Plaintext handed out before a refusal is
//! exactly the authentic chunks before the refused one.

mod common;

use common::*;
use sealed_image::{
    Aead, Error, ImageId, ImageKey, KeyEpoch, Manifest, OpenReader, Opener, SealParams,
    SignedManifest, TAG_LEN,
};

const CS: u32 = 64;

fn four_chunks() -> Fixture {
    sealed(3 * CS as usize + 20, CS, Aead::Aes256Gcm)
}

#[test]
fn tampered_ciphertext_byte() {
    for aead in Aead::ALL {
        let f = sealed(3 * CS as usize + 20, CS, aead);
        for i in 0..f.manifest.chunk_count {
            let mut c = f.chunks.clone();
            c[f.chunk(i).start + 3] ^= 0x40;
            let (out, fin) = f.open(&c);
            match fin {
                Err(Error::TamperedChunk { index, why }) => {
                    assert_eq!(index, i);
                    assert!(why.contains("does not authenticate"), "{why}");
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(out, &f.plaintext[..f.pt_offset(i)]);
            let o = f.opener();
            assert!(matches!(
                o.open_chunk(i, &c[f.chunk(i)]),
                Err(Error::TamperedChunk { .. })
            ));
            // In place: the buffer holds no plaintext afterwards.
            let mut buf = c[f.chunk(i)].to_vec();
            assert!(o.open_chunk_in_place(i, &mut buf).is_err());
            let pt_len = f.manifest.chunk_plaintext_len(i).unwrap() as usize;
            assert!(
                buf[..pt_len].iter().all(|b| *b == 0),
                "chunk {i}: buffer zeroed"
            );
        }
    }
}

#[test]
fn tampered_tag() {
    let f = four_chunks();
    let mut c = f.chunks.clone();
    c[f.chunk(2).end - 1] ^= 1;
    let (out, fin) = f.open(&c);
    assert!(
        matches!(fin, Err(Error::TamperedChunk { index: 2, why }) if why.contains("tag")),
        "{fin:?}"
    );
    assert_eq!(out, &f.plaintext[..f.pt_offset(2)]);
}

#[test]
fn truncated_files() {
    let f = four_chunks();
    let last = f.manifest.chunk_count - 1;
    // The last chunk dropped: the chunks before it are authentic, the image is not.
    let (out, fin) = f.open(&f.chunks[..f.chunk(last).start]);
    assert!(
        matches!(fin, Err(Error::Truncated { expected, got }) if expected == f.chunks.len() as u64 && got == f.chunk(last).start as u64),
        "{fin:?}"
    );
    assert_eq!(out, &f.plaintext[..f.pt_offset(last)]);
    // Cut in the middle of a chunk: nothing of that chunk.
    for cut in [1, CS as usize + TAG_LEN + 5, f.chunks.len() - 1] {
        let (out, fin) = f.open(&f.chunks[..cut]);
        assert!(
            matches!(fin, Err(Error::Truncated { .. })),
            "cut {cut}: {fin:?}"
        );
        let whole = cut / (CS as usize + TAG_LEN);
        assert_eq!(out, &f.plaintext[..f.pt_offset(whole as u64)], "cut {cut}");
    }
    let (out, fin) = f.open(&[]);
    assert!(out.is_empty() && matches!(fin, Err(Error::Truncated { got: 0, .. })));
    // An empty image has one (empty, final) chunk: an empty chunks file is truncated too.
    let e = sealed(0, CS, Aead::Aes256Gcm);
    assert_eq!(e.chunks.len(), TAG_LEN);
    assert!(matches!(
        e.open(&[]).1,
        Err(Error::Truncated {
            expected: 16,
            got: 0
        })
    ));
}

#[test]
fn reordered_swapped_and_duplicated_chunks() {
    let f = four_chunks();
    let full = CS as usize + TAG_LEN;
    let mut swapped = f.chunks.clone();
    let (a, b) = swapped.split_at_mut(full);
    a.swap_with_slice(&mut b[..full]);
    let (out, fin) = f.open(&swapped);
    assert!(
        matches!(
            fin,
            Err(Error::ReorderedOrWrongChunk { index: 0, found: 1 })
        ),
        "{fin:?}"
    );
    assert!(out.is_empty());
    let mut dup = f.chunks.clone();
    dup.copy_within(0..full, 2 * full);
    let (out, fin) = f.open(&dup);
    assert!(
        matches!(
            fin,
            Err(Error::ReorderedOrWrongChunk { index: 2, found: 0 })
        ),
        "{fin:?}"
    );
    assert_eq!(out, &f.plaintext[..2 * CS as usize]);
    let o = f.opener();
    assert!(matches!(
        o.open_chunk(1, &f.chunks[f.chunk(0)]),
        Err(Error::ReorderedOrWrongChunk { index: 1, found: 0 })
    ));
}

#[test]
fn chunk_from_another_image() {
    let f = four_chunks();
    // Same key, same plaintext and sizes, another image id / another epoch / another key.
    let others = [
        seal_with(
            params(2, 1, Aead::Aes256Gcm, CS),
            f.key.clone(),
            signer(),
            &[("kernel", f.plaintext.len())],
        ),
        seal_with(
            params(1, 2, Aead::Aes256Gcm, CS),
            f.key.clone(),
            signer(),
            &[("kernel", f.plaintext.len())],
        ),
        seal_with(
            params(1, 1, Aead::Aes256Gcm, CS),
            ImageKey::from_bytes([5; 32]),
            signer(),
            &[("kernel", f.plaintext.len())],
        ),
    ];
    for g in others {
        let mut c = f.chunks.clone();
        c[f.chunk(1)].copy_from_slice(&g.chunks[g.chunk(1)]);
        let (out, fin) = f.open(&c);
        assert!(
            matches!(fin, Err(Error::TamperedChunk { index: 1, .. })),
            "{fin:?}"
        );
        assert_eq!(out, &f.plaintext[..CS as usize]);
    }
}

#[test]
fn wrong_image_id_epoch_and_key() {
    let f = four_chunks();
    let other_id = ImageId::from_bytes([0xee; 16]);
    let r = Opener::from_signed(
        &f.manifest_file,
        &f.vk,
        other_id,
        f.params.key_epoch,
        &f.key,
    );
    assert!(
        matches!(r, Err(Error::WrongImageId { expected, found }) if expected == other_id && found == f.params.image_id)
    );
    let r = Opener::from_signed(
        &f.manifest_file,
        &f.vk,
        f.params.image_id,
        KeyEpoch(9),
        &f.key,
    );
    assert!(matches!(
        r,
        Err(Error::WrongKeyEpoch {
            expected: KeyEpoch(9),
            found: KeyEpoch(1)
        })
    ));
    let r = Opener::from_signed(
        &f.manifest_file,
        &f.vk,
        f.params.image_id,
        f.params.key_epoch,
        &ImageKey::from_bytes([1; 32]),
    );
    assert!(matches!(r, Err(Error::WrongKey)));
    for e in [
        Opener::from_signed(
            &f.manifest_file,
            &f.vk,
            other_id,
            f.params.key_epoch,
            &f.key,
        )
        .unwrap_err(),
        Opener::from_signed(
            &f.manifest_file,
            &f.vk,
            f.params.image_id,
            KeyEpoch(9),
            &f.key,
        )
        .unwrap_err(),
    ] {
        assert!(!e.to_string().is_empty());
    }
}

/// A manifest changed in memory (past its signature: a buggy or hostile signer) cannot make
/// chunks open under another image id, epoch or final flag: the key check and the AAD bind them.
#[test]
fn context_is_bound_even_past_the_signature() {
    let f = four_chunks();
    let mut m: Manifest = f.manifest.clone();
    m.image_id = ImageId::from_bytes([0xee; 16]);
    assert!(matches!(Opener::new(&m, &f.key), Err(Error::WrongKey)));
    let mut m = f.manifest.clone();
    m.key_epoch = KeyEpoch(2);
    assert!(matches!(Opener::new(&m, &f.key), Err(Error::WrongKey)));
    // With the key check of the other context (the key holder could compute it) the chunks
    // still fail: the AAD carries the image id.
    let other = seal_with(
        params(0xee, 1, Aead::Aes256Gcm, CS),
        f.key.clone(),
        signer(),
        &[("kernel", 1)],
    );
    let mut m = f.manifest.clone();
    m.image_id = other.params.image_id;
    m.key_check = other.manifest.key_check;
    let (out, fin) = drain(OpenReader::new(
        Opener::new(&m, &f.key).unwrap(),
        &f.chunks[..],
    ));
    assert!(
        matches!(fin, Err(Error::TamperedChunk { index: 0, why }) if why.contains("authenticate")),
        "{fin:?}"
    );
    assert!(out.is_empty());
    // Truncation by a rogue manifest claiming fewer chunks: the final flag refuses it.
    let mut m = f.manifest.clone();
    m.chunk_count = 2;
    m.plaintext_len = 2 * CS as u64;
    m.chunk_tags.truncate(2);
    m.sections[0].len = 2 * CS as u64;
    let o = Opener::new(&m, &f.key).unwrap();
    assert!(o.open_chunk(0, &f.chunks[f.chunk(0)]).is_ok());
    assert!(matches!(
        o.open_chunk(1, &f.chunks[f.chunk(1)]),
        Err(Error::TamperedChunk { index: 1, .. })
    ));
}

#[test]
fn unsigned_and_wrongly_signed_manifests() {
    let f = four_chunks();
    let sig_at = f.manifest_file.len() - 65;
    let (out, fin) = f.open_with_manifest(&f.manifest_file[..sig_at]);
    assert!(matches!(fin, Err(Error::Unsigned)) && out.is_empty());
    let mut none = f.manifest_file[..sig_at].to_vec();
    none.push(0);
    assert!(matches!(
        f.open_with_manifest(&none).1,
        Err(Error::Unsigned)
    ));
    // Signed by another key.
    let other = SignedManifest::sign(&f.manifest, &signer()).unwrap();
    let (out, fin) = f.open_with_manifest(&other.encode());
    assert!(matches!(fin, Err(Error::BadSignature)) && out.is_empty());
    // The signature zeroed.
    let mut zero = f.manifest_file.clone();
    zero[sig_at + 1..].fill(0);
    assert!(matches!(
        f.open_with_manifest(&zero).1,
        Err(Error::BadSignature)
    ));
}

#[test]
fn tampered_manifest_fields() {
    let f = sealed_multi(CS, Aead::Aes256Gcm);
    let text =
        String::from_utf8_lossy(&f.manifest_file[14..f.manifest_file.len() - 65]).to_string();
    for needle in [
        "\"plaintext_len\":1377",
        "\"chunk_count\":22",
        "marker=SEALED",
        "\"key_epoch\":1",
        "\"name\":\"extra\"",
        "aes-256-gcm",
    ] {
        let at = text
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} in {text}"))
            + 14
            + needle.len()
            - 1;
        let mut m = f.manifest_file.clone();
        m[at] ^= 0x01;
        let (out, fin) = f.open_with_manifest(&m);
        assert!(matches!(fin, Err(Error::BadSignature)), "{needle}: {fin:?}");
        assert!(out.is_empty());
    }
    // The version field and the length field are covered too.
    let mut m = f.manifest_file.clone();
    m[13] ^= 1;
    assert!(f.open_with_manifest(&m).1.is_err());
    let mut m = f.manifest_file.clone();
    m[9] = 2;
    assert!(matches!(
        f.open_with_manifest(&m).1,
        Err(Error::UnsupportedVersion { found: 2, .. })
    ));
}

#[test]
fn trailing_data() {
    let f = four_chunks();
    for extra in [
        vec![0u8],
        vec![7u8; CS as usize + TAG_LEN],
        f.chunks[f.chunk(0)].to_vec(),
    ] {
        let mut c = f.chunks.clone();
        c.extend_from_slice(&extra);
        let (out, fin) = f.open(&c);
        assert!(
            matches!(fin, Err(Error::TrailingData { chunk_count: 4 })),
            "{fin:?}"
        );
        // The last chunk is not handed out: the stream had to end right after it.
        assert_eq!(out, &f.plaintext[..f.pt_offset(3)]);
    }
    let e = sealed(0, CS, Aead::ChaCha20Poly1305);
    let mut c = e.chunks.clone();
    c.push(1);
    assert!(matches!(
        e.open(&c).1,
        Err(Error::TrailingData { chunk_count: 1 })
    ));
}

#[test]
fn single_chunk_api_refusals_and_unfinished_reads() {
    let f = four_chunks();
    let o = f.opener();
    assert!(matches!(
        o.open_chunk(4, &f.chunks[..16]),
        Err(Error::ChunkOutOfRange { index: 4, count: 4 })
    ));
    assert!(matches!(
        o.open_chunk(0, &f.chunks[..10]),
        Err(Error::ChunkLength {
            index: 0,
            expected: 80,
            got: 10
        })
    ));
    assert!(matches!(
        o.open_chunk(3, &f.chunks[f.chunk(2)]),
        Err(Error::ChunkLength { index: 3, .. })
    ));
    // finish() before the end is refused.
    let mut r = OpenReader::new(f.opener(), &f.chunks[..]);
    let mut buf = [0u8; 10];
    std::io::Read::read(&mut r, &mut buf).unwrap();
    assert_eq!(r.resume_point(), 0);
    assert!(matches!(
        r.finish(),
        Err(Error::Unfinished { next: 0, count: 4 })
    ));
    let r = OpenReader::new(f.opener(), &f.chunks[..]);
    assert!(matches!(r.finish(), Err(Error::Unfinished { .. })));
}

#[test]
fn chacha_and_aes_images_do_not_mix() {
    let a = sealed(200, CS, Aead::Aes256Gcm);
    let c = seal_with(
        SealParams {
            aead: Aead::ChaCha20Poly1305,
            ..a.params.clone()
        },
        a.key.clone(),
        signer(),
        &[("kernel", 200)],
    );
    let (out, fin) = a.open(&c.chunks);
    assert!(matches!(fin, Err(Error::TamperedChunk { index: 0, .. })) && out.is_empty());
    let mut m = a.manifest.clone();
    m.aead = Aead::ChaCha20Poly1305;
    assert!(matches!(Opener::new(&m, &a.key), Err(Error::WrongKey)));
}
