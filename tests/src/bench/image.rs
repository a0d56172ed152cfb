//! The sealed image benchmark: sealing and opening throughput (one thread) of an image generated
//! on the fly, against `openssl speed -evp` for the same AEAD (encrypt and `-decrypt`, 64 KiB
//! blocks) and ring's raw AEAD on one chunk buffer, all measured in the same run; then the
//! reader's peak memory (VmHWM, reset through /proc/self/clear_refs) while it opens a 64 MiB and
//! a full-size image, to show that memory does not follow the image size. Needs an optimised
//! build of `lab` (scripts/bench.sh image builds one); no root, no namespaces. IO.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
use sealed_image::{
    Aead, ImageId, ImageKey, KeyEpoch, Manifest, OpenReader, Opener, SealParams, Sealer, SigningKey,
};

use super::scratch;

mod plaintext;
mod report;

use plaintext::Gen;
pub use report::report;

/// Chunk size of the measured images (the format's default).
pub const CHUNK: u32 = sealed_image::DEFAULT_CHUNK_SIZE;
/// Runs per figure; the median is reported.
const RUNS: usize = 3;
/// Seconds per `openssl speed` measurement.
const OPENSSL_SECS: u32 = 3;
/// Size of the small image of the memory comparison.
const SMALL: u64 = 64 << 20;

