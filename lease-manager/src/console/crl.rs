//! What `ca crl` prints about a CRL: its dates and the revoked serials. Pure.
//!
//! A minimal, strict DER walk over RFC 5280 section 5.1 (`TBSCertList`), enough to list the
//! revoked serials; it does not check the signature (the console got the CRL from the LM
//! over its root-only socket). x509-parser has its home in `lm-pki`, which offers no CRL
//! reader yet; this walk keeps the console from taking a second dependency on it.
//!
//! ```text
//! CertificateList  ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue }
//! TBSCertList      ::= SEQUENCE { version INTEGER OPTIONAL, signature AlgorithmIdentifier,
//!                      issuer Name, thisUpdate Time, nextUpdate Time OPTIONAL,
//!                      revokedCertificates SEQUENCE OF SEQUENCE {
//!                          userCertificate INTEGER, revocationDate Time, extensions OPTIONAL
//!                      } OPTIONAL,
//!                      crlExtensions [0] EXPLICIT Extensions OPTIONAL }
//! ```

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// A CRL's dates and revoked serials (lowercase hex without leading zero bytes, as the LM
/// writes serials everywhere else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlSummary {
    pub this_update: String,
    pub next_update: Option<String>,
    pub revoked: Vec<String>,
}

/// Why bytes are not a CRL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a DER CRL: {0}")]
pub struct CrlError(&'static str);

/// Reads one TLV from the front of `input`: (tag, contents, rest).
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), CrlError> {
    let (&tag, rest) = input.split_first().ok_or(CrlError("truncated"))?;
    if tag & 0x1f == 0x1f {
        return Err(CrlError("multi-byte tag"));
    }
    let (&first, rest) = rest.split_first().ok_or(CrlError("truncated length"))?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            if rest.len() < n {
                return Err(CrlError("truncated length"));
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |a, &b| a << 8 | usize::from(b));
            if len < 0x80 || rest[0] == 0 {
                return Err(CrlError("non-minimal length (not DER)"));
            }
            (len, &rest[n..])
        }
        _ => return Err(CrlError("indefinite or oversized length")),
    };
    if rest.len() < len {
        return Err(CrlError("length beyond the end of the input"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect<'a>(
    input: &'a [u8],
    want: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), CrlError> {
    match tlv(input)? {
        (tag, body, rest) if tag == want => Ok((body, rest)),
        _ => Err(CrlError(what)),
    }
}

fn time(tag: u8, body: &[u8]) -> Result<String, CrlError> {
    let s = std::str::from_utf8(body).map_err(|_| CrlError("time is not ASCII"))?;
    let digits = s.strip_suffix('Z').ok_or(CrlError("time is not UTC"))?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CrlError("time has non-digits"));
    }
    let full = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let century = if digits[..2] < *"50" { "20" } else { "19" };
            format!("{century}{digits}")
        }
        (GENERALIZED_TIME, 14) => digits.to_string(),
        _ => return Err(CrlError("time of unexpected length")),
    };
    let d = |r: std::ops::Range<usize>| &full[r];
    Ok(format!(
        "{}-{}-{}T{}:{}:{}Z",
        d(0..4),
        d(4..6),
        d(6..8),
        d(8..10),
        d(10..12),
        d(12..14)
    ))
}

fn serial_hex(int: &[u8]) -> String {
    let first = int
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(int.len().saturating_sub(1));
    hex::encode(&int[first..])
}

