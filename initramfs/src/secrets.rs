//! Private-key detection: the initramfs carries public trust anchors only, never secrets.
//! Pure, no IO.
//!
//! Two cheap checks, applied to every file that goes into an image and by `scan`:
//! - a PEM armour line `-----BEGIN <LABEL>-----` whose label contains `PRIVATE KEY`
//!   (PKCS#8 `PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`, `RSA`/`EC`/`DSA`/`OPENSSH PRIVATE KEY`,
//!   `PGP PRIVATE KEY BLOCK`), anywhere in the file;
//! - a whole file that is one DER SEQUENCE shaped like a private key: PKCS#8 `PrivateKeyInfo`
//!   (INTEGER 0|1, AlgorithmIdentifier, OCTET STRING), PKCS#8 `EncryptedPrivateKeyInfo`
//!   (AlgorithmIdentifier, OCTET STRING), PKCS#1 `RSAPrivateKey` (INTEGER 0, INTEGER ...) or
//!   SEC1 `ECPrivateKey` (INTEGER 1, OCTET STRING). An X.509 certificate does not match: its
//!   first element is a SEQUENCE that starts with `[0]` or an INTEGER, not an OID.

use std::fmt;

const PEM_BEGIN: &[u8] = b"-----BEGIN ";
const PEM_DASHES: &[u8] = b"-----";
/// Longest PEM label we look at.
const MAX_LABEL: usize = 64;

const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;

/// What kind of private key was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretKind {
    /// A PEM block whose label names a private key.
    Pem { label: String },
    /// DER PKCS#8 `PrivateKeyInfo` / `OneAsymmetricKey`.
    DerPkcs8,
    /// DER PKCS#8 `EncryptedPrivateKeyInfo`.
    DerEncryptedPkcs8,
    /// DER PKCS#1 `RSAPrivateKey`.
    DerRsa,
    /// DER SEC1 `ECPrivateKey`.
    DerEc,
}

/// A private key found in some data, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFinding {
    pub kind: SecretKind,
    /// Byte offset of the marker (0 for DER, which must span the whole file).
    pub offset: usize,
}

impl fmt::Display for SecretFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            SecretKind::Pem { label } => {
                write!(f, "PEM \"{label}\" block at byte {}", self.offset)
            }
            SecretKind::DerPkcs8 => f.write_str("DER PKCS#8 private key"),
            SecretKind::DerEncryptedPkcs8 => f.write_str("DER encrypted PKCS#8 private key"),
            SecretKind::DerRsa => f.write_str("DER PKCS#1 RSA private key"),
            SecretKind::DerEc => f.write_str("DER SEC1 EC private key"),
        }
    }
}

/// The first private key in `data`, if any (see the module docs for what is recognized).
pub fn find_private_key(data: &[u8]) -> Option<SecretFinding> {
    find_pem_private_key(data)
        .or_else(|| der_private_key(data).map(|kind| SecretFinding { kind, offset: 0 }))
}

fn find_pem_private_key(data: &[u8]) -> Option<SecretFinding> {
    let mut from = 0;
    while let Some(at) = find(data, PEM_BEGIN, from) {
        from = at + 1;
        let label_start = at + PEM_BEGIN.len();
        let window = &data[label_start..data.len().min(label_start + MAX_LABEL + PEM_DASHES.len())];
        let Some(end) = find(window, PEM_DASHES, 0) else {
            continue;
        };
        let label = &window[..end];
        let plausible = label
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b' ');
        if plausible && find(label, b"PRIVATE KEY", 0).is_some() {
            return Some(SecretFinding {
                kind: SecretKind::Pem {
                    label: String::from_utf8_lossy(label).into_owned(),
                },
                offset: at,
            });
        }
    }
    None
}