/// One AEAD's figures, MB/s (10^6 bytes per second), medians.
#[derive(Debug, Clone)]
pub struct AeadResult {
    pub aead: Aead,
    /// Sealer over generated plaintext, chunks written to a file (page cache).
    pub seal_file_mbs: f64,
    /// The same, chunks to `io::sink()`.
    pub seal_sink_mbs: f64,
    /// OpenReader over the chunks file, each authenticated chunk consumed in place.
    pub open_mbs: f64,
    /// ring's AEAD alone, in place on one chunk-sized buffer.
    pub ring_seal_mbs: f64,
    pub ring_open_mbs: f64,
    /// `openssl speed -evp <aead> -bytes 65536` (and `-decrypt`).
    pub openssl_seal_mbs: f64,
    pub openssl_open_mbs: f64,
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
    /// pays the kernel), MB/s, median.
    pub file_write_mbs: f64,
    /// Reading a chunks file from the page cache in 1 MiB reads, no crypto, MB/s, median.
    pub file_read_mbs: f64,
    pub mem: Vec<MemResult>,
    pub openssl_version: String,
    pub loadavg: String,
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
    let key = ImageKey::from_bytes([0x5a; 32]);
    let signer = SigningKey::generate(&ring::rand::SystemRandom::new())
        .context("generating a signing key")?;
    let mut aeads = Vec::new();
    let mut file_write = Vec::new();
    let mut file_read = Vec::new();
    for (n, aead) in Aead::ALL.into_iter().enumerate() {
        eprintln!(
            "image bench: {aead}: openssl speed, ring raw, seal and open {image_mib} MiB x{RUNS}"
        );
        let openssl_seal_mbs = openssl_speed(aead, false)?;
        let openssl_open_mbs = openssl_speed(aead, true)?;
        let (ring_seal_mbs, ring_open_mbs) = ring_raw(aead, image_bytes)?;
        let params = params(n as u8, aead);
        let chunks = dir.join(format!("{}.chunks", params.image_id));
        let mut seal_file = Vec::new();
        let mut seal_sink = Vec::new();
        let mut open = Vec::new();
        let mut manifest = None;
        for _ in 0..RUNS {
            let _ = std::fs::remove_file(&chunks);
            let (m, secs) = seal(&params, &key, &signer, image_bytes, Some(&chunks))?;
            seal_file.push(mbs(image_bytes, secs));
            let (_, secs) = seal(&params, &key, &signer, image_bytes, None)?;
            seal_sink.push(mbs(image_bytes, secs));
            let secs = open_file(&m, &key, &chunks)?;
            open.push(mbs(image_bytes, secs));
            manifest = Some(m);
            if n == 0 {
                file_read.push(mbs(image_bytes, read_file(&chunks)?));
                let plain = dir.join("plain.bin");
                file_write.push(mbs(image_bytes, write_file(&plain, image_bytes)?));
                let _ = std::fs::remove_file(&plain);
            }
        }
        drop(manifest);
        let _ = std::fs::remove_file(&chunks);
        aeads.push(AeadResult {
            aead,
            seal_file_mbs: median(seal_file),
            seal_sink_mbs: median(seal_sink),
            open_mbs: median(open),
            ring_seal_mbs,
            ring_open_mbs,
            openssl_seal_mbs,
            openssl_open_mbs,
        });
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
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    Ok(ImageBenchResult {
        image_bytes,
        aeads,
        file_write_mbs: median(file_write),
        file_read_mbs: median(file_read),
        mem,
        openssl_version,
        loadavg,
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
/// seconds taken (file: including the final flush, not an fsync).
fn seal(
    params: &SealParams,
    key: &ImageKey,
    signer: &SigningKey,
    len: u64,
    out: Option<&Path>,
) -> Result<(Manifest, f64)> {
    let mut source = Gen::new(len);
    let t = Instant::now();
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
    let secs = t.elapsed().as_secs_f64();
    Ok((signed.verify(&signer.verifying_key())?, secs))
}

/// Opens the chunks file to its end, consuming each authenticated chunk in place, and runs the
/// final verification; returns the seconds taken.
fn open_file(manifest: &Manifest, key: &ImageKey, chunks: &Path) -> Result<f64> {
    let t = Instant::now();
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
    let secs = t.elapsed().as_secs_f64();
    std::hint::black_box(check);
    if total != manifest.plaintext_len || v.plaintext_bytes != total {
        bail!(
            "opened {total} bytes, the manifest says {}",
            manifest.plaintext_len
        );
    }
    Ok(secs)
}

/// Writes `len` bytes of one 1 MiB buffer to a new file; returns the seconds taken.
fn write_file(path: &Path, len: u64) -> Result<f64> {
    use std::io::Write as _;
    let buf = vec![0x33u8; CHUNK as usize];
    let t = Instant::now();
    let mut f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(t.elapsed().as_secs_f64())
}

/// Reads a file to its end in 1 MiB reads; returns the seconds taken.
fn read_file(path: &Path) -> Result<f64> {
    let mut buf = vec![0u8; CHUNK as usize];
    let t = Instant::now();
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    while f.read(&mut buf)? > 0 {}
    Ok(t.elapsed().as_secs_f64())
}

/// ring's AEAD in place on one chunk-sized buffer, `total` bytes each way.
fn ring_raw(aead: Aead, total: u64) -> Result<(f64, f64)> {
    let alg = match aead {
        Aead::Aes256Gcm => &ring::aead::AES_256_GCM,
        Aead::ChaCha20Poly1305 => &ring::aead::CHACHA20_POLY1305,
    };
    let key =
        LessSafeKey::new(UnboundKey::new(alg, &[7; 32]).map_err(|_| anyhow::anyhow!("ring key"))?);
    let mut buf = vec![0x11u8; CHUNK as usize];
    let n = total / u64::from(CHUNK);
    let mut tags = Vec::with_capacity(n as usize);
    let t = Instant::now();
    for i in 0..n {
        let tag = key
            .seal_in_place_separate_tag(nonce(i), Aad::from(&[0u8; 35]), &mut buf)
            .map_err(|_| anyhow::anyhow!("ring seal"))?;
        tags.push(tag);
    }
    let seal = mbs(n * u64::from(CHUNK), t.elapsed().as_secs_f64());
    // Open the last sealed buffer n times (the tag only verifies for it; the cost is the same).
    let last = *tags.last().context("no chunk sealed")?;
    let sealed = buf.clone();
    let t = Instant::now();
    for _ in 0..n {
        buf.copy_from_slice(&sealed);
        key.open_in_place_separate_tag(nonce(n - 1), Aad::from(&[0u8; 35]), last, &mut buf, 0..)
            .map_err(|_| anyhow::anyhow!("ring open"))?;
    }
    let open = mbs(n * u64::from(CHUNK), t.elapsed().as_secs_f64());
    Ok((seal, open))
}

fn nonce(i: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&i.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// `openssl speed [-decrypt] -evp <aead> -bytes 65536 -seconds 3`, in MB/s.
fn openssl_speed(aead: Aead, decrypt: bool) -> Result<f64> {
    let secs = OPENSSL_SECS.to_string();
    let mut args = vec!["speed"];
    if decrypt {
        args.push("-decrypt");
    }
    args.extend(["-evp", aead.name(), "-bytes", "65536", "-seconds", &secs]);
    let out = command_text("openssl", &args)?;
    parse_openssl_speed(&out, aead.name()).with_context(|| {
        format!(
            "no {} figure in the output of openssl {}:\n{out}",
            aead.name(),
            args.join(" ")
        )
    })
}

/// The figure of `openssl speed -bytes N` for `alg` (its last line naming it, in 1000s of
/// bytes per second with a `k` suffix), as MB/s. Pure.
pub fn parse_openssl_speed(out: &str, alg: &str) -> Option<f64> {
    out.lines()
        .rev()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            if !name.eq_ignore_ascii_case(alg) {
                return None;
            }
            let v = words.last()?.strip_suffix('k')?.parse::<f64>().ok()?;
            Some(v * 1000.0 / 1e6)
        })
        .next()
}

/// A `kB` field of /proc/self/status, in KiB.
fn proc_status_kib(field: &str) -> Result<u64> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    parse_status_kib(&s, field).with_context(|| format!("no {field} in /proc/self/status"))
}

/// `VmHWM:   1234 kB` -> 1234. Pure.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn command_text(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd} (install it: apt-get install {cmd})"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn mbs(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 / secs / 1e6
    } else {
        0.0
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openssl_speed_output() {
        let out = "The 'numbers' are in 1000s of bytes per second processed.\ntype          65536 bytes\nAES-256-GCM    2669069.45k\n";
        assert_eq!(parse_openssl_speed(out, "aes-256-gcm"), Some(2669.06945));
        let out = "type 65536 bytes\nChaCha20-Poly1305   783220.74k\n";
        assert_eq!(
            parse_openssl_speed(out, "chacha20-poly1305"),
            Some(783.22074)
        );
        assert_eq!(parse_openssl_speed(out, "aes-256-gcm"), None);
        assert_eq!(parse_openssl_speed("AES-256-GCM 12", "aes-256-gcm"), None);
    }

    #[test]
    fn parses_proc_status() {
        let s = "Name:\tlab\nVmHWM:\t   13584 kB\nVmRSS:\t   12000 kB\n";
        assert_eq!(parse_status_kib(s, "VmHWM"), Some(13584));
        assert_eq!(parse_status_kib(s, "VmRSS"), Some(12000));
        assert_eq!(parse_status_kib(s, "VmSwap"), None);
    }
}
