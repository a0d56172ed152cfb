//! Reading the LM CA's CRL on the relying side (the tenant gateway): parse the DER, check it is
//! issued and signed by the CA, and list what it revokes. Pure.

use std::collections::BTreeSet;

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::Serial;

/// Largest CRL looked at (one entry is about 40 bytes: room for ~100 000 revocations).
pub const MAX_CRL_LEN: usize = 4 * 1024 * 1024;

/// A CRL that was signed by the CA it was checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCrl {
    /// The CRL number (increases with every CRL the LM signs), if present and at most 64 bits.
    pub number: Option<u64>,
    /// When the LM signed it (Unix seconds).
    pub this_update_unix: i64,
    /// When the LM promises the next one by (Unix seconds).
    pub next_update_unix: Option<i64>,
    /// Revoked serials, lowercase hex without leading zeros (as [`crate::PeerCert::serial_hex`]).
    revoked: BTreeSet<String>,
}

impl CheckedCrl {
    /// Whether the certificate with serial `serial_hex` (as [`crate::PeerCert`] writes it) is
    /// revoked.
    pub fn is_revoked(&self, serial_hex: &str) -> bool {
        self.revoked.contains(serial_hex)
    }

    /// Number of revoked certificates.
    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }
}

/// Why a CRL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlCheckError {
    #[error("CRL of {len} bytes is larger than {MAX_CRL_LEN}")]
    TooLarge { len: usize },
    #[error("not a DER CRL: {detail}")]
    NotACrl { detail: String },
    #[error("{len} bytes follow the CRL")]
    TrailingBytes { len: usize },
    #[error("the CA certificate is not usable: {detail}")]
    Ca { detail: String },
    #[error("the CRL is issued by {issuer:?}, not by the CA {ca:?}")]
    WrongIssuer { issuer: String, ca: String },
    #[error(
        "the CRL's signature does not verify with the CA's key: it was changed or signed by another CA"
    )]
    BadSignature,
    #[error("the CRL lists a serial number longer than 20 bytes")]
    Serial,
}

/// Checks `crl_der` against the CA certificate `ca_der` and lists what it revokes.
pub fn check_crl(crl_der: &[u8], ca_der: &[u8]) -> Result<CheckedCrl, CrlCheckError> {
    if crl_der.len() > MAX_CRL_LEN {
        return Err(CrlCheckError::TooLarge { len: crl_der.len() });
    }
    let (rest, ca) = X509Certificate::from_der(ca_der).map_err(|e| CrlCheckError::Ca {
        detail: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(CrlCheckError::Ca {
            detail: "bytes follow the certificate".into(),
        });
    }
    let (rest, crl) =
        CertificateRevocationList::from_der(crl_der).map_err(|e| CrlCheckError::NotACrl {
            detail: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(CrlCheckError::TrailingBytes { len: rest.len() });
    }
    if crl.issuer().as_raw() != ca.subject().as_raw() {
        return Err(CrlCheckError::WrongIssuer {
            issuer: crl.issuer().to_string(),
            ca: ca.subject().to_string(),
        });
    }
    crl.verify_signature(ca.public_key())
        .map_err(|_| CrlCheckError::BadSignature)?;
    let mut revoked = BTreeSet::new();
    for r in crl.iter_revoked_certificates() {
        let serial = Serial::from_bytes(r.raw_serial()).map_err(|_| CrlCheckError::Serial)?;
        revoked.insert(serial.to_hex());
    }
    let number = crl.crl_number().and_then(|n| {
        let bytes = n.to_bytes_be();
        (bytes.len() <= 8).then(|| bytes.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)))
    });
    Ok(CheckedCrl {
        number,
        this_update_unix: crl.last_update().timestamp(),
        next_update_unix: crl.next_update().map(|t| t.timestamp()),
        revoked,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::{Authority, RevokedCert};

    fn ca() -> Authority {
        Authority::generate(SystemTime::now(), 1u64.into())
            .unwrap()
            .0
    }

    #[test]
    fn lists_what_the_ca_revoked() {
        let ca = ca();
        let now = SystemTime::now();
        let crl = ca
            .crl(
                &[
                    RevokedCert {
                        serial: [0x81; 16].into(),
                        revoked_at: now,
                    },
                    RevokedCert {
                        serial: 0x8000_0000_0000_0001u64.into(),
                        revoked_at: now,
                    },
                ],
                77,
                now,
                now + Duration::from_secs(3600),
            )
            .unwrap();
        let c = check_crl(&crl, ca.cert_der()).unwrap();
        assert_eq!(c.len(), 2);
        assert!(c.is_revoked(&"81".repeat(16)));
        assert!(c.is_revoked("8000000000000001"));
        assert!(!c.is_revoked("01"));
        assert_eq!(c.number, Some(77));
        assert!(c.next_update_unix.unwrap() > c.this_update_unix);
        let empty = ca.crl(&[], 78, now, now + Duration::from_secs(60)).unwrap();
        assert!(check_crl(&empty, ca.cert_der()).unwrap().is_empty());
    }

    #[test]
    fn refuses_foreign_tampered_and_malformed_crls() {
        let ours = ca();
        let theirs = ca();
        let now = SystemTime::now();
        let later = now + Duration::from_secs(3600);
        let crl = theirs.crl(&[], 1, now, later).unwrap();
        // Same subject name, other key: the signature decides.
        assert_eq!(
            check_crl(&crl, ours.cert_der()),
            Err(CrlCheckError::BadSignature)
        );
        let mut tampered = ours
            .crl(
                &[RevokedCert {
                    serial: 5u64.into(),
                    revoked_at: now,
                }],
                1,
                now,
                later,
            )
            .unwrap();
        // Flip the last byte of the revoked serial (inside the signed part).
        let pos = tampered
            .windows(3)
            .position(|w| w == [0x02, 0x01, 0x05])
            .unwrap();
        tampered[pos + 2] = 0x06;
        assert_eq!(
            check_crl(&tampered, ours.cert_der()),
            Err(CrlCheckError::BadSignature)
        );
        let mut trailing = ours.crl(&[], 2, now, later).unwrap();
        trailing.push(0);
        assert!(matches!(
            check_crl(&trailing, ours.cert_der()),
            Err(CrlCheckError::TrailingBytes { len: 1 })
        ));
        assert!(matches!(
            check_crl(b"", ours.cert_der()),
            Err(CrlCheckError::NotACrl { .. })
        ));
        assert!(matches!(
            check_crl(&[0x30; MAX_CRL_LEN + 1], ours.cert_der()),
            Err(CrlCheckError::TooLarge { .. })
        ));
        assert!(matches!(
            check_crl(&trailing, b"junk"),
            Err(CrlCheckError::Ca { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024)) {
            let _ = check_crl(&data, CA.with(|c| c.clone()).as_slice());
        }
    }

    thread_local! {
        static CA: Vec<u8> = ca().cert_der().to_vec();
    }
}
