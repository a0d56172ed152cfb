//! Decoding TPM 2.0 response codes (Part 2, 6.6) into readable text. Pure.
//!
//! Layout of a response code:
//! - bits 31..16: the software layer that produced it (0 = the TPM itself);
//! - bit 7 clear, "format 0": bit 8 set = TPM 2.0 code (clear = TPM 1.2), bit 10 = vendor,
//!   bit 11 = warning, bits 6..0 = the error number;
//! - bit 7 set, "format 1": bits 5..0 = the error number, bit 6 set = bits 11..8 give the
//!   parameter number; else bits 11..8 give a handle number (1..7) or, with bit 11 set, a
//!   session number (8..15 -> 0..7).

/// `TPM_RC_INTEGRITY`: an object's integrity check failed (format 1, number 0x1F).
pub const INTEGRITY: u32 = 0x01F;
/// `TPM_RC_BINDING`: public and sensitive parts of an object do not match (format 1, 0x25).
pub const BINDING: u32 = 0x025;

/// What a response code says, split into its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    Success,
    /// A code from a software layer above the TPM (resource manager, driver).
    Layer {
        layer: u8,
        code: u32,
    },
    Tpm12 {
        code: u32,
    },
    Vendor {
        number: u32,
    },
    Format0 {
        warning: bool,
        number: u32,
    },
    Format1 {
        number: u32,
        position: Position,
    },
}

/// What a format-1 code refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Parameter(u8),
    Handle(u8),
    Session(u8),
    /// Handle number 0: the code applies to the command as a whole.
    Unspecified,
}

/// Splits a response code into its fields.
pub fn decode(code: u32) -> Decoded {
    if code == 0 {
        return Decoded::Success;
    }
    let layer = (code >> 16) as u8;
    if layer != 0 {
        return Decoded::Layer {
            layer,
            code: code & 0xFFFF,
        };
    }
    if code & 0x080 == 0 {
        if code & 0x100 == 0 {
            return Decoded::Tpm12 { code };
        }
        if code & 0x400 != 0 {
            return Decoded::Vendor {
                number: code & 0x7F,
            };
        }
        return Decoded::Format0 {
            warning: code & 0x800 != 0,
            number: code & 0x7F,
        };
    }
    let n = ((code >> 8) & 0xF) as u8;
    let position = if code & 0x040 != 0 {
        Position::Parameter(n)
    } else if n >= 8 {
        Position::Session(n - 8)
    } else if n == 0 {
        Position::Unspecified
    } else {
        Position::Handle(n)
    };
    Decoded::Format1 {
        number: code & 0x3F,
        position,
    }
}

/// True for a format-1 code with this error number (whatever parameter/handle it names).
pub fn is_format1(code: u32, number: u32) -> bool {
    matches!(decode(code), Decoded::Format1 { number: n, .. } if n == number)
}

/// A one-line readable meaning, e.g. `TPM_RC_INTEGRITY (parameter 1): integrity check failed`.
pub fn describe(code: u32) -> String {
    match decode(code) {
        Decoded::Success => "TPM_RC_SUCCESS".to_string(),
        Decoded::Layer { layer, code } => {
            let who = match layer {
                8 => "the TSS system API",
                10 => "the TSS TCTI",
                11 => "the resource manager",
                _ => "a software layer",
            };
            format!("from {who} (layer {layer}), code 0x{code:04x}")
        }
        Decoded::Tpm12 { code } => {
            format!("a TPM 1.2 response code 0x{code:x} (is this a TPM 2.0?)")
        }
        Decoded::Vendor { number } => format!("vendor-specific code 0x{number:02x}"),
        Decoded::Format0 { warning, number } => {
            let (name, text) = if warning {
                warning_name(number)
            } else {
                format0_name(number)
            };
            let kind = if warning { "warning" } else { "error" };
            format!("{name}: {text} ({kind} 0x{number:02x})")
        }
        Decoded::Format1 { number, position } => {
            let (name, text) = format1_name(number);
            let at = match position {
                Position::Parameter(n) => format!("parameter {n}"),
                Position::Handle(n) => format!("handle {n}"),
                Position::Session(n) => format!("session {n}"),
                Position::Unspecified => "command".to_string(),
            };
            format!("{name} ({at}): {text}")
        }
    }
}

