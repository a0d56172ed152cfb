//! The `<image-id>.manifest` file: magic, version, length-prefixed JSON body, Ed25519 signature
//! over everything before it. Decoding checks the framing only; the body is parsed after the
//! signature verified ([`SignedManifest::verify`]). Pure.

use crate::error::{Error, Result};
use crate::keys::{SigningKey, VerifyingKey};
use crate::manifest::Manifest;

/// First 8 bytes of a manifest file.
pub const MANIFEST_MAGIC: &[u8; 8] = b"SIMG-MF\n";
/// The format version this build writes and reads (manifest header and chunk AAD).
pub const VERSION: u16 = 1;
/// Largest JSON body accepted (a maximal valid body is under 6 MiB).
pub const MAX_MANIFEST_LEN: u32 = 8 << 20;
const HEADER_LEN: usize = 14;
const SIG_ALG_NONE: u8 = 0;
const SIG_ALG_ED25519: u8 = 1;
const SIG_LEN: usize = 64;

/// A manifest file's bytes: header and body (the signed part) and the Ed25519 signature.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedManifest {
    signed: Vec<u8>,
    signature: [u8; SIG_LEN],
}

impl std::fmt::Debug for SignedManifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedManifest")
            .field("len", &self.signed.len())
            .finish_non_exhaustive()
    }
}

impl SignedManifest {
    /// Signs a manifest (validated first).
    pub fn sign(manifest: &Manifest, key: &SigningKey) -> Result<Self> {
        manifest.validate()?;
        let body = manifest.to_json();
        let len = u32::try_from(body.len())
            .ok()
            .filter(|l| *l <= MAX_MANIFEST_LEN)
            .ok_or_else(|| {
                Error::invalid(
                    "manifest",
                    format!("body of {} bytes is over the limit", body.len()),
                )
            })?;
        let mut signed = Vec::with_capacity(HEADER_LEN + body.len());
        signed.extend_from_slice(MANIFEST_MAGIC);
        signed.extend_from_slice(&VERSION.to_be_bytes());
        signed.extend_from_slice(&len.to_be_bytes());
        signed.extend_from_slice(&body);
        let signature = key.sign(&signed);
        Ok(Self { signed, signature })
    }

