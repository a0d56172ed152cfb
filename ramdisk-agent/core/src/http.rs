//! A minimal HTTP/1.1 client codec: one `POST` with a JSON body, one response, `Connection: close`.
//!
//! Pure: builds request bytes and parses response bytes; the `/init` shell moves them over TLS.
//! The parser is strict because the only server is the Lease Manager (hyper): CRLF line ends,
//! `HTTP/1.0` or `HTTP/1.1`, a three-digit status 200-599 (interim 1xx answers are refused: the
//! agent never sends `Expect`), at most [`MAX_HEADERS`] headers in at most [`MAX_HEAD`] bytes, no
//! `Transfer-Encoding` (hyper sends `Content-Length` for fixed bodies), a `Content-Length` on
//! every response except 204/304, a body of at most [`MAX_BODY`] bytes, and no bytes after it.

/// Largest accepted response body.
pub const MAX_BODY: usize = 64 * 1024;
/// Largest accepted status line + headers, including the blank line.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers accepted.
pub const MAX_HEADERS: usize = 64;

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// Header names in lowercase, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why bytes are not an acceptable response (or a request cannot be built).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("response head is longer than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("connection closed after {have} bytes, inside the response head")]
    TruncatedHead { have: usize },
    #[error("bad status line {0:?}")]
    BadStatusLine(String),
    #[error("interim status {0} is not expected (no Expect header was sent)")]
    Interim(u16),
    #[error("bad header line {0:?}")]
    BadHeader(String),
    #[error("more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    #[error("status {0} response has no Content-Length")]
    MissingContentLength(u16),
    #[error("bad Content-Length {0:?}")]
    BadContentLength(String),
    #[error("Content-Length given twice with different values")]
    ConflictingContentLength,
    #[error("Transfer-Encoding {0:?} is not supported")]
    TransferEncoding(String),
    #[error("body of {len} bytes is larger than the {MAX_BODY} accepted")]
    BodyTooLarge { len: usize },
    #[error("connection closed after {have} of {want} body bytes")]
    TruncatedBody { have: usize, want: usize },
    #[error("{extra} bytes after the declared body")]
    TrailingBytes { extra: usize },
    #[error("request {what} {value:?} has a character not allowed there")]
    BadRequestField { what: &'static str, value: String },
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Builds `POST <path> HTTP/1.1` with a JSON body. `authority` is `host:port`.
pub fn post_json(
    authority: &str,
    path: &str,
    user_agent: &str,
    body: &[u8],
) -> Result<Vec<u8>, HttpError> {
    let clean = |what: &'static str, v: &str| {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(HttpError::BadRequestField {
                what,
                value: v.chars().take(64).collect(),
            });
        }
        Ok(())
    };
    clean("authority", authority)?;
    clean("path", path)?;
    clean("user agent", user_agent)?;
    if !path.starts_with('/') {
        return Err(HttpError::BadRequestField {
            what: "path",
            value: path.chars().take(64).collect(),
        });
    }
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {user_agent}\r\n\
         Content-Type: application/json\r\nAccept: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    Ok(out)
}

/// Builds `GET <path> HTTP/1.1` with an optional `Range` value (`bytes=N-`). `authority` is
/// `host:port`.
pub fn get(
    authority: &str,
    path: &str,
    user_agent: &str,
    range: Option<&str>,
) -> Result<Vec<u8>, HttpError> {
    for (what, v) in [
        ("authority", authority),
        ("path", path),
        ("user agent", user_agent),
        ("range", range.unwrap_or("-")),
    ] {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(HttpError::BadRequestField {
                what,
                value: v.chars().take(64).collect(),
            });
        }
    }
    if !path.starts_with('/') {
        return Err(HttpError::BadRequestField {
            what: "path",
            value: path.chars().take(64).collect(),
        });
    }
    let range = range.map_or(String::new(), |r| format!("Range: {r}\r\n"));
    Ok(format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {user_agent}\r\n\
         {range}Connection: close\r\n\r\n"
    )
    .into_bytes())
}

fn cut(b: &[u8]) -> String {
    String::from_utf8_lossy(b.get(..80).unwrap_or(b)).into_owned()
}

fn parse_status_line(line: &[u8]) -> Result<(u16, String), HttpError> {
    let bad = || HttpError::BadStatusLine(cut(line));
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))
        .ok_or_else(bad)?;
    let code = rest.get(..3).ok_or_else(bad)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let status = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let reason = match rest.get(3..) {
        None | Some([]) => "",
        Some([b' ', reason @ ..])
            if reason
                .iter()
                .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)) =>
        {
            std::str::from_utf8(reason).map_err(|_| bad())?
        }
        Some(_) => return Err(bad()),
    };
    if !(100..=599).contains(&status) {
        return Err(bad());
    }
    if status < 200 {
        return Err(HttpError::Interim(status));
    }
    Ok((status, reason.to_string()))
}

