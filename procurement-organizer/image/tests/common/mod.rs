//! Shared by the integration tests: a sealed fixture in memory and the whole opening path.
#![allow(dead_code)]

use std::io::{Read, Write};

use ring::rand::SystemRandom;
use sealed_image::{
    Aead, Error, ImageId, ImageKey, KeyEpoch, Manifest, OpenReader, Opener, SealParams,
    SignedManifest, SigningKey, Verified, VerifyingKey,
};

/// A deterministic plaintext: byte `i` depends on `i` and `seed` (no two chunks alike).
pub fn plaintext(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u64).wrapping_mul(2654435761) >> 7) as u8 ^ seed ^ (i >> 12) as u8)
        .collect()
}

/// One sealed image, all in memory.
pub struct Fixture {
    pub key: ImageKey,
    pub signer: SigningKey,
    pub vk: VerifyingKey,
    pub params: SealParams,
    pub cmdline: String,
    pub plaintext: Vec<u8>,
    /// Section name and length, in order.
    pub sections: Vec<(String, usize)>,
    pub chunks: Vec<u8>,
    pub signed: SignedManifest,
    pub manifest_file: Vec<u8>,
    pub manifest: Manifest,
}

pub fn signer() -> SigningKey {
    SigningKey::generate(&SystemRandom::new()).unwrap()
}

pub fn params(id: u8, epoch: u32, aead: Aead, chunk_size: u32) -> SealParams {
    SealParams {
        image_id: ImageId::from_bytes([id; 16]),
        key_epoch: KeyEpoch(epoch),
        aead,
        chunk_size,
        created_ms: 1_767_225_600_000,
    }
}

/// Seals `sections` (name, length; plaintext from [`plaintext`]) through `add_section`.
pub fn seal_with(
    params: SealParams,
    key: ImageKey,
    signer: SigningKey,
    sections: &[(&str, usize)],
) -> Fixture {
    let total: usize = sections.iter().map(|s| s.1).sum();
    let pt = plaintext(total, params.image_id.as_bytes()[0]);
    let cmdline = "console=ttyS0 root=/dev/ram0 marker=SEALED".to_string();
    let mut chunks = Vec::new();
    let mut s = sealed_image::Sealer::new(&params, &cmdline, &key, &mut chunks).unwrap();
    let mut at = 0;
    for (name, len) in sections {
        let got = s.add_section(name, &mut &pt[at..at + len]).unwrap();
        assert_eq!(got, *len as u64);
        at += len;
    }
    let signed = s.finish(&signer).unwrap();
    let vk = signer.verifying_key();
    let manifest = signed.verify(&vk).unwrap();
    let manifest_file = signed.encode();
    Fixture {
        key,
        signer,
        vk,
        params,
        cmdline,
        plaintext: pt,
        sections: sections.iter().map(|(n, l)| (n.to_string(), *l)).collect(),
        chunks,
        signed,
        manifest_file,
        manifest,
    }
}

/// A one-section image of `len` bytes.
pub fn sealed(len: usize, chunk_size: u32, aead: Aead) -> Fixture {
    seal_with(
        params(1, 1, aead, chunk_size),
        ImageKey::from_bytes([42; 32]),
        signer(),
        &[("kernel", len)],
    )
}

/// A three-section image: kernel, initramfs, extra.
pub fn sealed_multi(chunk_size: u32, aead: Aead) -> Fixture {
    seal_with(
        params(1, 1, aead, chunk_size),
        ImageKey::from_bytes([42; 32]),
        signer(),
        &[("kernel", 300), ("initramfs", 1000), ("extra", 77)],
    )
}

impl Fixture {
    pub fn opener(&self) -> Opener {
        Opener::from_signed(
            &self.manifest_file,
            &self.vk,
            self.params.image_id,
            self.params.key_epoch,
            &self.key,
        )
        .unwrap()
        .1
    }