    /// The manifest file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.signed.len() + 1 + SIG_LEN);
        out.extend_from_slice(&self.signed);
        out.push(SIG_ALG_ED25519);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Checks the framing (magic, version, body length, signature block, no trailing bytes).
    /// Does not parse the body: that waits for [`SignedManifest::verify`].
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let header = bytes.get(..HEADER_LEN).ok_or_else(|| {
            Error::malformed(
                "header",
                format!(
                    "{} bytes, a manifest file starts with a {HEADER_LEN}-byte header",
                    bytes.len()
                ),
            )
        })?;
        if &header[..8] != MANIFEST_MAGIC {
            return Err(Error::malformed(
                "magic",
                "not a sealed-image manifest (magic \"SIMG-MF\\n\" missing)",
            ));
        }
        let version = u16::from_be_bytes([header[8], header[9]]);
        if version != VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        let len = u32::from_be_bytes([header[10], header[11], header[12], header[13]]);
        if len > MAX_MANIFEST_LEN {
            return Err(Error::malformed(
                "body_len",
                format!("{len} bytes, at most {MAX_MANIFEST_LEN}"),
            ));
        }
        let end = HEADER_LEN + len as usize;
        let signed = bytes.get(..end).ok_or_else(|| {
            Error::malformed(
                "body",
                format!(
                    "header says {len} bytes, the file has {}",
                    bytes.len().saturating_sub(HEADER_LEN)
                ),
            )
        })?;
        let rest = bytes.get(end..).unwrap_or_default();
        match rest.split_first() {
            None => Err(Error::Unsigned),
            Some((&SIG_ALG_NONE, [])) => Err(Error::Unsigned),
            Some((&SIG_ALG_ED25519, sig)) => {
                let signature: [u8; SIG_LEN] = sig.try_into().map_err(|_| {
                    Error::malformed(
                        "signature",
                        format!(
                            "{} bytes after the Ed25519 marker, expected exactly {SIG_LEN}",
                            sig.len()
                        ),
                    )
                })?;
                Ok(Self {
                    signed: signed.to_vec(),
                    signature,
                })
            }
            Some((alg, _)) => Err(Error::malformed(
                "signature",
                format!("unknown signature algorithm {alg} (1 is Ed25519)"),
            )),
        }
    }

    /// Verifies the signature with the tenant's image-signing key, then parses and validates
    /// the body. Only a manifest that passes both is returned.
    pub fn verify(&self, key: &VerifyingKey) -> Result<Manifest> {
        if !key.verify(&self.signed, &self.signature) {
            return Err(Error::BadSignature);
        }
        Manifest::from_json(self.body())
    }

    /// Parses and validates the body WITHOUT checking the signature: for listing and
    /// diagnostics only, never for opening an image.
    pub fn parse_unverified(&self) -> Result<Manifest> {
        Manifest::from_json(self.body())
    }

    fn body(&self) -> &[u8] {
        self.signed.get(HEADER_LEN..).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(version: u16, len: u32) -> Vec<u8> {
        let mut b = MANIFEST_MAGIC.to_vec();
        b.extend_from_slice(&version.to_be_bytes());
        b.extend_from_slice(&len.to_be_bytes());
        b
    }

    #[test]
    fn framing_refusals() {
        assert!(matches!(
            SignedManifest::decode(b""),
            Err(Error::Malformed {
                field: "header",
                ..
            })
        ));
        let mut bad_magic = header(1, 0);
        bad_magic[0] = b'X';
        assert!(matches!(
            SignedManifest::decode(&bad_magic),
            Err(Error::Malformed { field: "magic", .. })
        ));
        assert!(matches!(
            SignedManifest::decode(&header(2, 0)),
            Err(Error::UnsupportedVersion {
                found: 2,
                supported: 1
            })
        ));
        assert!(matches!(
            SignedManifest::decode(&header(1, u32::MAX)),
            Err(Error::Malformed {
                field: "body_len",
                ..
            })
        ));
        assert!(matches!(
            SignedManifest::decode(&header(1, 100)),
            Err(Error::Malformed { field: "body", .. })
        ));
        let mut unsigned = header(1, 2);
        unsigned.extend_from_slice(b"{}");
        assert!(matches!(
            SignedManifest::decode(&unsigned),
            Err(Error::Unsigned)
        ));
        unsigned.push(0);
        assert!(matches!(
            SignedManifest::decode(&unsigned),
            Err(Error::Unsigned)
        ));
        unsigned.pop();
        unsigned.push(7);
        assert!(matches!(
            SignedManifest::decode(&unsigned),
            Err(Error::Malformed {
                field: "signature",
                ..
            })
        ));
        unsigned.pop();
        unsigned.push(1);
        unsigned.extend_from_slice(&[0; 63]);
        assert!(matches!(
            SignedManifest::decode(&unsigned),
            Err(Error::Malformed {
                field: "signature",
                ..
            })
        ));
        unsigned.extend_from_slice(&[0; 2]);
        assert!(matches!(
            SignedManifest::decode(&unsigned),
            Err(Error::Malformed {
                field: "signature",
                ..
            })
        ));
        unsigned.pop();
        let m = SignedManifest::decode(&unsigned).unwrap();
        assert_eq!(m.encode(), unsigned);
        assert!(matches!(
            m.verify(&VerifyingKey([1; 32])),
            Err(Error::BadSignature)
        ));
        assert!(matches!(
            m.parse_unverified(),
            Err(Error::Malformed { field: "body", .. })
        ));
    }
}