/// Lists what a DER CRL says; trailing bytes after the CRL are refused.
pub fn summarize(der: &[u8]) -> Result<CrlSummary, CrlError> {
    let (list, rest) = expect(der, SEQUENCE, "expected a SEQUENCE (CertificateList)")?;
    if !rest.is_empty() {
        return Err(CrlError("trailing bytes after the CRL"));
    }
    let (mut tbs, _) = expect(list, SEQUENCE, "expected a SEQUENCE (TBSCertList)")?;
    if tbs.first() == Some(&INTEGER) {
        tbs = expect(tbs, INTEGER, "version")?.1;
    }
    tbs = expect(tbs, SEQUENCE, "expected the signature algorithm")?.1;
    tbs = expect(tbs, SEQUENCE, "expected the issuer name")?.1;
    let (tag, body, rest) = tlv(tbs)?;
    if tag != UTC_TIME && tag != GENERALIZED_TIME {
        return Err(CrlError("expected thisUpdate"));
    }
    let this_update = time(tag, body)?;
    tbs = rest;
    let mut next_update = None;
    if let Some(&tag @ (UTC_TIME | GENERALIZED_TIME)) = tbs.first() {
        let (_, body, rest) = tlv(tbs)?;
        next_update = Some(time(tag, body)?);
        tbs = rest;
    }
    let mut revoked = Vec::new();
    if tbs.first() == Some(&SEQUENCE) {
        let (mut entries, _) = expect(tbs, SEQUENCE, "revokedCertificates")?;
        while !entries.is_empty() {
            let (entry, rest) = expect(entries, SEQUENCE, "expected a revoked entry")?;
            let (serial, _) = expect(entry, INTEGER, "expected a revoked serial")?;
            if serial.is_empty() {
                return Err(CrlError("empty serial"));
            }
            revoked.push(serial_hex(serial));
            entries = rest;
        }
    }
    Ok(CrlSummary {
        this_update,
        next_update,
        revoked,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use lm_pki::{Authority, RevokedCert, Serial};

    use super::*;

    #[test]
    fn reads_a_crl_of_the_lm_ca() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (ca, _) = Authority::generate(t, Serial::from(1)).unwrap();
        let revoked: Vec<RevokedCert> = [0x4be1d2u64, 0x80, 0x01ff]
            .into_iter()
            .map(|s| RevokedCert {
                serial: Serial::from(s),
                revoked_at: t,
            })
            .collect();
        let der = ca
            .crl(&revoked, 7, t, t + Duration::from_secs(3600))
            .unwrap();
        let s = summarize(&der).unwrap();
        assert_eq!(s.this_update, "2023-11-14T22:13:20Z");
        assert_eq!(s.next_update.as_deref(), Some("2023-11-14T23:13:20Z"));
        assert_eq!(s.revoked, ["4be1d2", "80", "01ff"]);

        let empty = ca.crl(&[], 8, t, t + Duration::from_secs(60)).unwrap();
        assert_eq!(summarize(&empty).unwrap().revoked, Vec::<String>::new());

        // Every truncation is refused, and so are trailing bytes.
        for n in 0..der.len() {
            assert!(
                summarize(&der[..n]).is_err(),
                "prefix of {n} bytes accepted"
            );
        }
        let mut long = der.clone();
        long.push(0);
        assert!(summarize(&long).is_err());
    }

    #[test]
    fn refuses_what_is_not_der() {
        assert!(summarize(b"").is_err());
        assert!(summarize(b"-----BEGIN X509 CRL-----").is_err());
        // Indefinite length (BER), multi-byte tag, non-minimal length.
        assert!(summarize(&[0x30, 0x80, 0, 0]).is_err());
        assert!(summarize(&[0x3f, 0x01, 0]).is_err());
        assert!(summarize(&[0x30, 0x81, 0x01, 0]).is_err());
        // A length that claims more than there is (no allocation from it).
        assert!(summarize(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert_eq!(
            time(UTC_TIME, b"491231235959Z").unwrap(),
            "2049-12-31T23:59:59Z"
        );
        assert_eq!(
            time(UTC_TIME, b"500101000000Z").unwrap(),
            "1950-01-01T00:00:00Z"
        );
        assert!(time(UTC_TIME, b"5001010000Z").is_err());
        assert!(time(GENERALIZED_TIME, b"2023111422132a").is_err());
    }
}
