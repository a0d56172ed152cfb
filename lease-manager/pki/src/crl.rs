//! The CA's certificate revocation list (RFC 5280 section 5): one full CRL for everything the
//! CA issued, with CRL number and authority key identifier, signed by the CA key.

use std::time::SystemTime;

use rcgen::{CertificateRevocationListParams, RevokedCertParams, SerialNumber};

use crate::{Authority, AuthorityError, Serial};

/// A revoked certificate, as the CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCert {
    pub serial: Serial,
    pub revoked_at: SystemTime,
}

impl Authority {
    /// A DER CRL listing `revoked`, numbered `crl_number` (increase it with every CRL),
    /// issued at `now` and announcing the next one by `next_update` (must be after `now`).
    pub fn crl(
        &self,
        revoked: &[RevokedCert],
        crl_number: u64,
        now: SystemTime,
        next_update: SystemTime,
    ) -> Result<Vec<u8>, AuthorityError> {
        if next_update <= now {
            return Err(AuthorityError::NotAfterInPast {
                not_after_unix: unix(next_update),
                now_unix: unix(now),
            });
        }
        let params = CertificateRevocationListParams {
            this_update: now.into(),
            next_update: next_update.into(),
            crl_number: SerialNumber::from_slice(&crl_number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|r| RevokedCertParams {
                    serial_number: r.serial.to_rcgen(),
                    revocation_time: r.revoked_at.into(),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: self.key_id().clone(),
        };
        Ok(params.signed_by(self.issuer())?.der().to_vec())
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
