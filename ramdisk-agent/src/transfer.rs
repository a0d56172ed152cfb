//! The transfer phase: the lease's sealed image pulled through the tunnel, every chunk
//! authenticated before it counts, resumed from the first unverified chunk after a drop.
//!
//! Does IO (the store and key service through the tunnel, the image folder). Order, and what
//! stops it:
//! 1. the tunnel must be up (a completed handshake), else nothing is asked for;
//! 2. the manifest: its signature under the tenant's image-signing key from the registration
//!    answer, then its image id against the lease's image; only then
//! 3. the image key for the manifest's key epoch from the key service (mutual TLS, pinned), which
//!    must match the manifest's key check;
//! 4. the chunks from the first unverified one: the store's answer must be exactly the rest of
//!    a file of the signed length ([`agent_core::transfer`]); each chunk is authenticated
//!    (in a scratch buffer that is zeroed; the plaintext is never kept) and only then written,
//!    as ciphertext, into `<dir>/<id>.chunks.part`;
//! 5. at the end the file is synced and renamed to `<id>.chunks`, the manifest saved next to it.
//!
//! A broken connection or stalled read resumes (a fresh WireGuard session first); a chunk
//! that fails authentication, a wrong length or a bad signature refuses the image at once and
//! removes what was stored of it.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agent_core::Outcome;
use agent_core::transfer::{self, MAX_MANIFEST, Progress, StoreAnswerError};
use agent_core::tunnel_plan::TunnelService;
use anyhow::{Context, anyhow};
use po_api::ImageRef;
use sealed_image::{ImageId, ImageKey, KeyEpoch, Opener, SignedManifest, VerifyingKey};
use zeroize::Zeroizing;

use crate::console;
use crate::hello::Failure;
use crate::https::Timeouts;
use crate::store::{self, Answer};

/// The way to the store: the tunnel in the agent (tests use loopback).
pub trait Way {
    /// Errors unless the way is up (a completed handshake); waits up to `timeout`.
    fn ensure_up(&self, timeout: Duration) -> anyhow::Result<Duration>;
    /// After a break: start afresh (a new WireGuard session).
    fn restart(&self) -> anyhow::Result<()>;
    /// The device every connection is bound to.
    fn device(&self) -> Option<&str>;
}

/// Where the image comes from and who vouches for it.
pub struct Source<'a> {
    pub way: &'a dyn Way,
    pub store: TunnelService,
    /// The tenant's image-signing key: the manifest must verify under it.
    pub signing_key: VerifyingKey,
    /// Asks the key service for the key of the image at an epoch.
    pub fetch_key: &'a dyn Fn(ImageRef, KeyEpoch) -> Result<ImageKey, Failure>,
}

/// Wait for the tunnel before each request.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Per read or write on the store: a stalled transfer is a broken one after this.
const STALL: Duration = Duration::from_secs(5);

/// What survives a failed attempt of the phase: the manifest verified and how far its chunks
/// got (the `.part` file holds them).
#[derive(Debug, Default)]
pub struct Resume {
    manifest: Vec<u8>,
    verified: u64,
}

/// A verified image on the host.
#[derive(Debug)]
pub struct Fetched {
    pub image: ImageRef,
    pub epoch: u32,
    /// The image key, kept (zeroized on drop) for the start phase to wrap under the start-up
    /// key; never written anywhere in the clear.
    pub key: ImageKey,
    pub chunks: u64,
    pub bytes: u64,
    pub resumes: u32,
    pub elapsed: Duration,
    pub manifest: PathBuf,
    pub chunks_file: PathBuf,
}

fn fail(outcome: Outcome, error: anyhow::Error) -> Failure {
    Failure {
        error,
        outcome,
        lm_answered: false,
    }
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: STALL,
        io: STALL,
    }
}

/// The files of image `id` in `dir`.
pub fn paths(dir: &Path, id: &ImageRef) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join(format!("{id}.manifest")),
        dir.join(format!("{id}.chunks")),
        dir.join(format!("{id}.chunks.part")),
    )
}

fn store_failure(what: &str, e: StoreAnswerError) -> Failure {
    let outcome = match e {
        StoreAnswerError::ServerError(_) => Outcome::Transient,
        StoreAnswerError::Refused(_) => Outcome::Rejected,
        _ => Outcome::Fatal,
    };
    fail(
        outcome,
        anyhow::Error::new(e).context(format!("the image store's {what}")),
    )
}

