//! Fuzz target: the IKEv2 decoder and the IKE_SA_INIT initiator (agent-ike) on arbitrary bytes.
//! Nothing may panic. A message that decodes is a fixed point of encode -> decode; its SK
//! payload, if any, is opened with a fixed key (it must fail or yield a payload list). The
//! bytes are also fed to a started initiator, raw and with the initiator SPI patched in so the
//! header checks pass and the payload checks are reached. Then to an established IKE SA
//! (`IkeSa`: INFORMATIONAL, CREATE_CHILD_SA): raw with its SPIs patched in, and, when the bytes
//! decode, their payloads sealed with its SK_er under their own header (exchange, flags,
//! message id) so the authenticated request/response logic is reached; it is ticked after.
//! The established SA is run twice: with our child SA rekey outstanding, and with our IKE SA
//! rekey outstanding (so answers and collisions of both reach their code).

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agent_ike::{
    Action, ChildIds, DhGroup, Header, IkeKeys, IkeSa, IkeSaConfig, InitiatorConfig,
    RetransmitPolicy, SaInitiator, SeededEntropy, SkKey, TrafficSelector, decode, encode_message,
    sk,
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
    established(data, now, false);
    established(data, now, true);
});

fn established(data: &[u8], now: Instant, ike_rekey: bool) {
    const SPI_I: u64 = 0x0102_0304_0506_0708;
    const SPI_R: u64 = 0x1112_1314_1516_1718;
    let keys = IkeKeys {
        sk_d: [5; 32],
        sk_ei: SkKey { key: [1; 32], salt: [2; 4] },
        sk_er: SkKey { key: [3; 32], salt: [4; 4] },
        sk_pi: [6; 32],
        sk_pr: [7; 32],
    };
    let child = ChildIds {
        spi_in: 0x1000,
        spi_out: 0x2000,
        local_ts: vec![TrafficSelector::v4([10, 30, 0, 5], [10, 30, 0, 5])],
        remote_ts: vec![TrafficSelector::v4([10, 20, 0, 0], [10, 20, 255, 255])],
    };
    let cfg = IkeSaConfig {
        dpd_idle: Duration::from_secs(10),
        retransmit: RetransmitPolicy::default(),
        nonce_len: 32,
    };
    let mut sa = IkeSa::new(SPI_I, SPI_R, keys, 2, child, cfg, now);
    let mut rng = SeededEntropy::new(9);
    if ike_rekey {
        sa = sa.with_ike_rekey(Duration::from_secs(1), DhGroup::Curve25519);
        sa.start_ike_rekey(&mut rng, now);
    } else {
        sa.start_rekey(&mut rng);
    }
    let _ = sa.tick(now);
    let _ = sa.on_message(data, now, &mut rng);
    if data.len() >= 16 {
        let mut patched = data.to_vec();
        patched[..8].copy_from_slice(&SPI_I.to_be_bytes());
        patched[8..16].copy_from_slice(&SPI_R.to_be_bytes());
        let _ = sa.on_message(&patched, now, &mut rng);
    }
    if let Ok(m) = decode(data) {
        let h = Header { spi_i: SPI_I, spi_r: SPI_R, ..m.header };
        if let Ok(sealed) = sk::seal(&h, &m.payloads, &SkKey { key: [3; 32], salt: [4; 4] }, 1) {
            if let Ok(events) = sa.on_message(&sealed, now, &mut rng) {
                for e in events {
                    if let agent_ike::SaEvent::Send(b) = e {
                        assert!(decode(&b).is_ok(), "the IKE SA built an undecodable message");
                    }
                }
            }
            let _ = sa.on_message(&sealed, now, &mut rng);
        }
    }
    let _ = sa.tick(now + Duration::from_secs(30));
}