fn parse_header(line: &[u8]) -> Result<(String, String), HttpError> {
    let bad = || HttpError::BadHeader(cut(line));
    let colon = line.iter().position(|&b| b == b':').ok_or_else(bad)?;
    let name = line.get(..colon).ok_or_else(bad)?;
    let value = line.get(colon + 1..).ok_or_else(bad)?;
    if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
        return Err(bad());
    }
    if !value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return Err(bad());
    }
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    let value = String::from_utf8_lossy(value)
        .trim_matches([' ', '\t'])
        .to_string();
    Ok((name, value))
}

fn content_length(headers: &[(String, String)]) -> Result<Option<u64>, HttpError> {
    let mut found: Option<u64> = None;
    for (_, v) in headers.iter().filter(|(n, _)| n == "content-length") {
        if v.is_empty() || v.len() > 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HttpError::BadContentLength(v.chars().take(32).collect()));
        }
        let n: u64 = v
            .parse()
            .map_err(|_| HttpError::BadContentLength(v.clone()))?;
        match found {
            Some(prev) if prev != n => return Err(HttpError::ConflictingContentLength),
            _ => found = Some(n),
        }
    }
    Ok(found)
}

/// A parsed status line and headers, without the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub reason: String,
    /// Header names in lowercase, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    /// Bytes of the head, blank line included: the body starts there.
    pub len: usize,
    /// The body's length from `Content-Length` (0 for 204/304).
    pub content_length: u64,
}

impl Head {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the response head at the start of `buf`, with the same rules as [`parse_response`]
/// except the body's size (any `Content-Length` is accepted: streaming readers bound it
/// themselves). `Ok(None)` means "need more bytes"; `eof` turns that into a truncation error.
pub fn parse_head(buf: &[u8], eof: bool) -> Result<Option<Head>, HttpError> {
    let window = buf.get(..MAX_HEAD).unwrap_or(buf);
    let Some(head_len) = window
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
    else {
        if buf.len() >= MAX_HEAD {
            return Err(HttpError::HeadTooLarge);
        }
        return if eof {
            Err(HttpError::TruncatedHead { have: buf.len() })
        } else {
            Ok(None)
        };
    };
    // The head up to and including the CRLF of its last line (the blank line's CRLF dropped).
    let head = buf.get(..head_len.saturating_sub(2)).unwrap_or_default();
    // A bare LF is not a CRLF line end: such a line fails `strip_suffix` and is refused.
    let mut lines = head
        .split_inclusive(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r\n"));
    let status_line = lines
        .next()
        .flatten()
        .ok_or_else(|| HttpError::BadStatusLine(cut(head)))?;
    let (status, reason) = parse_status_line(status_line)?;
    let mut headers = Vec::new();
    for line in lines {
        let line = line.ok_or_else(|| HttpError::BadHeader(cut(head)))?;
        if headers.len() == MAX_HEADERS {
            return Err(HttpError::TooManyHeaders);
        }
        headers.push(parse_header(line)?);
    }
    if let Some((_, te)) = headers.iter().find(|(n, _)| n == "transfer-encoding") {
        return Err(HttpError::TransferEncoding(te.chars().take(32).collect()));
    }
    let content_length = match (content_length(&headers)?, status) {
        (_, 204 | 304) => 0,
        (Some(n), _) => n,
        (None, s) => return Err(HttpError::MissingContentLength(s)),
    };
    Ok(Some(Head {
        status,
        reason,
        headers,
        len: head_len,
        content_length,
    }))
}

/// Parses the response in `buf`. `Ok(None)` means "need more bytes"; `eof` says the peer has
/// closed, turning "need more" into a truncation error.
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>, HttpError> {
    let Some(head) = parse_head(buf, eof)? else {
        return Ok(None);
    };
    let want = usize::try_from(head.content_length).unwrap_or(usize::MAX);
    if want > MAX_BODY {
        return Err(HttpError::BodyTooLarge { len: want });
    }
    let body = buf.get(head.len..).unwrap_or_default();
    if body.len() > want {
        return Err(HttpError::TrailingBytes {
            extra: body.len() - want,
        });
    }
    if body.len() < want {
        return if eof {
            Err(HttpError::TruncatedBody {
                have: body.len(),
                want,
            })
        } else {
            Ok(None)
        };
    }
    Ok(Some(Response {
        status: head.status,
        reason: head.reason,
        headers: head.headers,
        body: body.to_vec(),
    }))
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
