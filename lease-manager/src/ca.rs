//! The Lease Manager's certificate authority on disk (the crypto is `lm_pki::Authority`).
//!
//! Created on first start in `<state_dir>/ca/` (`ca.pem` public, `ca.key` mode 0600) and
//! loaded afterwards, or imported once from an existing CA certificate and key. The LM's own TLS
//! server certificate is issued fresh at every start for the configured API address and kept in
//! memory only. The CA certificate is the only thing that goes into the initramfs (the agent
//! pins it). IO: reads and writes the two CA files.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use lm_pki::Leaf;
use lm_pki::{Authority, AuthorityError};
use rustls::pki_types::CertificateDer;

/// What went wrong with the CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Load {
        path: PathBuf,
        source: AuthorityError,
    },
    #[error("{path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")]
    KeyMode { path: PathBuf, mode: u32 },
    #[error(
        "{path} already exists: {dir} already holds a CA; import into an empty directory (moving the old CA away invalidates every certificate it issued)"
    )]
    Exists { dir: PathBuf, path: PathBuf },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] AuthorityError),
}

/// The loaded CA.
#[derive(Debug)]
pub struct Ca {
    authority: Authority,
    dir: PathBuf,
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CaError {
    let path = path.to_path_buf();
    move |source| CaError::Io { op, path, source }
}

impl Ca {
    /// Loads the CA from `dir`, or creates it there. Returns whether it was created.
    pub fn load_or_create(
        dir: &Path,
        now: SystemTime,
        serial: u64,
    ) -> Result<(Self, bool), CaError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        if cert_path.exists() {
            return Ok((Self::load(dir, &cert_path, &key_path)?, false));
        }
        let (authority, key_pem) = Authority::generate(now, serial.into())?;
        Self::store(dir, authority.cert_pem(), &key_pem)?;
        Ok((Self::load(dir, &cert_path, &key_path)?, true))
    }

