//! Tests of the HTTP codec, mostly hostile responses. No IO.

use super::*;
use proptest::prelude::*;

fn ok(s: &str) -> Response {
    parse_response(s.as_bytes(), true).unwrap().unwrap()
}

fn err(s: &[u8]) -> HttpError {
    parse_response(s, true).unwrap_err()
}

#[test]
fn builds_the_request() {
    let r = post_json(
        "10.77.0.1:8443",
        "/v1/agent/hello",
        "lease-agent/0.1.0",
        b"{}",
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(r).unwrap(),
        "POST /v1/agent/hello HTTP/1.1\r\nHost: 10.77.0.1:8443\r\nUser-Agent: lease-agent/0.1.0\r\n\
         Content-Type: application/json\r\nAccept: application/json\r\nContent-Length: 2\r\n\
         Connection: close\r\n\r\n{}"
    );
    for (a, p) in [
        ("h\r\nX: y", "/"),
        ("h", "/a b"),
        ("h", "v1"),
        ("", "/"),
        ("h", "/\u{e9}"),
    ] {
        assert!(
            matches!(
                post_json(a, p, "ua", b""),
                Err(HttpError::BadRequestField { .. })
            ),
            "{a:?} {p:?}"
        );
    }
}

#[test]
fn parses_a_hyper_style_response() {
    let r = ok(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 13\r\n\
                date: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n{\"server\":1} ",
    );
    assert_eq!((r.status, r.reason.as_str()), (200, "OK"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, b"{\"server\":1} ");
    let r = ok("HTTP/1.0 204 No Content\r\n\r\n");
    assert_eq!((r.status, r.body.len()), (204, 0));
    let r = ok("HTTP/1.1 404\r\ncontent-length: 0\r\n\r\n");
    assert_eq!((r.status, r.reason.as_str()), (404, ""));
    let r = ok("HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\nX-Empty:\r\n\r\nhi");
    assert_eq!(r.header("x-empty"), Some(""));
}

#[test]
fn incomplete_input_asks_for_more_until_eof() {
    let full = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    for n in 0..full.len() {
        assert_eq!(parse_response(&full[..n], false), Ok(None), "prefix {n}");
        assert!(
            parse_response(&full[..n], true).is_err(),
            "prefix {n} at eof"
        );
    }
    assert_eq!(
        parse_response(&full[..], false).unwrap().unwrap().body,
        b"hello"
    );
    assert_eq!(
        err(&full[..40]),
        HttpError::TruncatedBody { have: 2, want: 5 }
    );
    assert_eq!(
        err(b"HTTP/1.1 200 OK\r\n"),
        HttpError::TruncatedHead { have: 17 }
    );
}

#[test]
fn bad_status_lines() {
    for line in [
        "HTTP/2 200 OK",
        "HTTP/1.1 20 OK",
        "HTTP/1.1 2000 OK",
        "HTTP/1.1 abc OK",
        "HTTP/1.1 600 Weird",
        "HTTP/1.1 099 Low",
        "HTTP/1.1 200OK",
        "http/1.1 200 OK",
        " HTTP/1.1 200 OK",
        "HTTP/1.1 200 O\u{7}K",
        "",
    ] {
        let resp = format!("{line}\r\ncontent-length: 0\r\n\r\n");
        assert!(
            matches!(err(resp.as_bytes()), HttpError::BadStatusLine(_)),
            "{line:?}"
        );
    }
    assert_eq!(
        err(b"HTTP/1.1 100 Continue\r\n\r\n"),
        HttpError::Interim(100)
    );
}

#[test]
fn bad_headers() {
    let cases: &[(&[u8], HttpError)] = &[
        (
            b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
            HttpError::BadHeader("NoColon".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\n: v\r\n\r\n",
            HttpError::BadHeader(": v".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\nBad Name: v\r\n\r\n",
            HttpError::BadHeader("Bad Name: v".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\n folded: v\r\n\r\n",
            HttpError::BadHeader(" folded: v".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\nA: \xff\r\n\r\n",
            HttpError::BadHeader("A: \u{fffd}".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\nA: b\nContent-Length: 0\r\n\r\n",
            HttpError::BadHeader("HTTP/1.1 200 OK\r\nA: b\nContent-Length: 0\r\n".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\n\r\n",
            HttpError::MissingContentLength(200),
        ),
        (
            b"HTTP/1.1 500 Oops\r\n\r\n",
            HttpError::MissingContentLength(500),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            HttpError::BadContentLength("-1".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx",
            HttpError::BadContentLength("+1".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\nx",
            HttpError::BadContentLength("1,1".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
            HttpError::BadContentLength("".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            HttpError::BadContentLength("99999999999999999999".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
            HttpError::ConflictingContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 65537\r\n\r\n",
            HttpError::BodyTooLarge { len: 65537 },
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            HttpError::TransferEncoding("chunked".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy",
            HttpError::TrailingBytes { extra: 1 },
        ),
    ];
    for (input, want) in cases {
        assert_eq!(&err(input), want, "{}", String::from_utf8_lossy(input));
    }
}

#[test]
fn size_limits() {
    let many: String = (0..=MAX_HEADERS).map(|i| format!("h{i}: v\r\n")).collect();
    let resp = format!("HTTP/1.1 200 OK\r\n{many}content-length: 0\r\n\r\n");
    assert_eq!(err(resp.as_bytes()), HttpError::TooManyHeaders);
    let long = format!("HTTP/1.1 200 OK\r\nx: {}\r\n\r\n", "a".repeat(MAX_HEAD));
    assert_eq!(
        parse_response(long.as_bytes(), false),
        Err(HttpError::HeadTooLarge)
    );
    let body = "b".repeat(MAX_BODY);
    let resp = format!("HTTP/1.1 200 OK\r\ncontent-length: {MAX_BODY}\r\n\r\n{body}");
    assert_eq!(ok(&resp).body.len(), MAX_BODY);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), eof: bool) {
        let _ = parse_response(&bytes, eof);
    }

    #[test]
    fn header_soup_never_panics(head in "(HTTP/1\\.[01] [0-9]{3}( [ -~]{0,10})?\r\n)?([A-Za-z-]{0,12}:[ -~]{0,12}\r\n){0,6}\r\n[ -~]{0,20}", eof: bool) {
        let _ = parse_response(head.as_bytes(), eof);
    }

    #[test]
    fn well_formed_responses_parse(status in 200u16..600, body in proptest::collection::vec(any::<u8>(), 0..300), split in 0usize..400) {
        prop_assume!(!matches!(status, 204 | 304));
        let mut resp = format!("HTTP/1.1 {status} Reason\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        resp.extend_from_slice(&body);
        let split = split.min(resp.len());
        // Any proper prefix is "need more"; the whole response parses.
        match parse_response(&resp[..split], false).unwrap() {
            None => prop_assert!(split < resp.len()),
            Some(r) => prop_assert_eq!(r.status, status),
        }
        let r = parse_response(&resp, true).unwrap().unwrap();
        prop_assert_eq!(r.body, body);
    }
}
