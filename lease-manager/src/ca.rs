//! The Lease Manager's certificate authority (rcgen, ECDSA P-256).
//!
//! Created on first start in `<state_dir>/ca/` (`ca.pem` public, `ca.key` mode 0600) and
//! loaded afterwards. The LM's own TLS server certificate is issued fresh at every start for
//! the configured API address and kept in memory only. The CA certificate is the only thing
//! that goes into the initramfs (the agent pins it). IO: reads and writes the two CA files.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// What went wrong with the CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not usable as the CA {what}: {source}")]
    Parse {
        path: PathBuf,
        what: &'static str,
        source: rcgen::Error,
    },
    #[error("{path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")]
    KeyMode { path: PathBuf, mode: u32 },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The loaded CA.
#[derive(Debug)]
pub struct Ca {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    dir: PathBuf,
}

/// A leaf certificate with its private key (kept in memory).
#[derive(Debug)]
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const SERVER_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

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
        fs::create_dir_all(dir).map_err(io("create", dir))?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Lease Manager CA");
        dn.push(DnType::OrganizationName, "lease-appliance");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = (now - Duration::from_secs(3600)).into();
        params.not_after = (now + CA_LIFETIME).into();
        params.serial_number = Some(SerialNumber::from(serial.to_be_bytes().to_vec()));
        let cert = params.self_signed(&key)?;
        // Key first, private from birth; then the public certificate marks the CA as complete.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .map_err(io("create", &key_path))?;
        f.write_all(key.serialize_pem().as_bytes())
            .map_err(io("write", &key_path))?;
        f.sync_all().map_err(io("sync", &key_path))?;
        let tmp = dir.join("ca.pem.tmp");
        fs::write(&tmp, cert.pem()).map_err(io("write", &tmp))?;
        fs::rename(&tmp, &cert_path).map_err(io("rename", &cert_path))?;
        Ok((Self::load(dir, &cert_path, &key_path)?, true))
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
        let key = KeyPair::from_pem(&key_pem).map_err(|source| CaError::Parse {
            path: key_path.into(),
            what: "key",
            source,
        })?;
        let cert_pem = fs::read_to_string(cert_path).map_err(io("read", cert_path))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|source| CaError::Parse {
            path: cert_path.into(),
            what: "certificate",
            source,
        })?;
        let der = pem_to_der(&cert_pem).ok_or_else(|| CaError::Parse {
            path: cert_path.into(),
            what: "certificate",
            source: rcgen::Error::CouldNotParseCertificate,
        })?;
        Ok(Self {
            cert_pem,
            cert_der: der,
            issuer,
            dir: dir.to_path_buf(),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
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
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(sans.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Lease Manager API");
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = (now - Duration::from_secs(3600)).into();
        params.not_after = (now + SERVER_LIFETIME).into();
        params.serial_number = Some(SerialNumber::from(serial.to_be_bytes().to_vec()));
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            chain: vec![cert.der().clone(), self.cert_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }
}

fn pem_to_der(pem: &str) -> Option<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes()).next()?.ok()
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
}
