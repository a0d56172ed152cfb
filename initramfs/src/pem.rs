//! Trust-anchor files: PEM with `CERTIFICATE` blocks only. Pure, no IO.
//!
//! The Lease Manager's CA certificate goes into the initramfs as `/etc/lease-manager/ca.pem`.
//! [`parse_certificates`] accepts a file only if it is one or more `CERTIFICATE` blocks
//! separated by blank space, each strict base64 (RFC 7468 "strict" form, RFC 4648 alphabet,
//! `=` padding at the end only) that decodes to one DER SEQUENCE spanning the whole block.
//! Any other label, any text outside blocks, and any private key are refused.

use thiserror::Error;

use crate::secrets::{SecretFinding, der_tlv, find_private_key};

const BEGIN_CERT: &str = "-----BEGIN CERTIFICATE-----";
const END_CERT: &str = "-----END CERTIFICATE-----";
/// Upper bound on certificates in one trust-anchor file.
const MAX_CERTS: usize = 64;

/// Why a trust-anchor file was refused. Line numbers are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PemError {
    #[error("contains a private key ({0}); the initramfs carries public certificates only")]
    PrivateKey(SecretFinding),
    #[error("not UTF-8 text; expected PEM CERTIFICATE blocks")]
    NotText,
    #[error("line {line}: a {label:?} block; only CERTIFICATE blocks are accepted")]
    WrongLabel { line: usize, label: String },
    #[error(
        "line {line}: text outside a CERTIFICATE block; keep only the PEM blocks \
         (for example `openssl x509 -in IN -out OUT`)"
    )]
    TextOutsideBlock { line: usize },
    #[error("line {line}: CERTIFICATE block is not closed by {END_CERT}")]
    Unterminated { line: usize },
    #[error("line {line}: invalid base64 in the CERTIFICATE block")]
    BadBase64 { line: usize },
    #[error("line {line}: the CERTIFICATE block does not hold one DER SEQUENCE")]
    NotDer { line: usize },
    #[error("no CERTIFICATE block found")]
    Empty,
    #[error("more than {MAX_CERTS} certificates")]
    TooMany,
}

/// Check a trust-anchor file and return the DER of each certificate, in file order.
pub fn parse_certificates(data: &[u8]) -> Result<Vec<Vec<u8>>, PemError> {
    if let Some(found) = find_private_key(data) {
        return Err(PemError::PrivateKey(found));
    }
    let text = std::str::from_utf8(data).map_err(|_| PemError::NotText)?;
    let mut certs = Vec::new();
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    while let Some((line, content)) = lines.next() {
        if content.is_empty() {
            continue;
        }
        if content != BEGIN_CERT {
            if let Some(label) = content
                .strip_prefix("-----BEGIN ")
                .and_then(|rest| rest.strip_suffix("-----"))
            {
                return Err(PemError::WrongLabel {
                    line,
                    label: label.to_owned(),
                });
            }
            return Err(PemError::TextOutsideBlock { line });
        }
        let mut b64 = String::new();
        let mut closed = false;
        for (_, body) in lines.by_ref() {
            if body == END_CERT {
                closed = true;
                break;
            }
            b64.push_str(body);
        }
        if !closed {
            return Err(PemError::Unterminated { line });
        }
        let der = decode_base64(&b64).ok_or(PemError::BadBase64 { line })?;
        match der_tlv(&der) {
            Some((0x30, _, [])) => {}
            _ => return Err(PemError::NotDer { line }),
        }
        if certs.len() == MAX_CERTS {
            return Err(PemError::TooMany);
        }
        certs.push(der);
    }
    if certs.is_empty() {
        return Err(PemError::Empty);
    }
    Ok(certs)
}

fn base64_value(c: u8) -> Option<u32> {
    Some(u32::from(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    }))
}

