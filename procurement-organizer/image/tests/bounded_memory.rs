//! A 256 MiB image generated on the fly (never held in memory) is sealed and opened with the
//! heap bounded by a few chunk buffers: memory does not grow with the image. Measured with a
//! counting allocator; one test in this binary so nothing else allocates alongside.

#[path = "common/alloc.rs"]
mod alloc;
mod common;

#[global_allocator]
static A: alloc::Counting = alloc::Counting;

use std::cell::RefCell;
use std::io::{self, BufRead, Read, Write};
use std::rc::Rc;

use sealed_image::{Aead, ImageKey, OpenReader, Opener, SealParams, Sealer, SigningKey, TAG_LEN};

const IMAGE: u64 = 256 << 20;
const CHUNK: u32 = 1 << 20;

/// Deterministic plaintext of `len` bytes: a 64 KiB block repeated, each copy stamped with
/// its number (so no two 64 KiB blocks are equal), produced with memcpy only.
struct Gen {
    pos: u64,
    len: u64,
    block: Vec<u8>,
}

impl Gen {
    fn new(len: u64) -> Self {
        let block = (0..65536u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        Self { pos: 0, len, block }
    }
}

impl Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = (self.len - self.pos) as usize;
        let n = buf.len().min(left);
        let mut done = 0;
        while done < n {
            let p = self.pos + done as u64;
            let off = (p % 65536) as usize;
            let take = (65536 - off).min(n - done);
            buf[done..done + take].copy_from_slice(&self.block[off..off + take]);
            // Stamp the block number over its first 8 bytes (where they fall in this piece).
            let stamp = (p / 65536).to_le_bytes();
            for (k, s) in stamp.iter().enumerate() {
                if k >= off && k < off + take {
                    buf[done + k - off] = *s;
                }
            }
            done += take;
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// A `Write` into a shared byte queue.
#[derive(Clone, Default)]
struct Queue(Rc<RefCell<Vec<u8>>>);

impl Write for Queue {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The `.chunks` stream, sealed lazily one chunk ahead of the reader.
struct LazySealed {
    source: Gen,
    sealer: Option<Sealer<Queue>>,
    queue: Queue,
    at: usize,
    signer: SigningKey,
    piece: Vec<u8>,
}

impl Read for LazySealed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            {
                let q = self.queue.0.borrow();
                if self.at < q.len() {
                    let n = buf.len().min(q.len() - self.at);
                    buf[..n].copy_from_slice(&q[self.at..self.at + n]);
                    self.at += n;
                    return Ok(n);
                }
            }
            self.queue.0.borrow_mut().clear();
            self.at = 0;
            let Some(s) = self.sealer.as_mut() else {
                return Ok(0);
            };
            let n = self.source.read(&mut self.piece)?;
            if n > 0 {
                s.write_all(&self.piece[..n])?;
            } else if let Some(s) = self.sealer.take() {
                s.finish(&self.signer).map_err(|e| e.into_io())?;
            }
        }
    }
}

/// Seals then opens an image of `image` bytes generated on the fly; returns the heap peaks
/// of sealing and of opening.
fn measure(image: u64) -> (usize, usize) {
    let key = ImageKey::from_bytes([3; 32]);
    let signer = SigningKey::from_pkcs8(common::signer().pkcs8_der()).unwrap();
    let params = SealParams {
        chunk_size: CHUNK,
        aead: Aead::Aes256Gcm,
        ..SealParams::new(
            sealed_image::ImageId::from_bytes([8; 16]),
            sealed_image::KeyEpoch(1),
            0,
        )
    };
    let cs = CHUNK as usize;

    // Pass 1: seal into a sink; the manifest (with the tag list) is all that is kept.
    let (signed, seal_peak) = alloc::peak_during(|| {
        let mut s = Sealer::new(&params, "console=ttyS0", &key, io::sink()).unwrap();
        assert_eq!(
            s.add_section("kernel", &mut Gen::new(image)).unwrap(),
            image
        );
        assert_eq!(s.buffer_capacity(), cs);
        s.finish(&signer).unwrap()
    });
    let manifest = signed.verify(&signer.verifying_key()).unwrap();
    assert_eq!(manifest.plaintext_len, image);
    assert_eq!(manifest.chunk_count, image / u64::from(CHUNK));

    // Pass 2: open the stream while it is re-sealed on the fly, compare every byte.
    let ((), open_peak) = alloc::peak_during(|| {
        let queue = Queue::default();
        let mut resealer = Sealer::new(&params, "console=ttyS0", &key, queue.clone()).unwrap();
        resealer.start_section("kernel").unwrap();
        let source = LazySealed {
            source: Gen::new(image),
            sealer: Some(resealer),
            queue,
            at: 0,
            signer: SigningKey::from_pkcs8(signer.pkcs8_der()).unwrap(),
            piece: vec![0; cs],
        };
        let opener = Opener::new(&manifest, &key).unwrap();
        let mut r = OpenReader::new(opener, source);
        assert_eq!(r.buffer_capacity(), cs + TAG_LEN);
        let mut want = Gen::new(image);
        let mut expect = vec![0u8; cs];
        let mut total = 0u64;
        loop {
            let got = r.fill_buf().unwrap();
            if got.is_empty() {
                break;
            }
            let n = got.len();
            want.read_exact(&mut expect[..n]).unwrap();
            assert!(got == &expect[..n], "plaintext differs at {total}");
            r.consume(n);
            total += n as u64;
        }
        assert_eq!(r.buffer_capacity(), cs + TAG_LEN, "the buffer never grew");
        let v = r.finish().unwrap();
        assert_eq!(v.plaintext_bytes, image);
        assert_eq!(total, image);
    });
    (seal_peak, open_peak)
}

#[test]
fn a_256_mib_image_seals_and_opens_in_bounded_memory() {
    let cs = CHUNK as usize;
    let (seal_small, open_small) = measure(16 << 20);
    let (seal_big, open_big) = measure(IMAGE);
    eprintln!(
        "heap peak, 16 MiB / 256 MiB image: sealing {seal_small} / {seal_big} B, opening {open_small} / {open_big} B"
    );
    // Sealing: its chunk buffer, the tag list and the generator's 64 KiB block.
    assert!(
        seal_big < cs + 256 * 1024,
        "sealing 256 MiB peaked at {seal_big} heap bytes"
    );
    // Opening, with this test's own on-the-fly source: the reader's chunk buffer, the
    // re-sealer's buffer, its input piece, the queue (up to 2 MiB as it doubles) and the
    // comparison buffer: about 6 MiB, for any image size.
    assert!(
        open_big < 8 * cs,
        "opening 256 MiB peaked at {open_big} heap bytes"
    );
    // 16 times the image, the same memory but for the tag lists: the sealer's 16 bytes per
    // chunk; when opening, the reader's copy of the tag list (16 bytes per chunk) plus what
    // the test's re-sealer needs to sign its manifest at the end (tags, base64, JSON: about
    // 80 bytes per chunk).
    assert!(
        seal_big <= seal_small + 240 * 16,
        "{seal_small} -> {seal_big}"
    );
    assert!(
        open_big <= open_small + 240 * 128,
        "{open_small} -> {open_big}"
    );
}
