//! Every refusal of the registration service over real TLS on loopback (see
//! `common::world`): foreign CA, a tenant's certificate, another server, another lease, a
//! stale certificate of the right server, hostile bodies, a revoked certificate on the LM's
//! CRL, a lease released by the organizer, and the LM unreachable (fail closed).

mod common;

use std::time::{Duration, SystemTime};

use common::world::{VM1, lease_id, reg_body, reg_body_root, world, world_with};
use common::{Agent, agent, call, code, crl, tenant_cert};
use lm_pki::Authority;
use po_api::ErrorCode;
use procurement_organizer::record::RecordFile;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_at_registration() {
    let w = world("51").await;
    let good = agent(&w.ca, VM1, 0x51);
    let post = |a: &Agent, body: Vec<u8>| {
        let (addr, cert) = (w.register, w.gw_cert.clone());
        let chain = a.chain.clone();
        let key = a.key.clone_key();
        async move {
            let a = Agent {
                chain,
                key,
                serial: String::new(),
            };
            call(
                addr,
                None,
                Some((&cert, &a)),
                "POST",
                "/v1/peers",
                Some(body),
                None,
            )
            .await
        }
    };
    // A foreign CA: the handshake itself fails.
    let foreign_ca = Authority::generate(SystemTime::now(), 1u64.into())
        .unwrap()
        .0;
    let foreign = agent(&foreign_ca, VM1, 0x51);
    assert!(post(&foreign, reg_body(1)).await.is_err());
    // A tenant certificate names no agent.
    let (st, _, body) = post(&tenant_cert(&w.ca), reg_body(1)).await.unwrap();
    assert_eq!((st, code(&body)), (403, ErrorCode::NotAnAgent));
    // A certificate for another server, another lease, a stale certificate of vm1.
    let (st, _, body) = post(
        &agent(
            &w.ca,
            "urn:lease-appliance:agent:l-00000000000000aa:vm9",
            0x52,
        ),
        reg_body(1),
    )
    .await
    .unwrap();
    assert_eq!((st, code(&body)), (403, ErrorCode::WrongServer));
    let (st, _, body) = post(
        &agent(
            &w.ca,
            "urn:lease-appliance:agent:l-00000000000000bb:vm1",
            0x53,
        ),
        reg_body(1),
    )
    .await
    .unwrap();
    assert_eq!((st, code(&body)), (403, ErrorCode::NotApproved));
    let (st, _, body) = post(&agent(&w.ca, VM1, 0x54), reg_body(1)).await.unwrap();
    assert_eq!(
        (st, code(&body)),
        (403, ErrorCode::Revoked),
        "not the LM's current certificate"
    );
    // Hostile bodies.
    for body in [
        br#"{"wg_public_key":"AAAA"}"#.to_vec(),
        br#"{"wg_public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","x":1}"#.to_vec(),
        vec![b' '; po_api::MAX_BODY + 10],
        b"".to_vec(),
    ] {
        let (st, _, b) = post(&good, body).await.unwrap();
        assert_eq!((st, code(&b)), (400, ErrorCode::BadRequest));
    }
    // Revoked on the LM's CRL (refreshed once older than crl_refresh_secs = 1).
    *w.lm.crl.lock().unwrap() = Some(crl(&w.ca, &[&good.serial]));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (st, _, body) = post(&good, reg_body(1)).await.unwrap();
    assert_eq!((st, code(&body)), (403, ErrorCode::Revoked));
    // The organizer released the lease: refused even while the LM still says active.
    *w.lm.crl.lock().unwrap() = Some(crl(&w.ca, &[]));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (st, _, _) = post(&good, reg_body(1)).await.unwrap();
    assert_eq!(st, 200);
    RecordFile::new(&w.state)
        .update(|r| r.mark_released(lease_id(), 1))
        .unwrap();
    let (st, _, body) = post(&good, reg_body(1)).await.unwrap();
    assert_eq!((st, code(&body)), (403, ErrorCode::NotApproved));
    assert_eq!(w.gw.sweep().await.unwrap(), 1, "the watcher removes it too");
    // The LM unreachable: no decision (fail closed), the answer says try again.
    RecordFile::new(&w.state)
        .update(|r| r.leases.get_mut(&lease_id()).map(|l| l.released_ms = None))
        .unwrap();
    *w.lm.down.lock().unwrap() = Some("connection refused".into());
    let (st, _, body) = post(&good, reg_body(1)).await.unwrap();
    assert_eq!((st, code(&body)), (503, ErrorCode::Unavailable));
}

/// `require_tpm`: a server stating the weak root, or none, is refused with `weak-host-root`
/// and gets no peer; one stating a TPM is admitted. Without the policy, weak is admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_requiring_a_tpm_refuses_weak_host_roots() {
    use po_api::HostRoot;
    let w = world_with("55", |t| {
        t.replace("# require_tpm = false", "require_tpm = true")
    })
    .await;
    let good = agent(&w.ca, VM1, 0x55);
    let post = |body: Vec<u8>| {
        call(
            w.register,
            None,
            Some((&w.gw_cert, &good)),
            "POST",
            "/v1/peers",
            Some(body),
            None,
        )
    };
    for root in [None, Some(HostRoot::Weak)] {
        let (st, _, body) = post(reg_body_root(1, root)).await.unwrap();
        assert_eq!(
            (st, code(&body)),
            (403, ErrorCode::WeakHostRoot),
            "{root:?}"
        );
        assert!(String::from_utf8_lossy(&body).contains("require_tpm"));
    }
    assert!(w.wg.peers.lock().unwrap().is_empty(), "no peer was added");
    let (st, _, _) = post(reg_body_root(1, Some(HostRoot::Tpm))).await.unwrap();
    assert_eq!(st, 200);
    assert_eq!(w.wg.peers.lock().unwrap().len(), 1);

    let w = world("56").await;
    let good = agent(&w.ca, VM1, 0x56);
    let (st, _, _) = call(
        w.register,
        None,
        Some((&w.gw_cert, &good)),
        "POST",
        "/v1/peers",
        Some(reg_body_root(2, Some(HostRoot::Weak))),
        None,
    )
    .await
    .unwrap();
    assert_eq!(st, 200, "without the policy the weak root is admitted");
}
