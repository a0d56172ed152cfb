//! Newline-delimited JSON from a streamed body: chunks in, whole lines out. Pure.
//!
//! An HTTP chunk boundary falls anywhere (inside a line, inside a UTF-8 sequence), so bytes are
//! kept until their newline arrives. A line longer than the bound is an error, not an
//! allocation without end.

use bytes::{Buf, BytesMut};

/// Longest line accepted (an audit entry is a few hundred bytes).
pub const MAX_LINE: usize = 1 << 20;

/// A line of the stream exceeded [`MAX_LINE`], or the stream ended inside a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("a line of the event stream is longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("the event stream ended in the middle of a line ({0} bytes without a newline)")]
    Truncated(usize),
}

/// Splits a byte stream into lines (without their `\n`; a `\r` before it is dropped too).
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: BytesMut,
    /// Bytes of `buf` already searched for a newline.
    searched: usize,
}

impl LineSplitter {
    /// Adds a chunk.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next whole line, if one is complete. Empty lines are skipped.
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, LineError> {
        loop {
            let Some(i) = self.buf[self.searched..].iter().position(|&b| b == b'\n') else {
                self.searched = self.buf.len();
                if self.buf.len() > MAX_LINE {
                    return Err(LineError::TooLong);
                }
                return Ok(None);
            };
            let end = self.searched + i;
            if end > MAX_LINE {
                return Err(LineError::TooLong);
            }
            let mut line = self.buf.split_to(end).to_vec();
            self.buf.advance(1);
            self.searched = 0;
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if !line.is_empty() {
                return Ok(Some(line));
            }
        }
    }

    /// At the end of the stream: an error if bytes without a newline are left.
    pub fn finish(&self) -> Result<(), LineError> {
        if self.buf.iter().all(u8::is_ascii_whitespace) {
            Ok(())
        } else {
            Err(LineError::Truncated(self.buf.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(s: &mut LineSplitter) -> Vec<String> {
        let mut v = Vec::new();
        while let Some(l) = s.next_line().unwrap() {
            v.push(String::from_utf8(l).unwrap());
        }
        v
    }

    #[test]
    fn lines_across_chunk_boundaries() {
        let text = "{\"seq\":1,\"detail\":\"h\u{e9}\"}\n\n{\"seq\":2}\r\n{\"seq\":3}\n";
        // Every way of cutting the stream in two gives the same lines.
        for cut in 0..=text.len() {
            let mut s = LineSplitter::default();
            s.push(&text.as_bytes()[..cut]);
            let mut got = drain(&mut s);
            s.push(&text.as_bytes()[cut..]);
            got.extend(drain(&mut s));
            s.finish().unwrap();
            assert_eq!(
                got,
                [
                    "{\"seq\":1,\"detail\":\"h\u{e9}\"}",
                    "{\"seq\":2}",
                    "{\"seq\":3}"
                ],
                "cut at {cut}"
            );
        }
        // Byte by byte.
        let mut s = LineSplitter::default();
        let mut got = Vec::new();
        for b in text.as_bytes() {
            s.push(&[*b]);
            got.extend(drain(&mut s));
        }
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn bounds_and_truncation() {
        let mut s = LineSplitter::default();
        s.push(&vec![b'x'; MAX_LINE + 1]);
        assert_eq!(s.next_line(), Err(LineError::TooLong));
        let mut s = LineSplitter::default();
        s.push(b"{\"seq\":1}\n{\"se");
        assert_eq!(drain(&mut s), ["{\"seq\":1}"]);
        assert_eq!(s.finish(), Err(LineError::Truncated(4)));
    }
}