    /// Byte range of chunk `i` in the chunks file.
    pub fn chunk(&self, i: u64) -> std::ops::Range<usize> {
        let r = self.manifest.chunk_range(i).unwrap();
        r.start as usize..r.end as usize
    }

    /// Plaintext offset of chunk `i`.
    pub fn pt_offset(&self, i: u64) -> usize {
        self.manifest.chunk_plaintext_offset(i) as usize
    }
}

/// The whole opening path as the agent runs it: manifest checks, stream, final check.
/// Returns the plaintext handed out before the outcome, and the outcome.
pub fn open_stream(
    manifest_file: &[u8],
    vk: &VerifyingKey,
    id: ImageId,
    epoch: KeyEpoch,
    key: &ImageKey,
    chunks: &[u8],
) -> (Vec<u8>, Result<Verified, Error>) {
    let opener = match Opener::from_signed(manifest_file, vk, id, epoch, key) {
        Ok((_, o)) => o,
        Err(e) => return (Vec::new(), Err(e)),
    };
    drain(OpenReader::new(opener, chunks))
}

/// Reads `r` to its end or first error (small reads, to cross chunk edges), then finishes.
pub fn drain<R: Read>(mut r: OpenReader<R>) -> (Vec<u8>, Result<Verified, Error>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 37];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => {
                let err = Error::from_io(&e).cloned().expect("an image error");
                // The reader repeats its error, and finish reports it too.
                assert!(r.read(&mut buf).is_err());
                let fin = r.finish();
                assert!(fin.is_err());
                return (out, Err(err));
            }
        }
    }
    let fin = r.finish();
    (out, fin)
}

impl Fixture {
    /// [`open_stream`] of this fixture with other chunk bytes.
    pub fn open(&self, chunks: &[u8]) -> (Vec<u8>, Result<Verified, Error>) {
        open_stream(
            &self.manifest_file,
            &self.vk,
            self.params.image_id,
            self.params.key_epoch,
            &self.key,
            chunks,
        )
    }

    /// [`open_stream`] of this fixture with another manifest file.
    pub fn open_with_manifest(&self, manifest_file: &[u8]) -> (Vec<u8>, Result<Verified, Error>) {
        open_stream(
            manifest_file,
            &self.vk,
            self.params.image_id,
            self.params.key_epoch,
            &self.key,
            &self.chunks,
        )
    }
}

/// Signs an arbitrary JSON body in the manifest framing (version 1), as a hostile or buggy
/// sealer holding the tenant's key could.
pub fn sign_body(signer: &SigningKey, body: &[u8]) -> Vec<u8> {
    let mut signed = sealed_image::MANIFEST_MAGIC.to_vec();
    signed.extend_from_slice(&1u16.to_be_bytes());
    signed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    signed.extend_from_slice(body);
    let pair =
        ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(signer.pkcs8_der()).unwrap();
    let sig = pair.sign(&signed);
    signed.push(1);
    signed.extend_from_slice(sig.as_ref());
    signed
}

/// The JSON body of a manifest file written by the sealer.
pub fn body_of(manifest_file: &[u8]) -> serde_json::Value {
    let len = u32::from_be_bytes(manifest_file[10..14].try_into().unwrap()) as usize;
    serde_json::from_slice(&manifest_file[14..14 + len]).unwrap()
}

/// A `Write` that accepts `budget` bytes, then fails (a full disk, a dropped upload).
pub struct FailingWriter {
    pub budget: usize,
}

impl Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.budget == 0 {
            return Err(std::io::Error::other("disk full"));
        }
        let n = buf.len().min(self.budget);
        self.budget -= n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `Read` that delivers `budget` bytes of `data`, then fails (a dropped connection).
pub struct DroppingReader<'a> {
    pub data: &'a [u8],
    pub budget: usize,
}

impl Read for DroppingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.budget == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset",
            ));
        }
        let n = buf.len().min(self.budget).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.budget -= n;
        Ok(n)
    }
}
