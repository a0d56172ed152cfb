//! The organizer's key store: one file per image key, `<state_dir>/keys/<image-id>.<epoch>.key`,
//! holding the 32-byte key as base64 and a newline, mode 0600 in a folder of mode 0700. Keys
//! are read into zeroizing buffers and never logged. IO.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use po_api::{IMAGE_KEY_LEN, ImageRef};
use zeroize::Zeroizing;

use crate::files;

/// The key store folder of a state folder.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

/// Why a key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("no key for image {image} epoch {epoch}")]
    Missing { image: ImageRef, epoch: u32 },
    #[error("key file {path}: {why}")]
    Bad { path: PathBuf, why: String },
}

impl KeyStore {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("keys"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of (image, epoch); the name is built from validated values only.
    pub fn path(&self, image: &ImageRef, epoch: u32) -> PathBuf {
        self.dir.join(format!("{image}.{epoch}.key"))
    }

    /// Stores a new key; refuses to replace an existing one.
    pub fn put(
        &self,
        image: &ImageRef,
        epoch: u32,
        key: &[u8; IMAGE_KEY_LEN],
    ) -> anyhow::Result<PathBuf> {
        files::private_dir(&self.dir)?;
        let path = self.path(image, epoch);
        let mut text = Zeroizing::new(STANDARD.encode(key));
        text.push('\n');
        files::create_private(&path, text.as_bytes())?;
        Ok(path)
    }

    /// Reads the key of (image, epoch).
    pub fn get(
        &self,
        image: &ImageRef,
        epoch: u32,
    ) -> Result<Zeroizing<[u8; IMAGE_KEY_LEN]>, KeyStoreError> {
        let path = self.path(image, epoch);
        let bad = |why: String| KeyStoreError::Bad {
            path: path.clone(),
            why,
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyStoreError::Missing {
                    image: *image,
                    epoch,
                });
            }
            Err(e) => return Err(bad(e.to_string())),
        };
        files::check_private(&path).map_err(|e| bad(format!("{e:#}")))?;
        let text = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let mut buf = Zeroizing::new([0u8; IMAGE_KEY_LEN + 1]);
        if text.len() != 44 {
            return Err(bad("not 44 characters of base64 (a 32-byte key)".into()));
        }
        match STANDARD.decode_slice(text, &mut buf[..]) {
            Ok(IMAGE_KEY_LEN) => {
                let mut key = Zeroizing::new([0u8; IMAGE_KEY_LEN]);
                key.copy_from_slice(&buf[..IMAGE_KEY_LEN]);
                Ok(key)
            }
            _ => Err(bad("not base64 of a 32-byte key".into())),
        }
    }

    /// Epochs with a key for `image`, ascending.
    pub fn epochs(&self, image: &ImageRef) -> Vec<u32> {
        let prefix = format!("{image}.");
        let mut v: Vec<u32> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let epoch = name.strip_prefix(&prefix)?.strip_suffix(".key")?;
                (!epoch.starts_with('+')).then_some(())?;
                epoch.parse().ok()
            })
            .collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn keys_round_trip_privately_and_bad_files_are_named() {
        let d = tempfile::tempdir().unwrap();
        let ks = KeyStore::new(d.path());
        let img = ImageRef([1; 16]);
        let p = ks.put(&img, 0, &[7; 32]).unwrap();
        ks.put(&img, 3, &[8; 32]).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(ks.dir()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(*ks.get(&img, 0).unwrap(), [7; 32]);
        assert_eq!(ks.epochs(&img), vec![0, 3]);
        assert!(ks.put(&img, 0, &[9; 32]).is_err(), "never replaced");
        assert!(matches!(
            ks.get(&img, 1),
            Err(KeyStoreError::Missing { .. })
        ));
        std::fs::write(&p, "short\n").unwrap();
        let e = ks.get(&img, 0).unwrap_err().to_string();
        assert!(e.contains(&p.display().to_string()), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(ks.get(&img, 0).unwrap_err().to_string().contains("chmod"));
    }
}
