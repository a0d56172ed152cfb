//! Fuzz target: the IKEv2 decoder and the IKE_SA_INIT initiator (agent-ike) on arbitrary bytes.
//! Nothing may panic. A message that decodes is a fixed point of encode -> decode; its SK
//! payload, if any, is opened with a fixed key (it must fail or yield a payload list). The
//! bytes are also fed to a started initiator, raw and with the initiator SPI patched in so the
//! header checks pass and the payload checks are reached.

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agent_ike::{
    Action, DhGroup, InitiatorConfig, RetransmitPolicy, SaInitiator, SeededEntropy, SkKey, decode,
    encode_message, sk,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode(data) {
        let again = encode_message(&m.header, &m.payloads).expect("a decoded message re-encodes");
        if m.sk.is_none() {
            assert_eq!(decode(&again).expect("re-encoded message decodes").payloads, m.payloads);
        }
        if m.sk.is_some() {
            let _ = sk::open(data, &m, &SkKey { key: [7; 32], salt: [1; 4] });
        }
    }
    let cfg = InitiatorConfig {
        groups: vec![DhGroup::Curve25519, DhGroup::Ecp256],
        local: SocketAddr::from(([10, 0, 0, 1], 500)),
        remote: SocketAddr::from(([10, 0, 0, 2], 500)),
        nonce_len: 32,
        retransmit: RetransmitPolicy::default(),
    };
    let now = Instant::now();
    let mut init = SaInitiator::new(cfg, &mut SeededEntropy::new(3)).expect("initiator");
    init.start(now).expect("start");
    let _ = init.on_message(data, now);
    if data.len() >= 8 {
        let mut patched = data.to_vec();
        patched[..8].copy_from_slice(&init.spi_i().to_be_bytes());
        if let Action::Send { request, .. } = init.on_message(&patched, now) {
            assert!(decode(&request).is_ok(), "the initiator built an undecodable request");
        }
        let _ = init.on_message(&patched, now + Duration::from_secs(1));
    }
    let _ = init.next_timeout(now + Duration::from_secs(10));
});
