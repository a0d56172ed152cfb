//! The gateway's services end to end in one process, over real TLS on loopback addresses
//! (127.77.0.2 plays the data-centre address, 127.99.0.0/24 the tunnel network, so a client
//! bound to its tunnel address is "in the tunnel"): registration, key release and refusals,
//! the image store with Range, the watcher removing a released lease's peers, and a restart
//! that restores the peers. The Lease Manager and WireGuard are the crate's shared fakes
//! (`FakeLm`, `FakeWg`); the CA, certificates and CRLs are real (lm-pki).

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::world::{
    AGENT_ADDR, GW_TUNNEL, IMAGE, VM1, key_body, lease_id, make_gateway, reg_body, view, world,
};
use common::{agent, call, code};
use lm_api::LeaseState;
use po_api::{ErrorCode, KeyAnswer, PeerRegistered, WgPublicKey};
use procurement_organizer::gateway::run;
use procurement_organizer::gateway::source::FakeWg;

/// Every log line of this test binary, for the checks that keys never reach the log.
static LOG: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogWriter;
impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .try_init();
    });
}

fn log_text() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_key_then_store_then_release() {
    capture_logs();
    let w = world("51").await;
    let a = agent(&w.ca, VM1, 0x51);
    let tls = Some((&w.gw_cert, &a));

    // Registration over mutual TLS on the data-centre address.
    let (st, _, body) = call(
        w.register,
        None,
        tls,
        "POST",
        "/v1/peers",
        Some(reg_body(1)),
        None,
    )
    .await
    .unwrap();
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let r: PeerRegistered = po_api::parse_body(&body).unwrap();
    assert_eq!(r.tunnel_address, AGENT_ADDR);
    assert_eq!(r.gateway_tunnel_address, GW_TUNNEL);
    assert_eq!((r.lease, r.server.as_str()), (lease_id(), "vm1"));
    assert_eq!(r.key_service_url, "https://127.99.0.1:7444");
    assert_eq!(r.image_signing_key, po_api::ImageSigningKey([0x5e; 32]));
    assert_eq!(
        w.wg.peers.lock().unwrap().get(&WgPublicKey([1; 32])),
        Some(&AGENT_ADDR)
    );
    // The same key again changes nothing; a new key replaces the old one at the same address.
    let (st, _, _) = call(
        w.register,
        None,
        tls,
        "POST",
        "/v1/peers",
        Some(reg_body(1)),
        None,
    )
    .await
    .unwrap();
    assert_eq!(st, 200);
    let (st, _, body) = call(
        w.register,
        None,
        tls,
        "POST",
        "/v1/peers",
        Some(reg_body(2)),
        None,
    )
    .await
    .unwrap();
    assert_eq!(st, 200);
    assert_eq!(
        po_api::parse_body::<PeerRegistered>(&body)
            .unwrap()
            .tunnel_address,
        AGENT_ADDR
    );
    {
        let peers = w.wg.peers.lock().unwrap();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers.get(&WgPublicKey([2; 32])), Some(&AGENT_ADDR));
    }

    // The key, from the agent's tunnel address only.
    let (st, headers, body) = call(
        w.keys,
        Some(AGENT_ADDR),
        tls,
        "POST",
        "/v1/keys",
        Some(key_body(IMAGE, 1)),
        None,
    )
    .await
    .unwrap();
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers.get("cache-control").unwrap(), "no-store");
    let k: KeyAnswer = po_api::parse_body(&body).unwrap();
    assert_eq!(*k.key.decode(), [0x42; 32]);
    let key_b64 = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";
    let refused = |st: u16, body: &Bytes, want: ErrorCode| {
        assert_eq!(code(body), want, "{st} {}", String::from_utf8_lossy(body));
        assert_eq!(st, want.http_status());
    };
    let (st, _, body) = call(
        w.keys,
        Some(Ipv4Addr::new(127, 99, 0, 50)),
        tls,
        "POST",
        "/v1/keys",
        Some(key_body(IMAGE, 1)),
        None,
    )
    .await
    .unwrap();
    refused(st, &body, ErrorCode::NotFromTunnel);
    let other = "ff".repeat(16);
    let (st, _, body) = call(
        w.keys,
        Some(AGENT_ADDR),
        tls,
        "POST",
        "/v1/keys",
        Some(key_body(&other, 1)),
        None,
    )
    .await
    .unwrap();
    refused(st, &body, ErrorCode::WrongImage);
    let (st, _, body) = call(
        w.keys,
        Some(AGENT_ADDR),
        tls,
        "POST",
        "/v1/keys",
        Some(key_body(IMAGE, 2)),
        None,
    )
    .await
    .unwrap();
    refused(st, &body, ErrorCode::NoSuchKey);

    // The image store: whole file, a resumed range, a bad range, and only for the lease's
    // registered tunnel address.
    let path = format!("/v1/images/{IMAGE}.chunks");
    let (st, _, body) = call(w.store, Some(AGENT_ADDR), None, "GET", &path, None, None)
        .await
        .unwrap();
    assert_eq!((st, body.len()), (200, 100_000));
    let (st, h, body) = call(
        w.store,
        Some(AGENT_ADDR),
        None,
        "GET",
        &path,
        None,
        Some("bytes=99990-"),
    )
    .await
    .unwrap();
    assert_eq!((st, body.len()), (206, 10));
    assert_eq!(h.get("content-range").unwrap(), "bytes 99990-99999/100000");
    assert_eq!(body[0], (99_990 % 251) as u8);
    let (st, h, _) = call(
        w.store,
        Some(AGENT_ADDR),
        None,
        "GET",
        &path,
        None,
        Some("bytes=100000-"),
    )
    .await
    .unwrap();
    assert_eq!(st, 416);
    assert_eq!(h.get("content-range").unwrap(), "bytes */100000");
    let (st, _, _) = call(
        w.store,
        Some(Ipv4Addr::new(127, 99, 0, 50)),
        None,
        "GET",
        &path,
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(st, 403, "an address that is no registered peer");
    for bad in [
        format!("/v1/images/../{IMAGE}.chunks"),
        format!("/v1/images/{IMAGE}.key"),
        "/v1/images/..%2fstate%2fkeys%2fsigning.pem".to_string(),
        format!("/v1/images/{IMAGE}.chunks?x=1"),
    ] {
        let (st, _, _) = call(w.store, Some(AGENT_ADDR), None, "GET", &bad, None, None)
            .await
            .unwrap();
        assert_eq!(st, 404, "{bad}");
    }

    // Release: the LM says releasing; keys stop at once, the watcher removes the peer.
    w.lm.put(view(LeaseState::Releasing, "51"));
    let (st, _, body) = call(
        w.keys,
        Some(AGENT_ADDR),
        tls,
        "POST",
        "/v1/keys",
        Some(key_body(IMAGE, 1)),
        None,
    )
    .await
    .unwrap();
    refused(st, &body, ErrorCode::LeaseNotLive);
    assert_eq!(w.gw.sweep().await.unwrap(), 1);
    assert!(w.wg.peers.lock().unwrap().is_empty());
    assert!(w.gw.peer_table().await.peers().is_empty());
    let (st, _, body) = call(
        w.register,
        None,
        tls,
        "POST",
        "/v1/peers",
        Some(reg_body(3)),
        None,
    )
    .await
    .unwrap();
    refused(st, &body, ErrorCode::LeaseNotLive);

    // Every release and refusal is in the log with lease, server, image and reason; the key
    // never is.
    let log = log_text();
    if std::env::var_os("SHOW_LOG").is_some() {
        eprintln!("{log}");
    }
    assert!(log.contains("image key released"), "{log}");
    for reason in [
        "not-from-tunnel",
        "wrong-image",
        "no-such-key",
        "lease-not-live",
    ] {
        assert!(
            log.contains(&format!("reason={reason}"))
                || log.contains(&format!("reason=\"{reason}\"")),
            "{reason}: {log}"
        );
    }
    assert!(
        log.contains("lease=l-00000000000000aa") && log.contains("server=vm1"),
        "{log}"
    );
    assert!(log.contains(&format!("image={IMAGE}")), "{log}");
    assert!(log.contains("peer removed"), "{log}");
    assert!(
        !log.contains(key_b64) && !log.contains("4242424242"),
        "the key reached the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_survive_a_restart() {
    let w = world("51").await;
    let a = agent(&w.ca, VM1, 0x51);
    let (st, _, _) = call(
        w.register,
        None,
        Some((&w.gw_cert, &a)),
        "POST",
        "/v1/peers",
        Some(reg_body(9)),
        None,
    )
    .await
    .unwrap();
    assert_eq!(st, 200);
    // A new gateway on the same state folder: same certificate (the agents' pin), and the
    // peer is back in WireGuard with its address.
    let wg2 = Arc::new(FakeWg::default());
    let (gw2, cert2, _) = make_gateway(&w.state, &w.cfg, &w.ca, &w.lm, &wg2);
    assert_eq!(cert2, w.gw_cert);
    assert_eq!(
        wg2.peers.lock().unwrap().get(&WgPublicKey([9; 32])),
        Some(&AGENT_ADDR)
    );
    assert_eq!(
        gw2.peer_table()
            .await
            .address_of(lease_id(), &"vm1".parse().unwrap()),
        Some(AGENT_ADDR)
    );
    // The watcher loop removes the peers of an ended lease within a poll.
    w.lm.put(view(LeaseState::Ended, "51"));
    let h = tokio::spawn(run::watch(gw2.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !wg2.peers.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher did not remove the peer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.abort();
}
