//! Fuzz target: what the agent reads from the tenant gateway's side, as arbitrary bytes: the
//! registration answer (JSON, checked against an enrollment by `tunnel_plan::check`) and the
//! image store's response head (`http::parse_head`, then `transfer::check_chunks_answer`).
//!
//! Checks that nothing panics and that whatever is accepted keeps the agent's promises: the
//! tunnel address and every service stay inside the tunnel, no route covers the LM or the
//! gateway's endpoint, and an accepted store answer is exactly the rest of the signed file.
#![no_main]

use std::net::Ipv4Addr;

use agent_core::http::parse_head;
use agent_core::transfer::check_chunks_answer;
use agent_core::tunnel_plan::check;
use libfuzzer_sys::fuzz_target;
use lm_api::{GatewaySpec, LeaseId, Tunnel};

fuzz_target!(|data: &[u8]| {
    let (first, second) = data.split_at(data.len() / 2);
    let spec = GatewaySpec {
        register_url: "https://10.63.0.2:7443".into(),
        tls_cert_sha256: "ab".repeat(32),
        wg_endpoint: None,
        wg_public_key: None,
    };
    let lm = Ipv4Addr::new(10, 63, 0, 1);
    let tunnel = if data.len() % 2 == 1 {
        Tunnel::Ipsec
    } else {
        Tunnel::Wireguard
    };
    if let Ok(reg) = po_api::parse_body::<po_api::PeerRegistered>(first)
        && let Ok(plan) = check(&spec, LeaseId::from_random(0xaa), "vm1", tunnel, Some(lm), &reg)
    {
        assert_eq!(plan.tunnel, tunnel);
        assert_eq!(plan.gateway_key.is_some(), tunnel == Tunnel::Wireguard);
        assert!(plan.network.contains(plan.address));
        assert_ne!(plan.address, plan.gateway_address);
        for r in &plan.routes {
            assert!(!r.contains(lm));
            assert!(!r.contains(*plan.gateway_endpoint.ip()));
        }
        for s in [plan.store, plan.keys] {
            assert!(plan.routes.iter().any(|r| r.contains(*s.addr.ip())));
        }
    }
    if let Ok(Some(head)) = parse_head(second, true) {
        let start = u64::from(first.first().copied().unwrap_or(0));
        let total = start + u64::from(first.get(1).copied().unwrap_or(0));
        if let Ok(n) = check_chunks_answer(
            head.status,
            head.header("content-range"),
            head.content_length,
            start,
            total,
        ) {
            assert_eq!(start + n, total);
        }
    }
});