fn fetch_manifest(src: &Source<'_>, image: &ImageRef) -> Result<Vec<u8>, Failure> {
    let path = po_api::paths::manifest(image);
    let device = src.way.device();
    let mut answer = store::get(&src.store, device, &path, None, timeouts()).map_err(|e| {
        fail(
            Outcome::Transient,
            anyhow::Error::new(e).context("fetching the manifest"),
        )
    })?;
    match answer.head.status {
        200 => {}
        s => {
            let e = transfer::check_chunks_answer(s, None, 0, 0, 0)
                .err()
                .unwrap_or(StoreAnswerError::Status(s));
            return Err(store_failure("manifest answer", e));
        }
    }
    if answer.left() > MAX_MANIFEST {
        return Err(fail(
            Outcome::Fatal,
            anyhow!(
                "the manifest is {} bytes, more than the {MAX_MANIFEST} a manifest can be",
                answer.left()
            ),
        ));
    }
    let mut bytes = Vec::new();
    answer.read_to_end(&mut bytes).map_err(|e| {
        fail(
            Outcome::Transient,
            anyhow::Error::new(e).context("reading the manifest"),
        )
    })?;
    Ok(bytes)
}

/// Runs the phase. `resume` carries progress across attempts of the phase.
pub fn run(
    src: &Source<'_>,
    image: ImageRef,
    dir: &Path,
    resume: &mut Resume,
) -> Result<Fetched, Failure> {
    let started = Instant::now();
    src.way.ensure_up(HANDSHAKE).map_err(|e| {
        fail(
            Outcome::Transient,
            e.context("the tunnel is not up: nothing was fetched"),
        )
    })?;
    let manifest_bytes = fetch_manifest(src, &image)?;
    let refuse = |e: sealed_image::Error| {
        fail(
            Outcome::Fatal,
            anyhow::Error::new(e).context(format!("refusing image {image}")),
        )
    };
    let manifest = SignedManifest::decode(&manifest_bytes)
        .and_then(|m| m.verify(&src.signing_key))
        .map_err(refuse)?;
    manifest
        .expect(ImageId::from_bytes(image.0), manifest.key_epoch)
        .map_err(refuse)?;
    let key = (src.fetch_key)(image, manifest.key_epoch)?;
    let opener = Opener::new(&manifest, &key).map_err(refuse)?;

    fs::create_dir_all(dir).map_err(|e| {
        fail(
            Outcome::Fatal,
            anyhow::Error::new(e).context(format!("creating {}", dir.display())),
        )
    })?;
    let (manifest_path, chunks_path, part_path) = paths(dir, &image);
    if resume.manifest != manifest_bytes {
        *resume = Resume {
            manifest: manifest_bytes.clone(),
            verified: 0,
        };
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&part_path)
        .and_then(|f| f.set_len(manifest.chunks_file_len()).map(|()| f))
        .map_err(|e| {
            fail(
                Outcome::Fatal,
                anyhow::Error::new(e).context(format!("opening {}", part_path.display())),
            )
        })?;
    let mut progress = Progress::new(
        manifest.chunk_count,
        manifest.stride(),
        manifest.chunks_file_len(),
    );
    progress.verified = resume.verified.min(manifest.chunk_count);
    let result = pull(src, &image, &opener, &file, &mut progress);
    resume.verified = progress.verified;
    if let Err(f) = result {
        if f.outcome == Outcome::Fatal {
            drop(file);
            let _ = fs::remove_file(&part_path);
            *resume = Resume::default();
        }
        return Err(f);
    }
    let finish = || -> anyhow::Result<()> {
        file.sync_all().context("syncing the chunks")?;
        fs::rename(&part_path, &chunks_path).context("renaming the chunks file")?;
        let tmp = manifest_path.with_extension("manifest.tmp");
        fs::write(&tmp, &manifest_bytes).context("writing the manifest")?;
        fs::rename(&tmp, &manifest_path).context("renaming the manifest")?;
        Ok(())
    };
    finish().map_err(|e| {
        fail(
            Outcome::Fatal,
            e.context(format!("storing image {image} in {}", dir.display())),
        )
    })?;
    Ok(Fetched {
        image,
        epoch: manifest.key_epoch.0,
        key,
        chunks: manifest.chunk_count,
        bytes: manifest.chunks_file_len(),
        resumes: progress.resumes,
        elapsed: started.elapsed(),
        manifest: manifest_path,
        chunks_file: chunks_path,
    })
}

