//! The organizer's images: sealing (`images seal`) into the image store folder
//! `<state_dir>/images/` (`<id>.manifest`, `<id>.chunks`, served by the gateway), the image key
//! into the key store, and the tenant's image-signing key `<state_dir>/keys/signing.pem`
//! (Ed25519, made on first use, mode 0600). `images list` reads and verifies every manifest.
//! IO.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use po_api::{ImageRef, ImageSigningKey};
use ring::rand::SystemRandom;
use sealed_image::{Aead, ImageId, ImageKey, KeyEpoch, SealParams, SigningKey, VerifyingKey};
use serde::Serialize;

use crate::files;
use crate::keystore::KeyStore;

/// The image store folder of a state folder.
pub fn store_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("images")
}

fn signing_key_path(state_dir: &Path) -> PathBuf {
    KeyStore::new(state_dir).dir().join("signing.pem")
}

/// The tenant's image-signing key, made on first use.
pub fn signing_key(state_dir: &Path) -> anyhow::Result<SigningKey> {
    let path = signing_key_path(state_dir);
    if path.exists() {
        files::check_private(&path)?;
        return SigningKey::load(&path).with_context(|| format!("cannot use {}", path.display()));
    }
    files::private_dir(state_dir)?;
    files::private_dir(KeyStore::new(state_dir).dir())?;
    let k =
        SigningKey::generate(&SystemRandom::new()).context("cannot make an image-signing key")?;
    k.save(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(path = %path.display(), "created the image-signing key");
    Ok(k)
}

/// The signing key's public half in the contract's type.
pub fn signing_public(k: &SigningKey) -> ImageSigningKey {
    ImageSigningKey(k.verifying_key().0)
}

/// What `images seal` asks for.
#[derive(Debug, Clone)]
pub struct SealRequest {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub cmdline: String,
    pub extra: Option<PathBuf>,
    pub aead: Aead,
    pub epoch: u32,
}

/// One image of the store, as `images list` and `images seal` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageEntry {
    pub id: String,
    pub epoch: u32,
    pub aead: String,
    pub plaintext_len: u64,
    pub chunks_len: u64,
    pub chunk_count: u64,
    pub created_ms: u64,
    pub sections: Vec<String>,
    pub cmdline: String,
    /// Whether the key store holds the key of this image and epoch.
    pub key: bool,
    /// `ok`, or why the manifest does not verify under the tenant's signing key.
    pub verified: String,
}

fn entry(m: &sealed_image::Manifest, keys: &KeyStore, verified: String) -> ImageEntry {
    let id = ImageRef(*m.image_id.as_bytes());
    ImageEntry {
        id: id.to_string(),
        epoch: m.key_epoch.0,
        aead: m.aead.to_string(),
        plaintext_len: m.plaintext_len,
        chunks_len: m.chunks_file_len(),
        chunk_count: m.chunk_count,
        created_ms: m.created_ms,
        sections: m
            .sections
            .iter()
            .map(|s| format!("{}:{}", s.name, s.len))
            .collect(),
        cmdline: m.cmdline.clone(),
        key: keys.get(&id, m.key_epoch.0).is_ok(),
        verified,
    }
}

/// Seals an image into the store; `progress(done, total)` counts plaintext bytes.
pub fn seal(
    state_dir: &Path,
    req: &SealRequest,
    progress: &mut dyn FnMut(u64, u64),
) -> anyhow::Result<ImageEntry> {
    let signing = signing_key(state_dir)?;
    let rng = SystemRandom::new();
    let id = ImageId::generate(&rng).context("cannot draw an image id")?;
    let key = ImageKey::generate(&rng).context("cannot make an image key")?;
    let created_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut params = SealParams::new(id, KeyEpoch(req.epoch), created_ms);
    params.aead = req.aead;
    let dir = store_dir(state_dir);
    files::private_dir(&dir)?;
    let keys = KeyStore::new(state_dir);
    // The key first: a manifest in the store always has its key.
    let image = ImageRef(*id.as_bytes());
    let key_path = keys.put(&image, req.epoch, key.expose_secret())?;
    let sealed = sealed_image::seal_files(
        &req.kernel,
        &req.initramfs,
        &req.cmdline,
        req.extra.as_deref(),
        &key,
        &signing,
        &params,
        &dir,
        progress,
    );
    drop(key);
    let signed = match sealed {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&key_path);
            return Err(e).context("sealing failed");
        }
    };
    let m = signed
        .verify(&signing.verifying_key())
        .context("the sealed manifest does not verify (this is a bug)")?;
    Ok(entry(&m, &keys, "ok".into()))
}

