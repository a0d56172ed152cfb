//! The image transfer's decisions: which byte range to ask the image store for, whether its
//! answer is the range asked for, and what a broken transfer does next.
//!
//! Pure. The IO shell asks for `<id>.chunks` from the first chunk not yet verified
//! ([`range_value`]), checks the answer's status and headers with [`check_chunks_answer`], and
//! reads whole chunks, each authenticated before it counts. A broken connection resumes from
//! the first unverified chunk, at most [`MAX_RESUMES`] times; a store whose file has another
//! length than the signed manifest says is refused at once (truncated or trailing data), as is
//! any chunk that fails authentication (tampered, reordered, or another image's).

/// Largest manifest accepted from the store (its per-chunk tags make it grow with the image:
/// 16 bytes per chunk, at most 2^18 chunks).
pub const MAX_MANIFEST: u64 = 8 << 20;
/// Broken connections survived in one transfer phase before it fails (and the bring-up
/// retries it with backoff, still resuming).
pub const MAX_RESUMES: u32 = 20;

/// A `Content-Range: bytes START-END/TOTAL` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub start: u64,
    pub end: u64,
    pub total: u64,
}

/// Why an answer of the image store is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreAnswerError {
    #[error("Content-Range {0:?} is not bytes START-END/TOTAL")]
    BadContentRange(String),
    #[error("a 206 answer without Content-Range")]
    NoContentRange,
    #[error(
        "the store sent bytes {got_start}-{got_end} when bytes from {want_start} were asked for"
    )]
    WrongRange {
        got_start: u64,
        got_end: u64,
        want_start: u64,
    },
    #[error(
        "the store's chunks file is {have} bytes but the signed manifest says {want}: the image is {}",
        if have < want { "truncated" } else { "followed by trailing data" }
    )]
    Length { have: u64, want: u64 },
    #[error("Content-Length {length} does not match the range {start}-{end}")]
    LengthMismatch { length: u64, start: u64, end: u64 },
    #[error("a full answer (200) to a resume from byte {0}")]
    FullAnswerToResume(u64),
    #[error("the store refused with status {0}")]
    Refused(u16),
    #[error("the store failed with status {0} (worth retrying)")]
    ServerError(u16),
    #[error("unexpected status {0}")]
    Status(u16),
}

impl StoreAnswerError {
    /// Whether asking again may help (a server error), as opposed to a store that serves the
    /// wrong thing.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::ServerError(_))
    }
}

/// The `Range` header value for a resume at byte `start`.
pub fn range_value(start: u64) -> String {
    format!("bytes={start}-")
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `bytes START-END/TOTAL` (and `bytes */TOTAL`, the 416 form, as `start > end`:
/// `start = total`, `end = 0`). Strict: decimal digits only, `START <= END < TOTAL`.
pub fn parse_content_range(value: &str) -> Result<ContentRange, StoreAnswerError> {
    let bad = || StoreAnswerError::BadContentRange(value.chars().take(64).collect());
    let rest = value.strip_prefix("bytes ").ok_or_else(bad)?;
    let (range, total) = rest.split_once('/').ok_or_else(bad)?;
    let total = number(total).ok_or_else(bad)?;
    if range == "*" {
        return Ok(ContentRange {
            start: total,
            end: 0,
            total,
        });
    }
    let (start, end) = range.split_once('-').ok_or_else(bad)?;
    let (start, end) = (number(start).ok_or_else(bad)?, number(end).ok_or_else(bad)?);
    if start > end || end >= total {
        return Err(bad());
    }
    Ok(ContentRange { start, end, total })
}

/// Checks the store's answer to `GET <id>.chunks` with `Range: bytes=<want_start>-` against
/// the manifest's chunks file length `want_total`. Returns the number of body bytes to read
/// (from `want_start` to the end of the file).
pub fn check_chunks_answer(
    status: u16,
    content_range: Option<&str>,
    content_length: u64,
    want_start: u64,
    want_total: u64,
) -> Result<u64, StoreAnswerError> {
    match status {
        206 => {
            let r = parse_content_range(content_range.ok_or(StoreAnswerError::NoContentRange)?)?;
            if r.total != want_total {
                return Err(StoreAnswerError::Length {
                    have: r.total,
                    want: want_total,
                });
            }
            if r.start != want_start || r.end + 1 != r.total {
                return Err(StoreAnswerError::WrongRange {
                    got_start: r.start,
                    got_end: r.end,
                    want_start,
                });
            }
            let len = r.end - r.start + 1;
            if content_length != len {
                return Err(StoreAnswerError::LengthMismatch {
                    length: content_length,
                    start: r.start,
                    end: r.end,
                });
            }
            Ok(len)
        }
        200 if want_start != 0 => Err(StoreAnswerError::FullAnswerToResume(want_start)),
        200 if content_length != want_total => Err(StoreAnswerError::Length {
            have: content_length,
            want: want_total,
        }),
        200 => Ok(content_length),
        416 => match content_range.map(parse_content_range) {
            Some(Ok(r)) => Err(StoreAnswerError::Length {
                have: r.total,
                want: want_total,
            }),
            _ => Err(StoreAnswerError::Status(416)),
        },
        400..=499 => Err(StoreAnswerError::Refused(status)),
        500..=599 => Err(StoreAnswerError::ServerError(status)),
        other => Err(StoreAnswerError::Status(other)),
    }
}

/// Where a transfer stands: chunks verified so far of how many, bytes per chunk on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub verified: u64,
    pub chunks: u64,
    /// Chunk size plus the tag: chunk `i` starts at `i * stride` in the chunks file.
    pub stride: u64,
    pub file_len: u64,
    pub resumes: u32,
}

impl Progress {
    pub fn new(chunks: u64, stride: u64, file_len: u64) -> Self {
        Self {
            verified: 0,
            chunks,
            stride,
            file_len,
            resumes: 0,
        }
    }

    /// The byte to resume from: the first unverified chunk.
    pub fn resume_offset(&self) -> u64 {
        self.verified.saturating_mul(self.stride).min(self.file_len)
    }

    /// The wire length of chunk `verified` (the last one is shorter).
    pub fn next_chunk_len(&self) -> u64 {
        let start = self.resume_offset();
        self.stride.min(self.file_len.saturating_sub(start))
    }

    pub fn is_done(&self) -> bool {
        self.verified >= self.chunks
    }

    /// A connection broke: whether to resume (true) or give the phase up.
    pub fn on_break(&mut self) -> bool {
        self.resumes = self.resumes.saturating_add(1);
        self.resumes <= MAX_RESUMES
    }
}

#[cfg(test)]
#[path = "transfer_tests.rs"]
mod tests;