    /// Imports an existing CA (certificate and key, PEM) into `dir`, which must not hold one.
    /// The certificate must be a CA allowed to sign certificates and CRLs, and the key its own.
    pub fn import(dir: &Path, cert_pem_path: &Path, key_pem_path: &Path) -> Result<Self, CaError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        for path in [&cert_path, &key_path] {
            if path.exists() {
                return Err(CaError::Exists {
                    dir: dir.to_path_buf(),
                    path: path.clone(),
                });
            }
        }
        let cert_pem = fs::read_to_string(cert_pem_path).map_err(io("read", cert_pem_path))?;
        let key_pem = fs::read_to_string(key_pem_path).map_err(io("read", key_pem_path))?;
        Authority::from_pem(&cert_pem, &key_pem).map_err(|source| CaError::Load {
            path: cert_pem_path.to_path_buf(),
            source,
        })?;
        Self::store(dir, &cert_pem, &key_pem)?;
        Self::load(dir, &cert_path, &key_path)
    }

    /// Writes the key (0600, never overwriting), then the certificate, which marks the CA as
    /// complete.
    fn store(dir: &Path, cert_pem: &str, key_pem: &str) -> Result<(), CaError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        fs::create_dir_all(dir).map_err(io("create", dir))?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .map_err(io("create", &key_path))?;
        f.write_all(key_pem.as_bytes())
            .map_err(io("write", &key_path))?;
        f.sync_all().map_err(io("sync", &key_path))?;
        let tmp = dir.join("ca.pem.tmp");
        fs::write(&tmp, cert_pem).map_err(io("write", &tmp))?;
        fs::rename(&tmp, &cert_path).map_err(io("rename", &cert_path))?;
        Ok(())
    }

    fn load(dir: &Path, cert_path: &Path, key_path: &Path) -> Result<Self, CaError> {
        let mode = fs::metadata(key_path)
            .map_err(io("stat", key_path))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(CaError::KeyMode {
                path: key_path.to_path_buf(),
                mode,
            });
        }
        let key_pem = fs::read_to_string(key_path).map_err(io("read", key_path))?;
        let cert_pem = fs::read_to_string(cert_path).map_err(io("read", cert_path))?;
        let authority =
            Authority::from_pem(&cert_pem, &key_pem).map_err(|source| CaError::Load {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(Self {
            authority,
            dir: dir.to_path_buf(),
        })
    }

    /// The CA's crypto (client, agent and CRL issuance).
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        self.authority.cert_pem()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        self.authority.cert_der()
    }

    /// Path of the public CA certificate (what the initramfs builder takes).
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues the LM's TLS server certificate for `sans` (IP addresses or DNS names).
    pub fn issue_server(
        &self,
        sans: &[String],
        now: SystemTime,
        serial: u64,
    ) -> Result<Leaf, CaError> {
        Ok(self.authority.issue_server(sans, now, serial.into())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded_and_server_cert_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let (ca, created) = Ca::load_or_create(dir.path(), now, 1).unwrap();
        assert!(created);
        let mode = fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let (again, created) = Ca::load_or_create(dir.path(), now, 2).unwrap();
        assert!(!created);
        assert_eq!(ca.cert_pem(), again.cert_pem());
        assert!(!ca.cert_pem().contains("PRIVATE"));

        // A rustls client that pins only this CA accepts the server certificate for the IP.
        let leaf = again.issue_server(&["10.77.0.1".into()], now, 3).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der().clone()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        use rustls::client::danger::ServerCertVerifier;
        let name = rustls::pki_types::ServerName::try_from("10.77.0.1").unwrap();
        verifier
            .verify_server_cert(
                &leaf.chain[0],
                &leaf.chain[1..],
                &name,
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .unwrap();
        let wrong = rustls::pki_types::ServerName::try_from("10.77.0.2").unwrap();
        assert!(
            verifier
                .verify_server_cert(
                    &leaf.chain[0],
                    &[],
                    &wrong,
                    &[],
                    rustls::pki_types::UnixTime::now()
                )
                .is_err()
        );
    }

    #[test]
    fn world_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Ca::load_or_create(dir.path(), SystemTime::now(), 1).unwrap();
        fs::set_permissions(dir.path().join("ca.key"), fs::Permissions::from_mode(0o644)).unwrap();
        let err = Ca::load_or_create(dir.path(), SystemTime::now(), 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn import_validates_and_refuses_an_existing_ca() {
        let src = tempfile::tempdir().unwrap();
        let (made, _) = Ca::load_or_create(src.path(), SystemTime::now(), 1).unwrap();
        let (cert, key) = (src.path().join("ca.pem"), src.path().join("ca.key"));

        let dst = tempfile::tempdir().unwrap();
        let dir = dst.path().join("ca");
        let ca = Ca::import(&dir, &cert, &key).unwrap();
        assert_eq!(ca.cert_pem(), made.cert_pem());
        let mode = fs::metadata(dir.join("ca.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let (again, created) = Ca::load_or_create(&dir, SystemTime::now(), 2).unwrap();
        assert!(!created);
        assert_eq!(again.cert_pem(), made.cert_pem());

        // A second import into the same directory is refused, and changes nothing.
        let err = Ca::import(&dir, &cert, &key).unwrap_err().to_string();
        assert!(err.contains("already holds a CA"), "{err}");

        // A key of another CA, or a leaf certificate, is refused before anything is written.
        let other = tempfile::tempdir().unwrap();
        Ca::load_or_create(other.path(), SystemTime::now(), 3).unwrap();
        let fresh = dst.path().join("fresh");
        let err = Ca::import(&fresh, &cert, &other.path().join("ca.key"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not belong"), "{err}");
        let id: lm_pki::Identity = "urn:lease-appliance:tenant:t".parse().unwrap();
        let now = SystemTime::now();
        let cred = made
            .authority()
            .issue_client(
                &id,
                now,
                now + std::time::Duration::from_secs(60),
                9u64.into(),
            )
            .unwrap();
        fs::write(dst.path().join("leaf.pem"), &cred.cert_pem).unwrap();
        fs::write(dst.path().join("leaf.key"), &cred.key_pem).unwrap();
        let err = Ca::import(
            &fresh,
            &dst.path().join("leaf.pem"),
            &dst.path().join("leaf.key"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("CA:TRUE"), "{err}");
        assert!(!fresh.exists());
    }
}
