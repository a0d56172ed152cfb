//! The sealed image benchmark: sealing and opening throughput (one thread) of an image generated
//! on the fly, against `openssl speed -evp` for the same AEAD (encrypt and `-decrypt`, 64 KiB
//! blocks) and ring's raw AEAD on one chunk buffer, all measured in the same run; then the
//! reader's peak memory (VmHWM, reset through /proc/self/clear_refs) while it opens a 64 MiB and
//! a full-size image, to show that memory does not follow the image size. Needs an optimised
//! build of `lab` (scripts/bench.sh image builds one); no root, no namespaces. IO.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::Path;

use anyhow::{Context, Result, bail};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
use sealed_image::{
    Aead, ImageId, ImageKey, KeyEpoch, Manifest, OpenReader, Opener, SealParams, Sealer, SigningKey,
};

use super::scratch;

mod measure;
mod plaintext;
mod report;

use measure::{Stopwatch, Took, command_text, loadavg, openssl_speed, proc_status_kib};
pub use measure::{median, parse_openssl_speed, parse_status_kib};
use plaintext::Gen;
pub use report::report;

/// Chunk size of the measured images (the format's default).
pub const CHUNK: u32 = sealed_image::DEFAULT_CHUNK_SIZE;
/// Rounds; each round measures everything once, interleaved, so that load from elsewhere hits
/// ours and the reference alike. Medians are reported.
const ROUNDS: usize = 5;
/// Seconds per `openssl speed` measurement.
const OPENSSL_SECS: u32 = 1;
/// Bytes each way for ring's raw AEAD per round.
const RING_BYTES: u64 = 256 << 20;
/// Size of the small image of the memory comparison.
const SMALL: u64 = 64 << 20;

/// A throughput, MB/s (10^6 bytes per second), by wall clock and by this thread's CPU time
/// (user + system: what `openssl speed` divides by, without `-elapsed`, is user time).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    pub wall_mbs: f64,
    pub cpu_mbs: f64,
}

/// One round of one AEAD.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Round {
    /// `openssl speed -evp <aead> -bytes 65536` and with `-decrypt` (openssl's own divisor).
    pub openssl_enc_mbs: f64,
    pub openssl_dec_mbs: f64,
    /// ring's AEAD alone, in place on one chunk-sized buffer.
    pub ring_seal: Rate,
    pub ring_open: Rate,
    /// Sealer over generated plaintext, chunks to `io::sink()`.
    pub seal_sink: Rate,
    /// The same, chunks written to a file (page cache, no fsync).
    pub seal_file: Rate,
    /// OpenReader over the chunks file, each authenticated chunk consumed in place, then
    /// `finish`.
    pub open: Rate,
}

#[derive(Debug, Clone)]
pub struct AeadResult {
    pub aead: Aead,
    pub rounds: Vec<Round>,
}

/// The reader's memory while opening one image.
#[derive(Debug, Clone)]
pub struct MemResult {
    pub image_bytes: u64,
    /// VmRSS of this process right before opening (VmHWM is reset to it).
    pub rss_before_kib: u64,
    /// VmHWM after opening the whole image.
    pub hwm_kib: u64,
}

#[derive(Debug, Clone)]
pub struct ImageBenchResult {
    pub image_bytes: u64,
    pub aeads: Vec<AeadResult>,
    /// Writing the image's size to a file in 1 MiB writes, no crypto (what `seal -> file`
    /// pays the kernel), one per round.
    pub file_write: Vec<Rate>,
    /// Reading a chunks file from the page cache in 1 MiB reads, no crypto, one per round.
    pub file_read: Vec<Rate>,
    pub mem: Vec<MemResult>,
    pub openssl_version: String,
    pub loadavg_start: String,
    pub loadavg_end: String,
}