fn format0_name(n: u32) -> (&'static str, &'static str) {
    match n {
        0x00 => ("TPM_RC_INITIALIZE", "TPM not initialized by TPM2_Startup"),
        0x01 => ("TPM_RC_FAILURE", "the TPM is in failure mode"),
        0x03 => ("TPM_RC_SEQUENCE", "improper use of a sequence handle"),
        0x0B => ("TPM_RC_PRIVATE", "not currently used"),
        0x19 => ("TPM_RC_HMAC", "not currently used"),
        0x20 => ("TPM_RC_DISABLED", "the command is disabled"),
        0x21 => (
            "TPM_RC_EXCLUSIVE",
            "the command failed because audit sequence required exclusivity",
        ),
        0x24 => (
            "TPM_RC_AUTH_TYPE",
            "authorization handle is not correct for the command",
        ),
        0x25 => (
            "TPM_RC_AUTH_MISSING",
            "the command requires an authorization session",
        ),
        0x26 => (
            "TPM_RC_POLICY",
            "policy failure in math operation or an invalid authPolicy",
        ),
        0x27 => ("TPM_RC_PCR", "PCR check failed"),
        0x28 => ("TPM_RC_PCR_CHANGED", "PCR have changed since checked"),
        0x2D => ("TPM_RC_UPGRADE", "the TPM is in field upgrade mode"),
        0x2E => (
            "TPM_RC_TOO_MANY_CONTEXTS",
            "context ID counter is at maximum",
        ),
        0x2F => (
            "TPM_RC_AUTH_UNAVAILABLE",
            "authValue or authPolicy is not available",
        ),
        0x30 => (
            "TPM_RC_REBOOT",
            "a _TPM_Init and Startup(CLEAR) is required",
        ),
        0x31 => (
            "TPM_RC_UNBALANCED",
            "the protection algorithms are not balanced",
        ),
        0x42 => (
            "TPM_RC_COMMAND_SIZE",
            "command size is inconsistent with the contents",
        ),
        0x43 => ("TPM_RC_COMMAND_CODE", "command code not supported"),
        0x44 => (
            "TPM_RC_AUTHSIZE",
            "authorizationSize is out of range or the number of sessions is wrong",
        ),
        0x45 => (
            "TPM_RC_AUTH_CONTEXT",
            "use of an authorization session with a context command",
        ),
        0x46 => ("TPM_RC_NV_RANGE", "NV offset+size is out of range"),
        0x47 => (
            "TPM_RC_NV_SIZE",
            "requested allocation size is larger than allowed",
        ),
        0x48 => ("TPM_RC_NV_LOCKED", "NV access locked"),
        0x49 => ("TPM_RC_NV_AUTHORIZATION", "NV access authorization fails"),
        0x4A => (
            "TPM_RC_NV_UNINITIALIZED",
            "an NV Index was used before being written",
        ),
        0x4B => ("TPM_RC_NV_SPACE", "insufficient space for NV allocation"),
        0x4C => (
            "TPM_RC_NV_DEFINED",
            "NV Index or persistent object already defined",
        ),
        0x50 => (
            "TPM_RC_BAD_CONTEXT",
            "context in TPM2_ContextLoad is not valid",
        ),
        0x51 => ("TPM_RC_CPHASH", "cpHash value already set or not correct"),
        0x52 => ("TPM_RC_PARENT", "handle for parent is not a valid parent"),
        0x53 => ("TPM_RC_NEEDS_TEST", "some function needs testing"),
        0x54 => (
            "TPM_RC_NO_RESULT",
            "internal function cannot process a request",
        ),
        0x55 => (
            "TPM_RC_SENSITIVE",
            "the sensitive area did not unmarshal correctly after decryption",
        ),
        _ => ("TPM_RC_?", "unknown format-0 error"),
    }
}