/// Position of `needle` in `haystack` at or after `from`.
pub(crate) fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut i = from;
    while i + needle.len() <= haystack.len() {
        let next = haystack[i..haystack.len() - rest.len()]
            .iter()
            .position(|b| *b == first)?;
        i += next;
        if haystack[i + 1..].starts_with(rest) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// One DER TLV: tag, contents, and the bytes after it. Definite lengths up to 4 bytes only.
pub(crate) fn der_tlv(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn der_private_key(data: &[u8]) -> Option<SecretKind> {
    let (tag, body, after) = der_tlv(data)?;
    if tag != TAG_SEQUENCE || !after.is_empty() {
        return None;
    }
    let (t1, c1, rest1) = der_tlv(body)?;
    let (t2, c2, rest2) = der_tlv(rest1)?;
    let is_alg_id =
        |tag: u8, content: &[u8]| tag == TAG_SEQUENCE && content.first() == Some(&TAG_OID);
    match (t1, c1) {
        (TAG_INTEGER, [0] | [1]) if is_alg_id(t2, c2) => {
            let (t3, _, _) = der_tlv(rest2)?;
            (t3 == TAG_OCTET_STRING).then_some(SecretKind::DerPkcs8)
        }
        (TAG_INTEGER, [0]) if t2 == TAG_INTEGER => Some(SecretKind::DerRsa),
        (TAG_INTEGER, [1]) if t2 == TAG_OCTET_STRING => Some(SecretKind::DerEc),
        (TAG_SEQUENCE, [TAG_OID, ..]) if t2 == TAG_OCTET_STRING => {
            Some(SecretKind::DerEncryptedPkcs8)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Output of `openssl genpkey -algorithm ed25519 -outform DER` (a throwaway test key).
    const ED25519_PKCS8: [u8; 48] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20, 0xb7, 0x1e, 0x8f, 0xad, 0x9d, 0x77, 0x73, 0x8d, 0x3d, 0xf7, 0xda, 0xe9, 0x13, 0x57,
        0xff, 0x26, 0x7c, 0x3a, 0x25, 0x74, 0x8f, 0x3e, 0xb7, 0x05, 0x6d, 0x2b, 0xe0, 0xc6, 0x04,
        0x42, 0x4f, 0xc5,
    ];

    #[test]
    fn pem_private_keys_of_every_flavour() {
        for label in [
            "PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
            "RSA PRIVATE KEY",
            "EC PRIVATE KEY",
            "OPENSSH PRIVATE KEY",
            "PGP PRIVATE KEY BLOCK",
        ] {
            let text = format!("junk\n-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n");
            let found = find_private_key(text.as_bytes()).unwrap();
            assert_eq!(
                found.kind,
                SecretKind::Pem {
                    label: label.into()
                }
            );
            assert_eq!(found.offset, 5);
        }
    }

    #[test]
    fn certificates_and_near_misses_are_not_keys() {
        assert_eq!(find_private_key(b"-----BEGIN CERTIFICATE-----\nAA\n"), None);
        assert_eq!(find_private_key(b"-----BEGIN PUBLIC KEY-----\n"), None);
        // Format strings in a binary: label not followed by dashes.
        assert_eq!(find_private_key(b"-----BEGIN {}-----PRIVATE KEY"), None);
        assert_eq!(find_private_key(b"-----BEGIN "), None);
        assert_eq!(find_private_key(b""), None);
    }

    #[test]
    fn der_pkcs8_is_found_only_as_a_whole_file() {
        let found = find_private_key(&ED25519_PKCS8).unwrap();
        assert_eq!(found.kind, SecretKind::DerPkcs8);
        let mut longer = ED25519_PKCS8.to_vec();
        longer.push(0);
        assert_eq!(find_private_key(&longer), None);
        assert_eq!(find_private_key(&ED25519_PKCS8[..20]), None);
    }

    #[test]
    fn der_other_key_shapes() {
        // RSAPrivateKey: SEQUENCE { INTEGER 0, INTEGER n, ... }
        let rsa = [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x05];
        assert_eq!(der_private_key(&rsa), Some(SecretKind::DerRsa));
        // ECPrivateKey: SEQUENCE { INTEGER 1, OCTET STRING }
        let ec = [0x30, 0x06, 0x02, 0x01, 0x01, 0x04, 0x01, 0xaa];
        assert_eq!(der_private_key(&ec), Some(SecretKind::DerEc));
        // EncryptedPrivateKeyInfo: SEQUENCE { SEQUENCE { OID }, OCTET STRING }
        let enc = [0x30, 0x08, 0x30, 0x03, 0x06, 0x01, 0x2a, 0x04, 0x01, 0xbb];
        assert_eq!(der_private_key(&enc), Some(SecretKind::DerEncryptedPkcs8));
        // A certificate-shaped SEQUENCE { SEQUENCE { [0] ... } }
        let cert = [0x30, 0x07, 0x30, 0x05, 0xa0, 0x03, 0x02, 0x01, 0x02];
        assert_eq!(der_private_key(&cert), None);
    }

    #[test]
    fn der_long_form_lengths() {
        let mut data = vec![0x30, 0x81, 0x86, 0x02, 0x01, 0x00, 0x02, 0x81, 0x80];
        data.extend([0x11; 0x80]);
        assert_eq!(der_private_key(&data), Some(SecretKind::DerRsa));
        assert_eq!(der_tlv(&[0x30, 0x85, 1, 2, 3, 4, 5]), None);
        assert_eq!(der_tlv(&[0x30, 0x80]), None);
    }

    #[test]
    fn find_helper() {
        assert_eq!(find(b"abcabc", b"ca", 0), Some(2));
        assert_eq!(find(b"abcabc", b"ab", 1), Some(3));
        assert_eq!(find(b"ab", b"abc", 0), None);
        assert_eq!(find(b"abc", b"", 0), None);
        assert_eq!(find(b"abc", b"c", 5), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = find_private_key(&bytes);
        }

        #[test]
        fn an_embedded_pem_key_is_always_found(
            prefix in proptest::collection::vec(any::<u8>(), 0..100),
            suffix in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let mut data = prefix.clone();
            data.extend_from_slice(b"-----BEGIN PRIVATE KEY-----\n");
            data.extend(suffix);
            let found = find_private_key(&data);
            prop_assert!(found.is_some_and(|f| f.offset <= prefix.len()));
        }
    }
}
