//! The two fixed object templates (TPMT_PUBLIC, Part 2 12.2.4) and the check of a sealed
//! object's public area. Pure.
//!
//! The storage primary's template is fixed, so TPM2_CreatePrimary in the owner hierarchy
//! derives the same key from the same owner seed every time: nothing needs to be stored in
//! the TPM's NV memory, and a TPM whose owner seed changed (TPM2_Clear, another machine) derives
//! another key that cannot load the old blobs.

use crate::error::TpmError;
use crate::marshal::{Reader, Writer};
use crate::spec::*;

/// The length of a SHA-256 digest (the `unique` field of a sealed object).
const SHA256_LEN: usize = 32;

/// Writes the storage primary's TPMT_PUBLIC: ECC NIST P-256, restricted decrypt, AES-128-CFB
/// for its children, SHA-256 name algorithm, no scheme, no KDF, empty unique, empty policy.
pub(crate) fn write_primary_public(w: &mut Writer) {
    w.u16(ALG_ECC); // type
    w.u16(ALG_SHA256); // nameAlg
    w.u32(PRIMARY_ATTRIBUTES); // objectAttributes
    w.u16(0); // authPolicy: empty
    // TPMS_ECC_PARMS
    w.u16(ALG_AES); // symmetric.algorithm
    w.u16(128); // symmetric.keyBits
    w.u16(ALG_CFB); // symmetric.mode
    w.u16(ALG_NULL); // scheme
    w.u16(ECC_NIST_P256); // curveID
    w.u16(ALG_NULL); // kdf
    // unique: TPMS_ECC_POINT with empty x and y
    w.u16(0);
    w.u16(0);
}

/// Writes the sealed object's TPMT_PUBLIC: KEYEDHASH, scheme NULL (a data object, not an HMAC
/// key), SHA-256 name algorithm, fixedTPM|fixedParent|userWithAuth|noDA, empty policy, empty
/// unique (the TPM fills it in).
pub(crate) fn write_sealed_public(w: &mut Writer) {
    w.u16(ALG_KEYEDHASH);
    w.u16(ALG_SHA256);
    w.u32(SEALED_ATTRIBUTES);
    w.u16(0); // authPolicy
    w.u16(ALG_NULL); // TPMT_KEYEDHASH_SCHEME: NULL, no details
    w.u16(0); // unique
}

/// Checks that `public` (a TPMT_PUBLIC, without its size) is a sealed data object made from
/// our template: anything else is not a blob this crate made.
pub(crate) fn check_sealed_public(public: &[u8]) -> Result<(), String> {
    let mut r = Reader::new(public, "sealed object public area");
    let fields = (|| -> Result<_, TpmError> {
        let ty = r.u16("type")?;
        let name_alg = r.u16("nameAlg")?;
        let attrs = r.u32("objectAttributes")?;
        let policy = r.tpm2b("authPolicy")?.len();
        let scheme = r.u16("scheme")?;
        let unique = r.tpm2b("unique")?.len();
        r.finish()?;
        Ok((ty, name_alg, attrs, policy, scheme, unique))
    })();
    let (ty, name_alg, attrs, policy, scheme, unique) = fields.map_err(|e| e.to_string())?;
    if ty != ALG_KEYEDHASH {
        return Err(format!("object type 0x{ty:04x}, expected KEYEDHASH 0x0008"));
    }
    if name_alg != ALG_SHA256 {
        return Err(format!(
            "name algorithm 0x{name_alg:04x}, expected SHA-256 0x000b"
        ));
    }
    if attrs != SEALED_ATTRIBUTES {
        return Err(format!(
            "object attributes 0x{attrs:08x}, expected 0x{SEALED_ATTRIBUTES:08x}"
        ));
    }
    if policy != 0 {
        return Err(format!("an authPolicy of {policy} bytes, expected none"));
    }
    if scheme != ALG_NULL {
        return Err(format!("keyed-hash scheme 0x{scheme:04x}, expected NULL"));
    }
    if unique != SHA256_LEN {
        return Err(format!("unique of {unique} bytes, expected {SHA256_LEN}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(unique: usize) -> Vec<u8> {
        let mut w = Writer::command(0, 0, 128);
        write_sealed_public(&mut w);
        let mut b = w.finish()[10..].to_vec();
        let n = b.len();
        b[n - 2..].copy_from_slice(&(unique as u16).to_be_bytes());
        b.extend(std::iter::repeat_n(0xAB, unique));
        b
    }

    #[test]
    fn accepts_our_template_with_a_digest() {
        check_sealed_public(&sealed(32)).unwrap();
    }

    #[test]
    fn refuses_other_objects() {
        assert!(check_sealed_public(&sealed(0)).is_err());
        let mut b = sealed(32);
        b[1] = 0x01; // RSA
        assert!(check_sealed_public(&b).unwrap_err().contains("object type"));
        let mut b = sealed(32);
        b[7] |= 0x20; // sensitiveDataOrigin
        assert!(check_sealed_public(&b).unwrap_err().contains("attributes"));
        let mut b = sealed(32);
        b.push(0);
        assert!(check_sealed_public(&b).is_err());
        assert!(check_sealed_public(&[]).is_err());
    }
}
