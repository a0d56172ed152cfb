//! Constants from the TPM 2.0 Library specification, Part 2 (Structures), that this crate
//! uses. Section numbers refer to Part 2, revision 1.59.

/// 6.9 TPM_ST: command/response without an authorization area.
pub const ST_NO_SESSIONS: u16 = 0x8001;
/// 6.9 TPM_ST: command/response with an authorization area.
pub const ST_SESSIONS: u16 = 0x8002;
/// 6.9 TPM_ST_RSP_COMMAND: the tag of the answer to a command with a bad tag (TPM 1.2 form).
pub const ST_RSP_COMMAND: u16 = 0x00C4;

/// The largest response this crate accepts (the device transport reads at most this much).
pub const MAX_RESPONSE: usize = 4096;

/// 6.5.2 TPM_CC command codes.
pub const CC_CREATE_PRIMARY: u32 = 0x0000_0131;
pub const CC_CREATE: u32 = 0x0000_0153;
pub const CC_LOAD: u32 = 0x0000_0157;
pub const CC_UNSEAL: u32 = 0x0000_015E;
pub const CC_FLUSH_CONTEXT: u32 = 0x0000_0165;
pub const CC_GET_CAPABILITY: u32 = 0x0000_017A;
pub const CC_GET_RANDOM: u32 = 0x0000_017B;

/// 7.4 TPM_RH_OWNER: the owner (storage) hierarchy.
pub const RH_OWNER: u32 = 0x4000_0001;
/// 7.4 TPM_RS_PW: the password authorization session.
pub const RS_PW: u32 = 0x4000_0009;
/// 7.2 TPM_HT_TRANSIENT: the first byte of a transient object handle.
pub const HT_TRANSIENT: u8 = 0x80;

/// 6.12 TPM_CAP_HANDLES.
pub const CAP_HANDLES: u32 = 0x0000_0001;

/// 6.3 TPM_ALG_ID.
pub const ALG_AES: u16 = 0x0006;
pub const ALG_KEYEDHASH: u16 = 0x0008;
pub const ALG_SHA256: u16 = 0x000B;
pub const ALG_NULL: u16 = 0x0010;
pub const ALG_ECC: u16 = 0x0023;
pub const ALG_CFB: u16 = 0x0043;
/// 6.4 TPM_ECC_CURVE: NIST P-256.
pub const ECC_NIST_P256: u16 = 0x0003;

/// 8.3 TPMA_OBJECT bits.
pub const ATTR_FIXED_TPM: u32 = 1 << 1;
pub const ATTR_FIXED_PARENT: u32 = 1 << 4;
pub const ATTR_SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
pub const ATTR_USER_WITH_AUTH: u32 = 1 << 6;
pub const ATTR_NO_DA: u32 = 1 << 10;
pub const ATTR_RESTRICTED: u32 = 1 << 16;
pub const ATTR_DECRYPT: u32 = 1 << 17;

/// The storage primary: an ECC P-256 restricted decryption key (a parent for other objects).
pub const PRIMARY_ATTRIBUTES: u32 = ATTR_FIXED_TPM
    | ATTR_FIXED_PARENT
    | ATTR_SENSITIVE_DATA_ORIGIN
    | ATTR_USER_WITH_AUTH
    | ATTR_NO_DA
    | ATTR_RESTRICTED
    | ATTR_DECRYPT;

/// The sealed data object: the caller supplies the data (no sensitiveDataOrigin), it can only
/// be loaded under the same parent on the same TPM, and unsealed with the empty password.
pub const SEALED_ATTRIBUTES: u32 =
    ATTR_FIXED_TPM | ATTR_FIXED_PARENT | ATTR_USER_WITH_AUTH | ATTR_NO_DA;

/// The size of the sealed secret (the host key).
pub const SECRET_LEN: usize = 32;
