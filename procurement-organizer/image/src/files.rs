//! The file shell: sealing a kernel, an initramfs and an optional extra payload into
//! `<image-id>.chunks` and `<image-id>.manifest`, and reading a manifest file. Does IO.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::encoding::{MAX_MANIFEST_LEN, SignedManifest};
use crate::error::{Error, Result};
use crate::ids::ImageId;
use crate::keys::{ImageKey, SigningKey};
use crate::seal::{SealParams, Sealer};

/// `<image-id>.manifest`
pub fn manifest_file_name(id: ImageId) -> String {
    format!("{id}.manifest")
}

/// `<image-id>.chunks`
pub fn chunks_file_name(id: ImageId) -> String {
    format!("{id}.chunks")
}

/// Reads and decodes a manifest file (framing only; verify it next). Refuses a file larger
/// than a manifest can be before reading it.
pub fn read_manifest_file(path: &Path) -> Result<SignedManifest> {
    let ctx = || format!("reading manifest {}", path.display());
    let f = File::open(path).map_err(|e| Error::io(ctx(), e))?;
    let limit = u64::from(MAX_MANIFEST_LEN) + 14 + 65;
    let mut bytes = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(ctx(), e))?;
    if bytes.len() as u64 > limit {
        return Err(Error::malformed(
            "file",
            format!(
                "{} is larger than any manifest ({limit} bytes)",
                path.display()
            ),
        ));
    }
    SignedManifest::decode(&bytes)
}

/// Seals `kernel`, `initramfs` and `extra` (sections of those names) with `cmdline` into
/// `out_dir/<image-id>.chunks` and `out_dir/<image-id>.manifest`. Both are written under a
/// temporary name, synced and renamed (chunks first, so a manifest never names missing
/// chunks); existing files are never overwritten. `progress(done, total)` counts plaintext
/// bytes. A file that changes size while it is read is refused.
#[allow(clippy::too_many_arguments)]
pub fn seal_files(
    kernel: &Path,
    initramfs: &Path,
    cmdline: &str,
    extra: Option<&Path>,
    key: &ImageKey,
    signing_key: &SigningKey,
    params: &SealParams,
    out_dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<SignedManifest> {
    let mut inputs = vec![("kernel", kernel), ("initramfs", initramfs)];
    if let Some(x) = extra {
        inputs.push(("extra", x));
    }
    let mut opened = Vec::new();
    let mut total = 0u64;
    for (name, path) in inputs {
        let f = File::open(path)
            .map_err(|e| Error::io(format!("opening {name} {}", path.display()), e))?;
        let len = f
            .metadata()
            .map_err(|e| Error::io(format!("reading the size of {}", path.display()), e))?
            .len();
        total = total.saturating_add(len);
        opened.push((name, path, f, len));
    }
    let id = params.image_id;
    let chunks_path = out_dir.join(chunks_file_name(id));
    let manifest_path = out_dir.join(manifest_file_name(id));
    for p in [&chunks_path, &manifest_path] {
        if p.exists() {
            return Err(Error::invalid(
                "out_dir",
                format!("{} exists already: image ids are never reused", p.display()),
            ));
        }
    }
    let chunks_tmp = out_dir.join(format!(".{}.part", chunks_file_name(id)));
    let manifest_tmp = out_dir.join(format!(".{}.part", manifest_file_name(id)));
    let result = (|| {
        let mut out = BufWriter::with_capacity(256 * 1024, create_new(&chunks_tmp)?);
        let mut sealer = Sealer::new(params, cmdline, key, &mut out)?;
        let mut done = 0u64;
        progress(0, total);
        for (name, path, mut f, len) in opened {
            let mut counted = Progress {
                inner: (&mut f).take(len),
                done: &mut done,
                total,
                progress: &mut *progress,
            };
            let got = sealer.add_section(name, &mut counted)?;
            let mut probe = [0u8; 1];
            let more = f
                .read(&mut probe)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            if got != len || more != 0 {
                return Err(Error::invalid(
                    "input",
                    format!("{} changed size while it was sealed", path.display()),
                ));
            }
        }
        let signed = sealer.finish(signing_key)?;
        let file = out
            .into_inner()
            .map_err(|e| Error::io(format!("writing {}", chunks_tmp.display()), e.into_error()))?;
        sync(&file, &chunks_tmp)?;
        let mut mf = create_new(&manifest_tmp)?;
        mf.write_all(&signed.encode())
            .map_err(|e| Error::io(format!("writing {}", manifest_tmp.display()), e))?;
        sync(&mf, &manifest_tmp)?;
        rename(&chunks_tmp, &chunks_path)?;
        rename(&manifest_tmp, &manifest_path)?;
        if let Ok(d) = File::open(out_dir) {
            let _ = d.sync_all();
        }
        Ok(signed)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&chunks_tmp);
        let _ = fs::remove_file(&manifest_tmp);
    }
    result
}

fn create_new(p: &PathBuf) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(p)
        .map_err(|e| Error::io(format!("creating {}", p.display()), e))
}

fn sync(f: &File, p: &Path) -> Result<()> {
    f.sync_all()
        .map_err(|e| Error::io(format!("syncing {}", p.display()), e))
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| Error::io(format!("renaming to {}", to.display()), e))
}

/// Counts bytes read and reports them.
struct Progress<'a, R> {
    inner: R,
    done: &'a mut u64,
    total: u64,
    progress: &'a mut dyn FnMut(u64, u64),
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        *self.done += n as u64;
        (self.progress)(*self.done, self.total);
        Ok(n)
    }
}
