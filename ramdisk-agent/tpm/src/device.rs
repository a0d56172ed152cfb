//! The thin IO part: the kernel's TPM character device. One `write` of a whole command, one
//! `read` of the whole response, as the Linux TPM driver requires.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::TpmError;
use crate::spec::MAX_RESPONSE;

/// Sends one command and returns the TPM's whole response.
pub trait Transport {
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>, TpmError>;
}

/// The kernel resource manager (`/dev/tpmrm0`: transient objects are flushed when the file is
/// closed, and several users can share the TPM), else the raw device (`/dev/tpm0`).
pub const DEFAULT_DEVICES: [&str; 2] = ["/dev/tpmrm0", "/dev/tpm0"];

/// A TPM character device.
#[derive(Debug)]
pub struct DeviceTransport {
    file: File,
    path: PathBuf,
}

impl DeviceTransport {
    /// Opens `/dev/tpmrm0`, else `/dev/tpm0`. Neither present: `TpmError::NoDevice`. One
    /// present but not openable (permissions, busy): `TpmError::Io` naming it.
    pub fn open_default() -> Result<Self, TpmError> {
        for path in DEFAULT_DEVICES {
            match Self::open(Path::new(path)) {
                Err(TpmError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
                other => return other,
            }
        }
        Err(TpmError::NoDevice {
            tried: DEFAULT_DEVICES.join(" and "),
        })
    }

    /// Opens the TPM device at `path` for reading and writing.
    pub fn open(path: &Path) -> Result<Self, TpmError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| TpmError::Io {
                context: format!("opening {}", path.display()),
                source,
            })?;
        Ok(DeviceTransport {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The device's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Transport for DeviceTransport {
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>, TpmError> {
        let io = |op: &str, source| TpmError::Io {
            context: format!("{op} {}", self.path.display()),
            source,
        };
        let written = loop {
            match self.file.write(command) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                r => break r.map_err(|e| io("writing a command to", e))?,
            }
        };
        if written != command.len() {
            return Err(TpmError::Io {
                context: format!(
                    "writing a command to {}: {written} of {} bytes taken",
                    self.path.display(),
                    command.len()
                ),
                source: std::io::Error::from(ErrorKind::WriteZero),
            });
        }
        let mut buf = vec![0u8; MAX_RESPONSE];
        let n = loop {
            match self.file.read(&mut buf) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                r => break r.map_err(|e| io("reading a response from", e))?,
            }
        };
        buf.truncate(n);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_missing_device_is_io_not_found() {
        let e = DeviceTransport::open(Path::new("/nonexistent/tpm")).unwrap_err();
        match e {
            TpmError::Io { context, source } => {
                assert!(context.contains("/nonexistent/tpm"));
                assert_eq!(source.kind(), ErrorKind::NotFound);
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_plain_file_round_trips_as_a_device() {
        // A regular file accepts the write and reads back from the current offset (the end):
        // an empty response, which the parsers then refuse.
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut t = DeviceTransport::open(f.path()).unwrap();
        assert_eq!(t.path(), f.path());
        let resp = t.transact(&[0x80, 0x01]).unwrap();
        assert!(resp.is_empty());
        assert!(crate::response::flush_context(&resp).is_err());
    }
}