/// Pulls chunks until all are verified, resuming after each break within the budget.
fn pull(
    src: &Source<'_>,
    image: &ImageRef,
    opener: &Opener,
    file: &File,
    progress: &mut Progress,
) -> Result<(), Failure> {
    let path = po_api::paths::chunks(image);
    let stride = usize::try_from(progress.stride)
        .map_err(|_| fail(Outcome::Fatal, anyhow!("chunk size")))?;
    let mut wire = vec![0u8; stride];
    let mut scratch = Zeroizing::new(vec![0u8; stride]);
    let mut shown = u64::MAX;
    while !progress.is_done() {
        let broken = match stream(
            src,
            &path,
            opener,
            file,
            progress,
            &mut wire,
            &mut scratch,
            &mut shown,
            image,
        ) {
            Ok(()) => continue,
            Err(Break::Fatal(f)) => return Err(f),
            Err(Break::Connection(e)) => e,
        };
        let from = progress.verified;
        if !progress.on_break() {
            return Err(fail(
                Outcome::Transient,
                broken.context(format!(
                    "the transfer broke {} times; giving up this attempt at chunk {from}",
                    progress.resumes
                )),
            ));
        }
        console::line(&format!(
            "AGENT-RESUME transfer image={image} from_chunk={from} resumes={} reason={}",
            progress.resumes,
            console::one_line(&format!("{broken:#}"))
        ));
        if let Err(e) = src.way.restart() {
            tracing::warn!("restarting the WireGuard session: {e:#}");
        }
    }
    Ok(())
}

enum Break {
    /// The connection broke or stalled: resume.
    Connection(anyhow::Error),
    /// The image is refused (or the host cannot store it): stop.
    Fatal(Failure),
}

/// One request: from the first unverified chunk to the end, or until the connection breaks.
#[allow(clippy::too_many_arguments)]
fn stream(
    src: &Source<'_>,
    path: &str,
    opener: &Opener,
    file: &File,
    progress: &mut Progress,
    wire: &mut [u8],
    scratch: &mut [u8],
    shown: &mut u64,
    image: &ImageRef,
) -> Result<(), Break> {
    src.way
        .ensure_up(HANDSHAKE)
        .map_err(|e| Break::Connection(e.context("the tunnel is not up: nothing was fetched")))?;
    let start = progress.resume_offset();
    let range = (start > 0).then(|| transfer::range_value(start));
    let device = src.way.device();
    let mut answer: Answer = store::get(&src.store, device, path, range.as_deref(), timeouts())
        .map_err(|e| Break::Connection(anyhow::Error::new(e).context("asking for the chunks")))?;
    let head = &answer.head;
    transfer::check_chunks_answer(
        head.status,
        head.header("content-range"),
        head.content_length,
        start,
        progress.file_len,
    )
    .map_err(|e| match e {
        e if e.is_transient() => Break::Connection(e.into()),
        e => Break::Fatal(store_failure("chunks answer", e)),
    })?;
    while !progress.is_done() {
        let index = progress.verified;
        let offset = progress.resume_offset();
        let len = usize::try_from(progress.next_chunk_len()).unwrap_or(usize::MAX);
        let (Some(buf), Some(plain)) = (wire.get_mut(..len), scratch.get_mut(..len)) else {
            return Err(Break::Fatal(fail(
                Outcome::Fatal,
                anyhow!("chunk {index} is longer than the stride"),
            )));
        };
        answer.read_exact(buf).map_err(|e| {
            Break::Connection(anyhow::Error::new(e).context(format!("reading chunk {index}")))
        })?;
        plain.copy_from_slice(buf);
        let opened = opener.open_chunk_in_place(index, plain).map(|_| ());
        plain.fill(0);
        opened.map_err(|e| {
            Break::Fatal(fail(
                Outcome::Fatal,
                anyhow::Error::new(e)
                    .context(format!("refusing image {image}: nothing of it is kept")),
            ))
        })?;
        file.write_all_at(buf, offset).map_err(|e| {
            Break::Fatal(fail(
                Outcome::Fatal,
                anyhow::Error::new(e).context(format!("writing chunk {index} of image {image}")),
            ))
        })?;
        progress.verified += 1;
        let percent = progress.verified * 100 / progress.chunks.max(1);
        if percent != *shown || progress.is_done() {
            *shown = percent;
            console::line(&format!(
                "AGENT-PROGRESS transfer image={image} chunks={}/{}",
                progress.verified, progress.chunks
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "transfer_tests.rs"]
mod tests;
