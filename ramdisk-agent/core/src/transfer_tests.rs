use super::*;

#[test]
fn content_ranges_parse_strictly() {
    assert_eq!(
        parse_content_range("bytes 0-99/100").unwrap(),
        ContentRange {
            start: 0,
            end: 99,
            total: 100
        }
    );
    assert_eq!(parse_content_range("bytes */42").unwrap().total, 42);
    for bad in [
        "",
        "bytes",
        "bytes 0-99",
        "bytes 0-100/100",
        "bytes 5-4/100",
        "bytes -1-5/100",
        "bytes +0-5/100",
        "bytes 0-5/",
        "bytes 0-5/1e3",
        "items 0-5/100",
        "bytes 0 - 5/100",
        "bytes 0-5/100000000000000000000000",
        "bytes 0-5/100/7",
    ] {
        assert!(
            matches!(
                parse_content_range(bad),
                Err(StoreAnswerError::BadContentRange(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn a_resume_answer_must_be_exactly_the_rest_of_the_file() {
    assert_eq!(
        check_chunks_answer(206, Some("bytes 40-99/100"), 60, 40, 100),
        Ok(60)
    );
    assert_eq!(check_chunks_answer(200, None, 100, 0, 100), Ok(100));
    // A store whose file is shorter or longer than the manifest says.
    assert_eq!(
        check_chunks_answer(206, Some("bytes 40-89/90"), 50, 40, 100),
        Err(StoreAnswerError::Length {
            have: 90,
            want: 100
        })
    );
    let long = check_chunks_answer(200, None, 101, 0, 100).unwrap_err();
    assert!(long.to_string().contains("trailing data"), "{long}");
    let short = check_chunks_answer(416, Some("bytes */30"), 0, 40, 100).unwrap_err();
    assert!(short.to_string().contains("truncated"), "{short}");
    // Another range than asked, a partial range, a wrong length, a full answer to a resume.
    assert!(matches!(
        check_chunks_answer(206, Some("bytes 0-99/100"), 100, 40, 100),
        Err(StoreAnswerError::WrongRange { .. })
    ));
    assert!(matches!(
        check_chunks_answer(206, Some("bytes 40-59/100"), 20, 40, 100),
        Err(StoreAnswerError::WrongRange { .. })
    ));
    assert!(matches!(
        check_chunks_answer(206, Some("bytes 40-99/100"), 61, 40, 100),
        Err(StoreAnswerError::LengthMismatch { .. })
    ));
    assert_eq!(
        check_chunks_answer(200, None, 100, 40, 100),
        Err(StoreAnswerError::FullAnswerToResume(40))
    );
    assert_eq!(
        check_chunks_answer(206, None, 60, 40, 100),
        Err(StoreAnswerError::NoContentRange)
    );
    assert_eq!(
        check_chunks_answer(403, None, 0, 0, 100),
        Err(StoreAnswerError::Refused(403))
    );
    let e = check_chunks_answer(503, None, 0, 0, 100).unwrap_err();
    assert!(e.is_transient());
    assert!(!StoreAnswerError::Refused(404).is_transient());
    assert_eq!(range_value(1_048_592), "bytes=1048592-");
}

#[test]
fn progress_resumes_from_the_first_unverified_chunk() {
    // Three chunks of 1,000 bytes + 16 tag bytes, the last one shorter.
    let mut p = Progress::new(3, 1016, 1016 * 2 + 516);
    assert_eq!(p.resume_offset(), 0);
    assert_eq!(p.next_chunk_len(), 1016);
    p.verified = 2;
    assert_eq!(p.resume_offset(), 2032);
    assert_eq!(p.next_chunk_len(), 516);
    assert!(!p.is_done());
    p.verified = 3;
    assert!(p.is_done());
    assert_eq!(p.next_chunk_len(), 0);
    for _ in 0..MAX_RESUMES {
        assert!(p.on_break());
    }
    assert!(!p.on_break(), "the resume budget ends");
}

proptest::proptest! {
    #[test]
    fn hostile_headers_never_panic(value in "\\PC{0,64}", status in 0u16..700, len in 0u64..u64::MAX, start in 0u64..1000, total in 0u64..1000) {
        let _ = parse_content_range(&value);
        let _ = check_chunks_answer(status, Some(&value), len, start, total);
        if let Ok(n) = check_chunks_answer(status, Some(&value), len, start, total) {
            proptest::prop_assert_eq!(start + n, total);
        }
    }
}
