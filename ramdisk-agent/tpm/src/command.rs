//! Building the TPM2 commands this crate sends (Part 3 of the TPM 2.0 Library specification).
//! Pure: bytes out, no IO. Commands that need authorization carry one password session
//! (TPM_RS_PW) with the empty password.

use zeroize::Zeroizing;

use crate::error::TpmError;
use crate::marshal::Writer;
use crate::spec::*;
use crate::template::{write_primary_public, write_sealed_public};

/// The largest public or private part a sealed blob may hold (both are far smaller).
pub const MAX_BLOB_PART: usize = 1024;

fn plain(w: Writer) -> Vec<u8> {
    let mut z = w.finish();
    std::mem::take(&mut *z)
}

/// TPM2_GetRandom(bytesRequested).
pub fn get_random(n: u16) -> Vec<u8> {
    let mut w = Writer::command(ST_NO_SESSIONS, CC_GET_RANDOM, 12);
    w.u16(n);
    plain(w)
}

/// TPM2_CreatePrimary in the owner hierarchy with the fixed storage key template, empty
/// auth, no outside info, no creation PCRs.
pub fn create_primary() -> Vec<u8> {
    let mut w = Writer::command(ST_SESSIONS, CC_CREATE_PRIMARY, 128);
    w.u32(RH_OWNER);
    w.password_auth();
    w.sized(|w| {
        w.u16(0); // userAuth
        w.u16(0); // data
    });
    w.sized(write_primary_public);
    w.u16(0); // outsideInfo
    w.u32(0); // creationPCR: no selection
    plain(w)
}

/// TPM2_Create of the sealed data object holding `secret` under `parent`. The command holds
/// the secret and is zeroized on drop.
pub fn create(parent: u32, secret: &[u8; SECRET_LEN]) -> Zeroizing<Vec<u8>> {
    let mut w = Writer::command(ST_SESSIONS, CC_CREATE, 128);
    w.u32(parent);
    w.password_auth();
    w.sized(|w| {
        w.u16(0); // userAuth: empty
        w.u16(SECRET_LEN as u16); // data: the secret
        w.put(secret);
    });
    w.sized(write_sealed_public);
    w.u16(0); // outsideInfo
    w.u32(0); // creationPCR
    w.finish()
}

/// TPM2_Load of a sealed object's private and public parts (without their TPM2B sizes)
/// under `parent`.
pub fn load(parent: u32, public: &[u8], private: &[u8]) -> Result<Vec<u8>, TpmError> {
    for (name, part) in [("public", public), ("private", private)] {
        if part.is_empty() || part.len() > MAX_BLOB_PART {
            return Err(TpmError::bad_blob(format!(
                "the {name} part has {} bytes, expected 1 to {MAX_BLOB_PART}",
                part.len()
            )));
        }
    }
    let mut w = Writer::command(ST_SESSIONS, CC_LOAD, 32 + public.len() + private.len());
    w.u32(parent);
    w.password_auth();
    w.tpm2b(private)?;
    w.tpm2b(public)?;
    Ok(plain(w))
}

/// TPM2_Unseal of a loaded sealed object.
pub fn unseal(item: u32) -> Vec<u8> {
    let mut w = Writer::command(ST_SESSIONS, CC_UNSEAL, 32);
    w.u32(item);
    w.password_auth();
    plain(w)
}

/// TPM2_FlushContext of a transient handle.
pub fn flush_context(handle: u32) -> Vec<u8> {
    let mut w = Writer::command(ST_NO_SESSIONS, CC_FLUSH_CONTEXT, 14);
    w.u32(handle);
    plain(w)
}

/// TPM2_GetCapability(TPM_CAP_HANDLES) of the loaded transient objects, at most `count`.
pub fn get_transient_handles(count: u32) -> Vec<u8> {
    let mut w = Writer::command(ST_NO_SESSIONS, CC_GET_CAPABILITY, 22);
    w.u32(CAP_HANDLES);
    w.u32(u32::from(HT_TRANSIENT) << 24);
    w.u32(count);
    plain(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn get_random_golden() {
        // The lab probe's command (LAB-NOTES, TPM): GetRandom(8).
        assert_eq!(
            get_random(8),
            [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8]
        );
    }

    #[test]
    fn flush_and_get_capability_golden() {
        assert_eq!(
            hex(&flush_context(0x8000_0001)),
            "80010000000e0000016580000001"
        );
        assert_eq!(
            hex(&get_transient_handles(64)),
            "8001000000160000017a000000018000000000000040"
        );
    }

    #[test]
    #[rustfmt::skip]
    fn create_primary_golden() {
        let want = concat!(
            "8002", "00000043", "00000131", // header: sessions, 67 bytes, CreatePrimary
            "40000001",                     // TPM_RH_OWNER
            "00000009", "40000009", "0000", "00", "0000", // password session, empty
            "0004", "0000", "0000",         // inSensitive: empty userAuth and data
            "001a",                         // inPublic: 26 bytes
            "0023", "000b", "00030472", "0000", // ECC, SHA-256, attributes, no policy
            "0006", "0080", "0043",         // AES-128-CFB
            "0010", "0003", "0010",         // scheme NULL, NIST P-256, kdf NULL
            "0000", "0000",                 // unique x, y
            "0000", "00000000",             // outsideInfo, creationPCR
        );
        assert_eq!(hex(&create_primary()), want);
    }

    #[test]
    #[rustfmt::skip]
    fn create_golden() {
        let secret = [0x11; 32];
        // Header (87 bytes), parent, password session, inSensitive (36: empty auth, 32-byte
        // data), inPublic (14: KEYEDHASH, SHA-256, 0x452, no policy, scheme NULL, empty
        // unique), outsideInfo, creationPCR.
        let cmd = create(0x8000_0000, &secret);
        let expect = [
            "8002", "00000057", "00000153", "80000000",
            "00000009", "40000009", "0000", "00", "0000",
            "0024", "0000", "0020", &"11".repeat(32),
            "000e", "0008", "000b", "00000452", "0000", "0010", "0000",
            "0000", "00000000",
        ]
        .concat();
        assert_eq!(hex(&cmd), expect);
    }

    #[test]
    fn load_golden_and_bounds() {
        let cmd = load(0x8000_0000, &[1, 2], &[3]).unwrap();
        assert_eq!(
            hex(&cmd),
            "80020000002200000157800000000000000940000009000000000000010300020102"
        );
        assert!(matches!(load(1, &[], &[1]), Err(TpmError::BadBlob { .. })));
        assert!(matches!(
            load(1, &[1], &vec![0; MAX_BLOB_PART + 1]),
            Err(TpmError::BadBlob { .. })
        ));
    }

    #[test]
    #[rustfmt::skip]
    fn unseal_golden() {
        let want = [
            "8002", "0000001b", "0000015e", "80000001",
            "00000009", "40000009", "0000", "00", "0000",
        ]
        .concat();
        assert_eq!(hex(&unseal(0x8000_0001)), want);
    }
}
