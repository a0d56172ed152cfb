//! Big-endian TPM marshalling: a writer for commands and a bounds-checked reader for
//! responses. Pure; the reader never panics and never allocates from a length field.

use zeroize::Zeroizing;

use crate::error::TpmError;

/// Builds one command. The buffer is zeroized on drop (a command may carry the secret) and is
/// allocated once with room for the whole command, so no copy of it is left behind by a
/// reallocation.
pub(crate) struct Writer {
    buf: Zeroizing<Vec<u8>>,
}

impl Writer {
    /// Starts a command: tag, a size placeholder, the command code.
    pub(crate) fn command(tag: u16, code: u32, capacity: usize) -> Self {
        let mut w = Writer {
            buf: Zeroizing::new(Vec::with_capacity(capacity)),
        };
        w.u16(tag);
        w.u32(0);
        w.u32(code);
        w
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }

    pub(crate) fn put(&mut self, b: &[u8]) {
        debug_assert!(
            self.buf.len() + b.len() <= self.buf.capacity(),
            "command capacity too small"
        );
        self.buf.extend_from_slice(b);
    }

    /// A TPM2B: u16 size, then the bytes. The caller bounds `b` to u16::MAX.
    pub(crate) fn tpm2b(&mut self, b: &[u8]) -> Result<(), TpmError> {
        let n = u16::try_from(b.len()).map_err(|_| {
            TpmError::bad_blob(format!("a {}-byte field does not fit a TPM2B", b.len()))
        })?;
        self.u16(n);
        self.put(b);
        Ok(())
    }

    /// A sized structure: a u16 size placeholder, `f` writes the body, the size is patched.
    pub(crate) fn sized(&mut self, f: impl FnOnce(&mut Writer)) {
        let at = self.buf.len();
        self.u16(0);
        f(self);
        let n = self.buf.len() - at - 2;
        let n = u16::try_from(n).unwrap_or(u16::MAX);
        self.buf[at..at + 2].copy_from_slice(&n.to_be_bytes());
    }

    /// The one password session with the empty password (TPM_RS_PW), as an authorization area.
    pub(crate) fn password_auth(&mut self) {
        self.u32(9); // authorizationSize: handle 4 + nonce 2 + attributes 1 + hmac 2
        self.u32(crate::spec::RS_PW);
        self.u16(0); // nonceCaller: empty
        self.u8(0); // sessionAttributes
        self.u16(0); // hmac: the empty password
    }

    /// Patches the command size and returns the bytes.
    pub(crate) fn finish(mut self) -> Zeroizing<Vec<u8>> {
        let n = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[2..6].copy_from_slice(&n.to_be_bytes());
        self.buf
    }
}

/// Reads a response or a blob. Every read is bounds-checked; a short input is an error naming
/// what was being read.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// What is being read, for error messages ("TPM2_Load response").
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn bytes(&mut self, n: usize, field: &str) -> Result<&'a [u8], TpmError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                TpmError::malformed(format!(
                    "{}: {field} needs {n} bytes at offset {}, only {} left",
                    self.what,
                    self.pos,
                    self.remaining()
                ))
            })?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    pub(crate) fn u8(&mut self, field: &str) -> Result<u8, TpmError> {
        Ok(self.bytes(1, field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &str) -> Result<u16, TpmError> {
        let b = self.bytes(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self, field: &str) -> Result<u32, TpmError> {
        let b = self.bytes(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A TPM2B: u16 size, then that many bytes (checked against what is left).
    pub(crate) fn tpm2b(&mut self, field: &str) -> Result<&'a [u8], TpmError> {
        let n = self.u16(field)?;
        self.bytes(usize::from(n), field)
    }

    /// Nothing may follow.
    pub(crate) fn finish(&self) -> Result<(), TpmError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(TpmError::malformed(format!(
                "{}: {} unexpected bytes after the end",
                self.what,
                self.remaining()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_rejects_short_and_huge_lengths() {
        let mut r = Reader::new(&[0xFF, 0xFF, 1, 2], "test");
        let e = r.tpm2b("field").unwrap_err().to_string();
        assert!(e.contains("field needs 65535 bytes"), "{e}");
        let mut r = Reader::new(&[1], "test");
        assert!(r.u32("x").is_err());
        let mut r = Reader::new(&[], "test");
        assert!(r.u8("x").is_err());
        assert!(r.bytes(usize::MAX, "x").is_err());
    }

    #[test]
    fn writer_sizes() {
        let mut w = Writer::command(0x8001, 0x17B, 32);
        w.sized(|w| w.u32(7));
        let b = w.finish();
        assert_eq!(
            &b[..],
            &[0x80, 1, 0, 0, 0, 16, 0, 0, 1, 0x7B, 0, 4, 0, 0, 0, 7]
        );
    }
}
