//! The crate's one error type: who failed (the device, the TPM, the response bytes, the blob).

use crate::rc;

/// What went wrong while talking to the TPM or reading a sealed blob.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    /// Reading or writing the TPM device (or the test socket) failed.
    #[error("TPM I/O: {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// No TPM character device exists: the host has no TPM 2.0, it is disabled in the firmware,
    /// or the kernel has no driver for it (tpm_tis / tpm_crb).
    #[error(
        "no TPM device: tried {tried}; enable the TPM 2.0 in the firmware, or check that the kernel has tpm_tis/tpm_crb and devtmpfs is mounted"
    )]
    NoDevice { tried: String },
    /// The TPM refused a command.
    #[error("TPM2_{command} failed with 0x{code:03x}: {meaning}")]
    Response {
        command: &'static str,
        code: u32,
        meaning: String,
    },
    /// The TPM's answer is not a well-formed response to the command sent.
    #[error("malformed TPM response: {what}")]
    Malformed { what: String },
    /// The TPM refused to load a sealed blob as not its own: it was made by another TPM (other
    /// seeds, e.g. another machine or a cleared TPM), or its bytes were altered.
    #[error(
        "the sealed blob was not made by this TPM or was altered (TPM2_Load: 0x{code:03x}, {}); it cannot be unsealed here, seal a new secret",
        rc::describe(*.code)
    )]
    ForeignBlob { code: u32 },
    /// The sealed blob's bytes are not a blob of this format.
    #[error("not a valid sealed host key blob: {what}")]
    BadBlob { what: String },
    /// The caller asked for something this crate does not do.
    #[error("invalid TPM request: {what}")]
    Request { what: String },
}

impl TpmError {
    pub(crate) fn malformed(what: impl Into<String>) -> Self {
        TpmError::Malformed { what: what.into() }
    }

    pub(crate) fn bad_blob(what: impl Into<String>) -> Self {
        TpmError::BadBlob { what: what.into() }
    }
}