/// Strict standard base64: length a multiple of 4, `=` only as the last one or two
/// characters, and unused bits of the last group zero.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let groups = bytes.len() / 4;
    for (g, chunk) in bytes.chunks_exact(4).enumerate() {
        let pad = chunk.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 || (pad > 0 && g + 1 != groups) {
            return None;
        }
        let mut acc = 0u32;
        for c in &chunk[..4 - pad] {
            acc = (acc << 6) | base64_value(*c)?;
        }
        acc <<= 6 * pad as u32;
        let [_, b0, b1, b2] = acc.to_be_bytes();
        match pad {
            0 => out.extend_from_slice(&[b0, b1, b2]),
            1 if b2 == 0 => out.extend_from_slice(&[b0, b1]),
            2 if b1 == 0 && b2 == 0 => out.push(b0),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A self-signed P-256 certificate made with `openssl req -x509`.
    const CA: &str = include_str!("../tests/fixtures/test-ca.pem");

    #[test]
    fn accepts_one_or_more_certificates() {
        let certs = parse_certificates(CA.as_bytes()).unwrap();
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0][0], 0x30);
        assert_eq!(certs[0].len(), 0x18d + 4);
        let two = format!("{CA}\n\n{CA}");
        assert_eq!(parse_certificates(two.as_bytes()).unwrap().len(), 2);
        let crlf = CA.replace('\n', "\r\n");
        assert_eq!(parse_certificates(crlf.as_bytes()).unwrap(), certs);
    }

    #[test]
    fn refuses_keys_other_labels_and_text() {
        let with_key =
            format!("{CA}-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n");
        assert!(matches!(
            parse_certificates(with_key.as_bytes()),
            Err(PemError::PrivateKey(_))
        ));
        let public = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(matches!(
            parse_certificates(public.as_bytes()),
            Err(PemError::WrongLabel { line: 1, .. })
        ));
        let texty = format!("Certificate:\n    Data: ...\n{CA}");
        assert_eq!(
            parse_certificates(texty.as_bytes()),
            Err(PemError::TextOutsideBlock { line: 1 })
        );
        assert_eq!(parse_certificates(b"\n \n"), Err(PemError::Empty));
        assert_eq!(parse_certificates(b"\xff\xfe"), Err(PemError::NotText));
        let open = CA.replace(END_CERT, "");
        assert_eq!(
            parse_certificates(open.as_bytes()),
            Err(PemError::Unterminated { line: 1 })
        );
        let bad = CA.replacen("MIIB", "M!IB", 1);
        assert_eq!(
            parse_certificates(bad.as_bytes()),
            Err(PemError::BadBase64 { line: 1 })
        );
        let not_der = format!("{BEGIN_CERT}\naGVsbG8=\n{END_CERT}\n");
        assert_eq!(
            parse_certificates(not_der.as_bytes()),
            Err(PemError::NotDer { line: 1 })
        );
        let der_key = [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x05];
        assert!(matches!(
            parse_certificates(&der_key),
            Err(PemError::PrivateKey(_))
        ));
    }

    #[test]
    fn base64_strictness() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("aA==").unwrap(), b"h");
        assert_eq!(decode_base64("aGVs").unwrap(), b"hel");
        for bad in [
            "", "aGV", "aG=s", "a===", "aGk=aGk=", "aGl=", "aB==", "aGVsbG8*",
        ] {
            assert_eq!(decode_base64(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn base64_matches_a_reference_encoder(data in proptest::collection::vec(any::<u8>(), 1..100)) {
            const ALPHABET: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut enc = String::new();
            for chunk in data.chunks(3) {
                let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
                let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
                for i in 0..4 {
                    if i <= chunk.len() {
                        enc.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                    } else {
                        enc.push('=');
                    }
                }
            }
            prop_assert_eq!(decode_base64(&enc), Some(data));
        }

        #[test]
        fn arbitrary_input_never_panics(text in "\\PC{0,300}") {
            let _ = parse_certificates(text.as_bytes());
            let wrapped = format!("{BEGIN_CERT}\n{text}\n{END_CERT}\n");
            let _ = parse_certificates(wrapped.as_bytes());
        }
    }
}
