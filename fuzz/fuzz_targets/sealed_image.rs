//! Fuzz target: the sealed image format (`sealed-image`). The first byte picks a mode:
//! 0 a manifest file (framing, signature check, body parser and validation), 1 a raw `.chunks`
//! stream for a fixed image (optionally resumed at a chunk), 2 one chunk for `open_chunk`, 3
//! byte edits (offset, xor) applied to the fixed image's chunks file. Nothing may panic; no
//! plaintext may come out that is not the fixed image's own, at its place; only the exact
//! original bytes may pass the final verification.

#![no_main]

use std::io::Read;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sealed_image::{
    Aead, ImageId, ImageKey, KeyEpoch, Manifest, OpenReader, Opener, SealParams, Sealer,
    SignedManifest, SigningKey,
};

/// RFC 8032 test 1 secret as PKCS#8 v1.
const SIGNER: &str = "302e020100300506032b6570042204209d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const KEY: [u8; 32] = [0x42; 32];

struct Image {
    plaintext: Vec<u8>,
    chunks: Vec<u8>,
    manifest: Manifest,
    signer: SigningKey,
}

fn image() -> &'static Image {
    static I: OnceLock<Image> = OnceLock::new();
    I.get_or_init(|| {
        let signer = SigningKey::from_pkcs8(&hex::decode(SIGNER).unwrap()).unwrap();
        let params = SealParams {
            image_id: ImageId::from_bytes([7; 16]),
            key_epoch: KeyEpoch(1),
            aead: Aead::Aes256Gcm,
            chunk_size: 64,
            created_ms: 0,
        };
        let plaintext: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut chunks = Vec::new();
        let key = ImageKey::from_bytes(KEY);
        let mut s = Sealer::new(&params, "console=ttyS0", &key, &mut chunks).unwrap();
        s.add_section("kernel", &mut &plaintext[..100]).unwrap();
        s.add_section("initramfs", &mut &plaintext[100..]).unwrap();
        let signed = s.finish(&signer).unwrap();
        let manifest = signed.verify(&signer.verifying_key()).unwrap();
        Image {
            plaintext,
            chunks,
            manifest,
            signer,
        }
    })
}

fn opener() -> Opener {
    Opener::new(&image().manifest, &ImageKey::from_bytes(KEY)).unwrap()
}

/// Reads `chunks` from chunk `start`; checks what came out.
fn stream(chunks: &[u8], start: u64) {
    let img = image();
    let Ok(mut r) = OpenReader::resume_at(opener(), chunks, start) else {
        assert!(start > img.manifest.chunk_count);
        return;
    };
    let mut out = Vec::new();
    let res = r.read_to_end(&mut out);
    let from = img.manifest.chunk_plaintext_offset(start) as usize;
    assert!(out.len() <= img.plaintext.len() - from);
    assert_eq!(
        &out[..],
        &img.plaintext[from..from + out.len()],
        "foreign plaintext"
    );
    let fin = r.finish();
    if res.is_ok() && fin.is_ok() {
        let at = match img.manifest.chunk_range(start) {
            Ok(r) => r.start as usize,
            Err(_) => img.chunks.len(),
        };
        assert_eq!(chunks, &img.chunks[at..], "altered chunks passed");
        assert_eq!(out.len(), img.plaintext.len() - from);
    } else {
        assert!(fin.is_err());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let img = image();
    match mode % 4 {
        0 => {
            let Ok(signed) = SignedManifest::decode(rest) else {
                return;
            };
            let _ = signed.encode();
            if let Ok(m) = signed.verify(&img.signer.verifying_key()) {
                assert_eq!(
                    m, img.manifest,
                    "another manifest verified under the fixed key"
                );
            }
            if let Ok(m) = signed.parse_unverified() {
                m.validate().unwrap();
                let last = m.chunk_count - 1;
                let r = m.chunk_range(last).unwrap();
                assert_eq!(r.end, m.chunks_file_len());
                let _ = Opener::new(&m, &ImageKey::from_bytes(KEY));
            }
        }
        1 => {
            let Some((&start, chunks)) = rest.split_first() else {
                return;
            };
            stream(chunks, u64::from(start % 8));
        }
        2 => {
            let Some((&index, chunk)) = rest.split_first() else {
                return;
            };
            let index = u64::from(index % 8);
            if let Ok(pt) = opener().open_chunk(index, chunk) {
                let r = img.manifest.chunk_range(index).unwrap();
                assert_eq!(chunk, &img.chunks[r.start as usize..r.end as usize]);
                let from = img.manifest.chunk_plaintext_offset(index) as usize;
                assert_eq!(&pt[..], &img.plaintext[from..from + pt.len()]);
            }
        }
        _ => {
            let mut chunks = img.chunks.clone();
            for e in rest.chunks_exact(3) {
                let at = usize::from(u16::from_be_bytes([e[0], e[1]]));
                match chunks.get_mut(at) {
                    Some(b) => *b ^= e[2],
                    None if e[2] == 0 => chunks.truncate(at % (img.chunks.len() + 1)),
                    None => chunks.push(e[2]),
                }
            }
            stream(&chunks, 0);
        }
    }
});
