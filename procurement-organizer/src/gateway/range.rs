//! What the image store answers to a `Range` header (RFC 9110 section 14): the parsing is the
//! project's one Range parser (`pxe::http_boot::parse_range`, fuzzed there); this turns it into
//! a status, the bytes to send and the `Content-Range` value. Pure.

use pxe::http_boot::{ByteRange, parse_range};

/// The answer's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeReply {
    /// 200, 206 or 416.
    pub status: u16,
    /// First byte sent.
    pub offset: u64,
    /// Bytes sent.
    pub len: u64,
    /// `Content-Range` (206: `bytes a-b/len`; 416: `bytes */len`).
    pub content_range: Option<String>,
}

/// The reply to `header` (absent: the whole file) for a file of `file_len` bytes.
pub fn reply(header: Option<&str>, file_len: u64) -> RangeReply {
    let whole = RangeReply {
        status: 200,
        offset: 0,
        len: file_len,
        content_range: None,
    };
    let Some(h) = header else { return whole };
    match parse_range(h, file_len) {
        ByteRange::Whole => whole,
        ByteRange::Partial {
            start,
            end_inclusive,
        } => RangeReply {
            status: 206,
            offset: start,
            len: end_inclusive - start + 1,
            content_range: Some(format!("bytes {start}-{end_inclusive}/{file_len}")),
        },
        ByteRange::Unsatisfiable => RangeReply {
            status: 416,
            offset: 0,
            len: 0,
            content_range: Some(format!("bytes */{file_len}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_whole_and_bad_ranges() {
        assert_eq!(reply(None, 10).status, 200);
        let r = reply(Some("bytes=4-"), 10);
        assert_eq!((r.status, r.offset, r.len), (206, 4, 6));
        assert_eq!(r.content_range.as_deref(), Some("bytes 4-9/10"));
        let r = reply(Some("bytes=10-"), 10);
        assert_eq!((r.status, r.len), (416, 0));
        assert_eq!(r.content_range.as_deref(), Some("bytes */10"));
        assert_eq!(reply(Some("bytes=5-2"), 10).status, 200);
        assert_eq!(reply(Some("bytes=0-1,4-5"), 10).status, 200);
        let r = reply(Some("bytes=-3"), 10);
        assert_eq!((r.status, r.offset, r.len), (206, 7, 3));
    }
}