/// Runs the whole benchmark with an image of `image_mib` MiB.
pub fn bench(image_mib: u64) -> Result<ImageBenchResult> {
    if cfg!(debug_assertions) {
        bail!(
            "lab was built without optimisations, which would measure the debug build: run scripts/bench.sh image (it builds lab with --release)"
        );
    }
    let image_bytes = image_mib << 20;
    let dir = scratch("image")?;
    let openssl_version = command_text("openssl", &["version"])?.trim().to_string();
    let loadavg_start = loadavg();
    let key = ImageKey::from_bytes([0x5a; 32]);
    let signer = SigningKey::generate(&ring::rand::SystemRandom::new())
        .context("generating a signing key")?;
    let mut aeads: Vec<AeadResult> = Aead::ALL
        .into_iter()
        .map(|aead| AeadResult {
            aead,
            rounds: Vec::new(),
        })
        .collect();
    let mut file_write = Vec::new();
    let mut file_read = Vec::new();
    for round in 1..=ROUNDS {
        eprintln!("image bench: round {round} of {ROUNDS} ({image_mib} MiB, both AEADs)");
        for (n, a) in aeads.iter_mut().enumerate() {
            let aead = a.aead;
            let mut r = Round {
                openssl_enc_mbs: openssl_speed(aead, false)?,
                openssl_dec_mbs: openssl_speed(aead, true)?,
                ..Round::default()
            };
            (r.ring_seal, r.ring_open) = ring_raw(aead, RING_BYTES)?;
            let params = params(n as u8, aead);
            let chunks = dir.join(format!("{}.chunks", params.image_id));
            let (_, took) = seal(&params, &key, &signer, image_bytes, None)?;
            r.seal_sink = took.rate(image_bytes);
            if n == 0 {
                // The kernel's share of `seal -> file`, measured right before it.
                let plain = dir.join("plain.bin");
                file_write.push(write_file(&plain, image_bytes)?.rate(image_bytes));
                let _ = std::fs::remove_file(&plain);
            }
            let _ = std::fs::remove_file(&chunks);
            let (m, took) = seal(&params, &key, &signer, image_bytes, Some(&chunks))?;
            r.seal_file = took.rate(image_bytes);
            r.open = open_file(&m, &key, &chunks)?.rate(image_bytes);
            if n == 0 {
                file_read.push(read_file(&chunks)?.rate(m.chunks_file_len()));
            }
            let _ = std::fs::remove_file(&chunks);
            a.rounds.push(r);
        }
    }
    eprintln!("image bench: reader memory at 64 MiB and {image_mib} MiB");
    let mut mem = Vec::new();
    for size in [SMALL.min(image_bytes), image_bytes] {
        let params = params(9, Aead::Aes256Gcm);
        let chunks = dir.join(format!("{}.chunks", params.image_id));
        let _ = std::fs::remove_file(&chunks);
        let (m, _) = seal(&params, &key, &signer, size, Some(&chunks))?;
        std::fs::write("/proc/self/clear_refs", "5").context("resetting VmHWM")?;
        let rss_before_kib = proc_status_kib("VmRSS")?;
        open_file(&m, &key, &chunks)?;
        let hwm_kib = proc_status_kib("VmHWM")?;
        let _ = std::fs::remove_file(&chunks);
        mem.push(MemResult {
            image_bytes: size,
            rss_before_kib,
            hwm_kib,
        });
    }
    Ok(ImageBenchResult {
        image_bytes,
        aeads,
        file_write,
        file_read,
        mem,
        openssl_version,
        loadavg_start,
        loadavg_end: loadavg(),
    })
}

fn params(id: u8, aead: Aead) -> SealParams {
    SealParams {
        aead,
        chunk_size: CHUNK,
        ..SealParams::new(ImageId::from_bytes([id; 16]), KeyEpoch(1), 0)
    }
}