/// Every image of the store, verified under the tenant's signing key, oldest first.
pub fn list(state_dir: &Path) -> anyhow::Result<Vec<ImageEntry>> {
    let dir = store_dir(state_dir);
    let keys = KeyStore::new(state_dir);
    let verifying: Option<VerifyingKey> = if signing_key_path(state_dir).exists() {
        Some(signing_key(state_dir)?.verifying_key())
    } else {
        None
    };
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let Some(id) = name.strip_suffix(".manifest") else {
            continue;
        };
        if id.parse::<ImageRef>().is_err() {
            continue;
        }
        let signed = match sealed_image::read_manifest_file(&e.path()) {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(file = %e.path().display(), error = %err, "unreadable manifest");
                continue;
            }
        };
        let (m, verified) = match verifying.as_ref().map(|v| signed.verify(v)) {
            Some(Ok(m)) => (m, "ok".to_string()),
            Some(Err(err)) => match signed.parse_unverified() {
                Ok(m) => (m, err.to_string()),
                Err(_) => continue,
            },
            None => match signed.parse_unverified() {
                Ok(m) => (m, "no signing key in this state folder".to_string()),
                Err(_) => continue,
            },
        };
        let mut ent = entry(&m, &keys, verified);
        let chunks = dir.join(format!("{id}.chunks"));
        if std::fs::metadata(&chunks).map(|md| md.len()).ok() != Some(ent.chunks_len)
            && ent.verified == "ok"
        {
            ent.verified = format!(
                "{} is missing or not {} bytes",
                chunks.display(),
                ent.chunks_len
            );
        }
        out.push(ent);
    }
    out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
    Ok(out)
}

/// The store's entry for `image`, if sealed here, with a usable key.
pub fn find(state_dir: &Path, image: &ImageRef) -> anyhow::Result<ImageEntry> {
    let id = image.to_string();
    let e = list(state_dir)?
        .into_iter()
        .find(|e| e.id == id)
        .with_context(|| {
            format!(
                "image {id} is not in the image store {}: seal it first (`procurement-organizer images seal`), see `images list`",
                store_dir(state_dir).display()
            )
        })?;
    if e.verified != "ok" {
        anyhow::bail!("image {id} does not verify: {}", e.verified);
    }
    if !e.key {
        anyhow::bail!(
            "image {id}: the key store has no key for epoch {} ({}): agents could not open it",
            e.epoch,
            KeyStore::new(state_dir).path(image, e.epoch).display()
        );
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_list_and_find() {
        let d = tempfile::tempdir().unwrap();
        let k = d.path().join("vmlinuz");
        let i = d.path().join("initrd");
        std::fs::write(&k, vec![1u8; 3 << 20]).unwrap();
        std::fs::write(&i, vec![2u8; 1000]).unwrap();
        let state = d.path().join("state");
        let mut last = (0, 0);
        let e = seal(
            &state,
            &SealRequest {
                kernel: k,
                initramfs: i,
                cmdline: "console=ttyS0".into(),
                extra: None,
                aead: Aead::ChaCha20Poly1305,
                epoch: 1,
            },
            &mut |done, total| last = (done, total),
        )
        .unwrap();
        assert_eq!(last, ((3 << 20) + 1000, (3 << 20) + 1000));
        assert_eq!(e.verified, "ok");
        assert!(e.key);
        assert_eq!(e.aead, "chacha20-poly1305");
        let all = list(&state).unwrap();
        assert_eq!(all, vec![e.clone()]);
        let id: ImageRef = e.id.parse().unwrap();
        assert_eq!(find(&state, &id).unwrap(), e);
        // Without its key the image cannot be leased.
        std::fs::remove_file(KeyStore::new(&state).path(&id, 1)).unwrap();
        let err = format!("{:#}", find(&state, &id).unwrap_err());
        assert!(err.contains("no key"), "{err}");
        // A truncated chunks file shows in the list.
        let chunks = store_dir(&state).join(format!("{}.chunks", e.id));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&chunks)
            .unwrap();
        f.set_len(10).unwrap();
        assert!(list(&state).unwrap()[0].verified.contains("not"));
        let other: ImageRef = "00".repeat(16).parse().unwrap();
        assert!(format!("{:#}", find(&state, &other).unwrap_err()).contains("images seal"));
    }
}
