//! Fuzz target: an arbitrary `Range` header value and file length through
//! `pxe::http_boot::parse_range`. It must never panic, a partial range must lie within the
//! file, and the body length must never exceed the file length.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pxe::http_boot::{ByteRange, parse_range};

fuzz_target!(|data: &[u8]| {
    let Some((len_bytes, header)) = data.split_first_chunk::<8>() else {
        return;
    };
    // Half the inputs use a small length so that ranges often land inside the file.
    let raw = u64::from_le_bytes(*len_bytes);
    let len = if raw & 1 == 0 {
        raw >> 1
    } else {
        (raw >> 1) % 4096
    };
    let header = String::from_utf8_lossy(header);
    let got = parse_range(&header, len);
    match got {
        ByteRange::Partial {
            start,
            end_inclusive,
        } => {
            assert!(start <= end_inclusive, "{header:?} len {len}: {got:?}");
            assert!(end_inclusive < len, "{header:?} len {len}: {got:?}");
        }
        ByteRange::Whole | ByteRange::Unsatisfiable => {}
    }
    assert!(got.body_len(len) <= len, "{header:?} len {len}: {got:?}");
});
