//! Property: random mutations of a sealed image (chunks file, manifest file, or both) never
//! yield plaintext that is not the original's, never pass the final verification, and never
//! panic. Plaintext handed out before a refusal is exactly a prefix of the original ending on a
//! chunk boundary, and never includes the mutated chunk.

mod common;

use std::sync::OnceLock;

use common::*;
use proptest::prelude::*;
use sealed_image::{Aead, TAG_LEN};

fn fixtures() -> &'static [Fixture; 2] {
    static F: OnceLock<[Fixture; 2]> = OnceLock::new();
    F.get_or_init(|| {
        [
            sealed_multi(64, Aead::Aes256Gcm),
            sealed_multi(64, Aead::ChaCha20Poly1305),
        ]
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    /// XOR a byte of the chunks file with a non-zero value.
    FlipChunks(usize, u8),
    /// XOR a byte of the manifest file.
    FlipManifest(usize, u8),
    /// Cut the chunks file to a length.
    Truncate(usize),
    /// Append bytes to the chunks file.
    Append(Vec<u8>),
    /// Insert bytes into the chunks file.
    Insert(usize, Vec<u8>),
    /// Swap two whole chunk slots.
    Swap(usize, usize),
    /// Remove a range of the chunks file.
    Remove(usize, usize),
    /// Cut the manifest file.
    TruncateManifest(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::FlipChunks(i, x)),
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::FlipManifest(i, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..100).prop_map(Mutation::Append),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..100)
        )
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        (any::<usize>(), 1..200usize).prop_map(|(a, n)| Mutation::Remove(a, n)),
        any::<usize>().prop_map(Mutation::TruncateManifest),
    ]
}

/// Applies `m` to the chunks file `c` and the manifest file `mf`.
fn apply(c: &mut Vec<u8>, mf: &mut Vec<u8>, m: &Mutation) {
    let slot = 64 + TAG_LEN;
    match m {
        Mutation::FlipChunks(i, x) if !c.is_empty() => {
            let i = i % c.len();
            c[i] ^= x;
        }
        Mutation::FlipManifest(i, x) if !mf.is_empty() => {
            let i = i % mf.len();
            mf[i] ^= x;
        }
        Mutation::Truncate(n) if !c.is_empty() => c.truncate(n % c.len()),
        Mutation::Append(v) => c.extend_from_slice(v),
        Mutation::Insert(i, v) => {
            let i = i % (c.len() + 1);
            c.splice(i..i, v.iter().copied());
        }
        Mutation::Swap(a, b) if c.len() >= 2 * slot => {
            let slots = c.len() / slot;
            let (a, b) = (a % slots, b % slots);
            let (lo, hi) = (a.min(b), a.max(b));
            if lo != hi {
                let (x, y) = c.split_at_mut(hi * slot);
                x[lo * slot..(lo + 1) * slot].swap_with_slice(&mut y[..slot]);
            }
        }
        Mutation::Remove(a, n) if !c.is_empty() => {
            let a = a % c.len();
            let end = (a + n).min(c.len());
            c.drain(a..end);
        }
        Mutation::TruncateManifest(n) if !mf.is_empty() => mf.truncate(n % mf.len()),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn mutations_never_yield_foreign_plaintext(which in 0..2usize, muts in proptest::collection::vec(mutation(), 1..4)) {
        let f = &fixtures()[which];
        let mut chunks = f.chunks.clone();
        let mut manifest_file = f.manifest_file.clone();
        for m in &muts {
            apply(&mut chunks, &mut manifest_file, m);
        }
        prop_assume!(chunks != f.chunks || manifest_file != f.manifest_file);
        let (out, fin) = open_stream(&manifest_file, &f.vk, f.params.image_id, f.params.key_epoch, &f.key, &chunks);
        prop_assert!(fin.is_err(), "a mutated image passed the final verification");
        // Whatever came out is the original's prefix on a chunk boundary.
        prop_assert!(out.len() % 64 == 0 || out.len() == f.plaintext.len());
        prop_assert_eq!(&out[..], &f.plaintext[..out.len()]);
        // The first chunk that differs from the original is never handed out.
        if manifest_file == f.manifest_file {
            let first_bad = chunks.iter().zip(&f.chunks).position(|(a, b)| a != b)
                .unwrap_or(chunks.len().min(f.chunks.len())) / (64 + TAG_LEN);
            prop_assert!(out.len() <= first_bad * 64);
        } else {
            prop_assert!(out.is_empty(), "a changed manifest let plaintext out");
        }
    }
}