/// Seals `len` generated bytes to `out` (a file) or to a sink; returns the manifest and the
/// time taken (file: including the final flush, not an fsync).
fn seal(
    params: &SealParams,
    key: &ImageKey,
    signer: &SigningKey,
    len: u64,
    out: Option<&Path>,
) -> Result<(Manifest, Took)> {
    let mut source = Gen::new(len);
    let t = Stopwatch::start();
    let signed = match out {
        Some(p) => {
            let f = File::create(p).with_context(|| format!("creating {}", p.display()))?;
            let mut s = Sealer::new(params, "console=ttyS0", key, f)?;
            s.add_section("kernel", &mut source)?;
            s.finish(signer)?
        }
        None => {
            let mut s = Sealer::new(params, "console=ttyS0", key, io::sink())?;
            s.add_section("kernel", &mut source)?;
            s.finish(signer)?
        }
    };
    let took = t.stop();
    Ok((signed.verify(&signer.verifying_key())?, took))
}

/// Opens the chunks file to its end, consuming each authenticated chunk in place, and runs the
/// final verification; returns the time taken.
fn open_file(manifest: &Manifest, key: &ImageKey, chunks: &Path) -> Result<Took> {
    let t = Stopwatch::start();
    let f = File::open(chunks).with_context(|| format!("opening {}", chunks.display()))?;
    let mut r = OpenReader::new(Opener::new(manifest, key)?, f);
    let mut total = 0u64;
    let mut check = 0u8;
    loop {
        let got = r.fill_buf()?;
        let Some(&last) = got.last() else { break };
        check ^= last;
        let n = got.len();
        r.consume(n);
        total += n as u64;
    }
    let v = r.finish()?;
    let took = t.stop();
    std::hint::black_box(check);
    if total != manifest.plaintext_len || v.plaintext_bytes != total {
        bail!(
            "opened {total} bytes, the manifest says {}",
            manifest.plaintext_len
        );
    }
    Ok(took)
}

/// Writes `len` bytes of one 1 MiB buffer to a new file; returns the time taken.
fn write_file(path: &Path, len: u64) -> Result<Took> {
    use std::io::Write as _;
    let buf = vec![0x33u8; CHUNK as usize];
    let t = Stopwatch::start();
    let mut f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(t.stop())
}

/// Reads a file to its end in 1 MiB reads; returns the time taken.
fn read_file(path: &Path) -> Result<Took> {
    let mut buf = vec![0u8; CHUNK as usize];
    let t = Stopwatch::start();
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    while f.read(&mut buf)? > 0 {}
    Ok(t.stop())
}

/// ring's AEAD in place on one chunk-sized buffer, `total` bytes each way.
fn ring_raw(aead: Aead, total: u64) -> Result<(Rate, Rate)> {
    let alg = match aead {
        Aead::Aes256Gcm => &ring::aead::AES_256_GCM,
        Aead::ChaCha20Poly1305 => &ring::aead::CHACHA20_POLY1305,
    };
    let key =
        LessSafeKey::new(UnboundKey::new(alg, &[7; 32]).map_err(|_| anyhow::anyhow!("ring key"))?);
    let mut buf = vec![0x11u8; CHUNK as usize];
    let n = total / u64::from(CHUNK);
    let mut tags = Vec::with_capacity(n as usize);
    let t = Stopwatch::start();
    for i in 0..n {
        let tag = key
            .seal_in_place_separate_tag(nonce(i), Aad::from(&[0u8; 35]), &mut buf)
            .map_err(|_| anyhow::anyhow!("ring seal"))?;
        tags.push(tag);
    }
    let seal = t.stop().rate(n * u64::from(CHUNK));
    // Open the last sealed buffer n times (the tag only verifies for it; the cost is the same).
    let last = *tags.last().context("no chunk sealed")?;
    let sealed = buf.clone();
    let t = Stopwatch::start();
    for _ in 0..n {
        buf.copy_from_slice(&sealed);
        key.open_in_place_separate_tag(nonce(n - 1), Aad::from(&[0u8; 35]), last, &mut buf, 0..)
            .map_err(|_| anyhow::anyhow!("ring open"))?;
    }
    let open = t.stop().rate(n * u64::from(CHUNK));
    Ok((seal, open))
}

fn nonce(i: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&i.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}
