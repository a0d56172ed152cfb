//! The ramdisk agent's TPM 2.0 host root of trust.
//!
//! The agent seals its host key (32 bytes) to the server's TPM: TPM2_CreatePrimary derives a
//! storage key in the owner hierarchy from a fixed template (the same TPM always derives the
//! same key, so nothing is stored in the TPM), TPM2_Create seals the secret as a KEYEDHASH
//! data object under it, and the resulting [`SealedBlob`] can only be loaded (TPM2_Load) and
//! unsealed (TPM2_Unseal) by the same TPM with the same owner seed. Every transient object is
//! flushed (TPM2_FlushContext) on every path.
//!
//! The agent is a static musl binary, so no TSS C library is used: the commands are
//! marshalled here. IO stance: `command`, `response`, `rc` and the blob format are pure (bytes
//! in, values out, never a panic on any input; fuzz target `tpm_response`); `device` is the
//! only IO (the kernel's `/dev/tpmrm0` or `/dev/tpm0`); [`Tpm`] runs the commands over any
//! [`Transport`] (tests use swtpm's socket).

mod blob;
pub mod command;
mod device;
mod error;
mod marshal;
pub mod rc;
pub mod response;
mod spec;
mod template;
mod tpm;

#[cfg(test)]
mod response_tests;

pub use blob::{MAGIC as BLOB_MAGIC, SealedBlob, VERSION as BLOB_VERSION};
pub use device::{DEFAULT_DEVICES, DeviceTransport, Transport};
pub use error::TpmError;
pub use tpm::{MAX_RANDOM, Tpm};