fn format1_name(n: u32) -> (&'static str, &'static str) {
    match n {
        0x01 => (
            "TPM_RC_ASYMMETRIC",
            "asymmetric algorithm not supported or not correct",
        ),
        0x02 => ("TPM_RC_ATTRIBUTES", "inconsistent attributes"),
        0x03 => (
            "TPM_RC_HASH",
            "hash algorithm not supported or not appropriate",
        ),
        0x04 => (
            "TPM_RC_VALUE",
            "value is out of range or not correct for the context",
        ),
        0x05 => (
            "TPM_RC_HIERARCHY",
            "hierarchy is not enabled or not correct for the use",
        ),
        0x07 => ("TPM_RC_KEY_SIZE", "key size is not supported"),
        0x08 => ("TPM_RC_MGF", "mask generation function not supported"),
        0x09 => ("TPM_RC_MODE", "mode of operation not supported"),
        0x0A => (
            "TPM_RC_TYPE",
            "the type of the value is not appropriate for the use",
        ),
        0x0B => ("TPM_RC_HANDLE", "the handle is not correct for the use"),
        0x0C => ("TPM_RC_KDF", "unsupported key derivation function"),
        0x0D => ("TPM_RC_RANGE", "value was out of allowed range"),
        0x0E => ("TPM_RC_AUTH_FAIL", "the authorization HMAC check failed"),
        0x0F => ("TPM_RC_NONCE", "invalid nonce size or nonce value mismatch"),
        0x10 => (
            "TPM_RC_PP",
            "authorization requires assertion of physical presence",
        ),
        0x12 => ("TPM_RC_SCHEME", "unsupported or incompatible scheme"),
        0x15 => ("TPM_RC_SIZE", "structure is the wrong size"),
        0x16 => (
            "TPM_RC_SYMMETRIC",
            "unsupported symmetric algorithm or key size",
        ),
        0x17 => ("TPM_RC_TAG", "incorrect structure tag"),
        0x18 => ("TPM_RC_SELECTOR", "union selector is incorrect"),
        0x1A => (
            "TPM_RC_INSUFFICIENT",
            "the TPM was unable to unmarshal a value: input too short",
        ),
        0x1B => ("TPM_RC_SIGNATURE", "the signature is not valid"),
        0x1C => (
            "TPM_RC_KEY",
            "key fields are not compatible with the selected use",
        ),
        0x1D => ("TPM_RC_POLICY_FAIL", "a policy check failed"),
        0x1F => ("TPM_RC_INTEGRITY", "integrity check failed"),
        0x20 => ("TPM_RC_TICKET", "invalid ticket"),
        0x21 => (
            "TPM_RC_RESERVED_BITS",
            "reserved bits not set to zero as required",
        ),
        0x22 => (
            "TPM_RC_BAD_AUTH",
            "authorization failure without DA implications",
        ),
        0x23 => ("TPM_RC_EXPIRED", "the policy has expired"),
        0x24 => (
            "TPM_RC_POLICY_CC",
            "the commandCode in the policy is not the commandCode of the command",
        ),
        0x25 => (
            "TPM_RC_BINDING",
            "public and sensitive portions of an object are not cryptographically bound",
        ),
        0x26 => ("TPM_RC_CURVE", "curve not supported"),
        0x27 => ("TPM_RC_ECC_POINT", "point is not on the required curve"),
        _ => ("TPM_RC_?", "unknown format-1 error"),
    }
}

