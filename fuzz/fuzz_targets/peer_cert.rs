//! Fuzz target: arbitrary bytes as a TLS client certificate (`lm_pki::peer_cert`, DER).
//!
//! Checks that reading the identity never panics and that an accepted certificate's identity
//! survives a render-and-parse round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match lm_pki::peer_cert(data) {
        Ok(peer) => {
            let again =
                lm_pki::Identity::from_uri(&peer.identity.uri()).expect("rendered identity parses");
            assert_eq!(again, peer.identity);
            assert!(peer.serial_hex.len() <= 40);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
