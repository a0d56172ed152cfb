//! Fuzz target: arbitrary bytes through the TFTP packet parsers and the read transfer state
//! machine. The input's first half is parsed as a request (negotiated against the default
//! limits); the rest is cut into client packets (a length byte, then that many bytes; length 0
//! means "the timeout fired") fed to a `ReadTransfer`. Nothing may panic; the machine must never
//! ask for a block outside the file, acknowledge more than the file, or move backwards.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pxe::tftp::packet::{parse_client_packet, parse_request};
use pxe::tftp::{Output, ReadTransfer, TftpOptions, negotiate};

fuzz_target!(|data: &[u8]| {
    let (head, mut rest) = data.split_at(data.len() / 2);
    let Some((&len_byte, tail)) = rest.split_first() else {
        return;
    };
    rest = tail;
    let Ok(request) = parse_request(head) else {
        return;
    };
    let limits = TftpOptions {
        max_retries: 3,
        ..TftpOptions::default()
    };
    let file_len = u64::from(len_byte) * 97;
    let params = negotiate(&request.options, &limits, file_len);
    assert!((8..=limits.block_size_limit).contains(&params.block_size));
    assert!((1..=limits.window_size_limit).contains(&params.window_size));
    let mut now = Instant::now();
    let (mut t, mut out) = ReadTransfer::start(&params, file_len, limits.max_retries, now);
    let mut base = t.first_unacked();
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        let (packet, tail) = tail.split_at(n);
        rest = tail;
        if let Output::SendBlocks(r) = &out {
            assert!(r.start >= 1 && r.start < r.end && r.end <= t.block_count() + 1, "{r:?}");
            assert!(r.end - r.start <= u64::from(params.window_size));
            for b in r.clone() {
                let (offset, len) = t.block_span(b);
                assert!(offset + len as u64 <= file_len);
            }
        }
        out = if n == 0 {
            now += Duration::from_secs(1) + params.timeout;
            t.on_timeout(now)
        } else {
            t.on_packet(parse_client_packet(packet), now)
        };
        assert!(t.first_unacked() >= base, "the window moved backwards");
        base = t.first_unacked();
        assert!(t.acked_bytes() <= file_len);
        if out == Output::Done {
            assert_eq!(t.acked_bytes(), file_len);
        }
    }
});