fn warning_name(n: u32) -> (&'static str, &'static str) {
    match n {
        0x01 => ("TPM_RC_CONTEXT_GAP", "gap for context ID is too large"),
        0x02 => (
            "TPM_RC_OBJECT_MEMORY",
            "out of memory for object contexts (are transient handles left unflushed?)",
        ),
        0x03 => (
            "TPM_RC_SESSION_MEMORY",
            "out of memory for session contexts",
        ),
        0x04 => ("TPM_RC_MEMORY", "out of shared object/session memory"),
        0x05 => ("TPM_RC_SESSION_HANDLES", "out of session handles"),
        0x06 => ("TPM_RC_OBJECT_HANDLES", "out of object handles"),
        0x07 => ("TPM_RC_LOCALITY", "bad locality"),
        0x08 => (
            "TPM_RC_YIELDED",
            "the TPM has suspended operation on the command; retry",
        ),
        0x09 => ("TPM_RC_CANCELED", "the command was canceled"),
        0x0A => ("TPM_RC_TESTING", "the TPM is performing self-tests; retry"),
        0x10..=0x16 => (
            "TPM_RC_REFERENCE_H",
            "a handle refers to a transient object that is not loaded",
        ),
        0x18..=0x1E => (
            "TPM_RC_REFERENCE_S",
            "a session handle refers to a session that is not loaded",
        ),
        0x20 => (
            "TPM_RC_NV_RATE",
            "the TPM is rate-limiting NV writes; retry later",
        ),
        0x21 => ("TPM_RC_LOCKOUT", "the TPM is in dictionary-attack lockout"),
        0x22 => (
            "TPM_RC_RETRY",
            "the TPM was not able to start the command; retry",
        ),
        0x23 => (
            "TPM_RC_NV_UNAVAILABLE",
            "the command may require writing of NV and NV is not accessible",
        ),
        _ => ("TPM_RC_?", "unknown warning"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format1_parameter_integrity() {
        // TPM_RC_INTEGRITY + TPM_RC_P + TPM_RC_1 (parameter 1)
        let code = 0x080 | INTEGRITY | 0x040 | 0x100;
        assert_eq!(code, 0x1DF);
        assert_eq!(
            decode(code),
            Decoded::Format1 {
                number: INTEGRITY,
                position: Position::Parameter(1)
            }
        );
        assert!(is_format1(code, INTEGRITY));
        assert_eq!(
            describe(code),
            "TPM_RC_INTEGRITY (parameter 1): integrity check failed"
        );
    }

    #[test]
    fn format1_handle_and_session() {
        // TPM_RC_HANDLE on handle 1
        assert_eq!(
            decode(0x18B),
            Decoded::Format1 {
                number: 0x0B,
                position: Position::Handle(1)
            }
        );
        // TPM_RC_AUTH_FAIL on session 1 (N = 9)
        assert_eq!(
            decode(0x98E),
            Decoded::Format1 {
                number: 0x0E,
                position: Position::Session(1)
            }
        );
        assert!(describe(0x98E).starts_with("TPM_RC_AUTH_FAIL (session 1)"));
    }

    #[test]
    fn format0_errors_and_warnings() {
        assert_eq!(
            decode(0x100),
            Decoded::Format0 {
                warning: false,
                number: 0
            }
        );
        assert!(describe(0x100).starts_with("TPM_RC_INITIALIZE"));
        assert!(describe(0x143).starts_with("TPM_RC_COMMAND_CODE"));
        assert!(describe(0x902).starts_with("TPM_RC_OBJECT_MEMORY"));
        assert!(describe(0x922).starts_with("TPM_RC_RETRY"));
        assert_eq!(decode(0x1E), Decoded::Tpm12 { code: 0x1E });
        assert_eq!(decode(0x501), Decoded::Vendor { number: 1 });
        assert_eq!(decode(0x000B_0001), Decoded::Layer { layer: 11, code: 1 });
        assert!(describe(0x000B_0001).contains("resource manager"));
    }

    #[test]
    fn every_code_describes_without_panicking() {
        for code in (0..0x1000).chain([u32::MAX, 0x8000_0000, 0x0001_0000]) {
            assert!(!describe(code).is_empty());
        }
    }
}
