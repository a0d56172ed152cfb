//! Unit tests of `log_capture`: line splitting and cleaning of real SeaBIOS/iPXE console bytes,
//! and marker waits (history, later lines, unterminated lines, timeout, exit). No IO.

use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;

use super::*;

#[test]
fn cleans_seabios_and_ipxe_console_bytes() {
    let mut s = LineSplitter::default();
    let raw = b"\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n\
        \x1b[0;1miPXE 1.0.0+git-20190125.36a4c85-5.1\x1b[0m -- Open Source \x1b[0;36mhttp\r\n\
        Press Ctrl-B\x08 \x08\x08 \x08net0: 52:54:00:12:34:56\r\n";
    assert_eq!(
        s.feed(raw),
        vec![
            "SeaBIOS (version 1.16.2-debian-1.16.2-1)",
            "iPXE 1.0.0+git-20190125.36a4c85-5.1 -- Open Source http",
            "Press Ctrl-B  net0: 52:54:00:12:34:56",
        ]
    );
    assert_eq!(s.finish(), None);
}

#[test]
fn lines_survive_chunk_boundaries_and_bad_utf8() {
    let mut s = LineSplitter::default();
    assert!(s.feed(b"ab").is_empty());
    assert_eq!(s.partial(), "ab");
    assert_eq!(s.feed(b"c\nd\xff"), vec!["abc"]);
    assert_eq!(s.finish().as_deref(), Some("d\u{fffd}"));
    assert_eq!(s.finish(), None);
    // an escape sequence cut at the end of the input is dropped, not panicked on
    assert_eq!(clean_line(b"x\x1b["), "x");
    assert_eq!(clean_line(b"\x1b"), "");
}

#[test]
fn overlong_lines_are_cut() {
    let mut s = LineSplitter::default();
    let lines = s.feed(&vec![b'a'; MAX_LINE_BYTES * 2 + 10]);
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l.len() == MAX_LINE_BYTES));
    assert_eq!(s.finish().map(|l| l.len()), Some(10));
}

fn book() -> Arc<LogBook> {
    Arc::new(LogBook::new("t", Instant::now(), 2))
}

#[test]
fn finds_marker_in_history_and_respects_from() {
    let b = book();
    b.push(Stream::Stdout, "booting".into());
    b.push(Stream::Stderr, "READY one".into());
    b.push(Stream::Stdout, "READY two".into());
    let hit = b.wait_for(0, "READY", Duration::from_millis(10)).unwrap();
    assert_eq!(
        (hit.seq, hit.stream, hit.text.as_str()),
        (1, Stream::Stderr, "READY one")
    );
    let hit = b.wait_for(2, "READY", Duration::from_millis(10)).unwrap();
    assert_eq!(hit.text, "READY two");
    assert!(matches!(
        b.wait_for(3, "READY", Duration::from_millis(10)),
        Err(WaitError::Timeout { .. })
    ));
}

#[test]
fn wakes_as_soon_as_the_marker_arrives() {
    let b = book();
    let writer = {
        let b = b.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            b.push(Stream::Stdout, "noise".into());
            std::thread::sleep(Duration::from_millis(50));
            b.push(Stream::Stdout, "the MARK is here".into());
        })
    };
    let t = Instant::now();
    let hit = b.wait_for(0, "MARK", Duration::from_secs(10)).unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(hit.seq, 1);
    writer.join().unwrap();
}

#[test]
fn sees_markers_in_unterminated_lines() {
    let b = book();
    b.set_partial(
        Stream::Stdout,
        "Press Ctrl-B for the iPXE command line...".into(),
    );
    let hit = b
        .wait_for(0, "iPXE command line", Duration::from_millis(10))
        .unwrap();
    assert_eq!(hit.seq, 0);
    b.push(
        Stream::Stdout,
        "Press Ctrl-B for the iPXE command line... done".into(),
    );
    assert!(b.tail(5).contains("done"));
}

#[test]
fn timeout_and_exit_are_told_apart() {
    let b = book();
    b.push(Stream::Stdout, "last words".into());
    let t = Instant::now();
    match b.wait_for(0, "never", Duration::from_millis(100)) {
        Err(WaitError::Timeout { waited, tail, .. }) => {
            assert!(waited >= Duration::from_millis(100));
            assert!(tail.contains("last words"));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(t.elapsed() >= Duration::from_millis(100));
    b.record_exit(|| ExitStatus::from_raw(3 << 8));
    b.stream_closed();
    // one stream still open: the wait goes on until the timeout
    assert!(matches!(
        b.wait_for(0, "never", Duration::from_millis(20)),
        Err(WaitError::Timeout { .. })
    ));
    b.stream_closed();
    match b.wait_for(0, "never", Duration::from_secs(10)) {
        Err(WaitError::Exited { status, .. }) => assert_eq!(status.code(), Some(3)),
        other => panic!("expected an exit, got {other:?}"),
    }
    assert!(!b.if_unreaped(|| panic!("must not signal a reaped process")));
}

#[test]
fn memory_is_bounded_and_sequence_keeps_counting() {
    let b = book();
    for i in 0..MAX_LINES + 5 {
        b.push(Stream::Stdout, format!("line {i}"));
    }
    let kept = b.lines_from(0);
    assert_eq!(kept.len(), MAX_LINES);
    assert_eq!(kept[0].seq, 5);
    assert_eq!(b.next_seq(), (MAX_LINES + 5) as u64);
}
