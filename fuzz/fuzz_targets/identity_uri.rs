//! Fuzz target: arbitrary strings as a caller identity URI (`lm_pki::Identity::from_uri`).
//!
//! Checks that parsing never panics and is exact: an accepted URI renders back byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match lm_pki::Identity::from_uri(s) {
        Ok(id) => {
            assert_eq!(id.uri(), s);
            let _ = (id.role(), id.to_string(), id.common_name());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
