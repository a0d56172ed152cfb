//! Interop, a responder that authenticates with Ed25519 (RFC 8420) against strongSwan's charon
//! (kernel-libipsec) in namespaces (root; skipped with a reason otherwise): charon's
//! certificate and its CA are Ed25519 (our P-256 agent certificate is signed by that CA too);
//! we announce hash Identity, charon signs AUTH with Ed25519, we verify it and the chain, and
//! TCP runs through the tunnel. Refused: the same names under a CA with another Ed25519 key,
//! and another Ed25519 certificate than the pinned one.

#[allow(dead_code)]
#[path = "../../ike/tests/common/ca.rs"]
mod ca;
mod common;
#[allow(dead_code)]
#[path = "common/life.rs"]
mod life;
#[allow(dead_code)]
#[path = "../../ike/tests/common/strongswan.rs"]
mod strongswan;

use std::time::Duration;

use agent_esp::LifetimeLimits;
use agent_ike::PeerTrust;
use agent_ike::cert::sha256;
use agent_ipsec::{LifeConfig, LinkState};
use ca::Ca;
use life::{fast_life, lab_with, paced_tcp_both_ways, try_up, up};
use strongswan::Lab;

const CA_NAME: &str = "tenant Ed25519 CA";

/// charon with an Ed25519 certificate from an Ed25519 CA; (lab, CA, charon's cert DER).
fn ed_lab() -> Option<(Lab, Ca, Vec<u8>)> {
    let ca = Ca::new_alg(CA_NAME, &rcgen::PKCS_ED25519);
    let (fw_der, fw_pem, _, fw_key) =
        ca.issue_alg("tenant firewall", "fw.tenant.test", &rcgen::PKCS_ED25519);
    let (lab, ca) = lab_with("", "", ca, &fw_pem, &fw_key)?;
    Some((lab, ca, fw_der))
}

fn quiet() -> LifeConfig {
    LifeConfig {
        dpd_idle: Duration::from_secs(30),
        ..fast_life()
    }
}

#[test]
fn charon_with_an_ed25519_certificate_is_accepted() {
    let Some((lab, ca, _)) = ed_lab() else {
        return;
    };
    let tunnel = up(&lab, &ca, LifetimeLimits::default(), quiet());
    paced_tcp_both_ways(&lab, 20, Duration::from_millis(10));
    let log = lab.log();
    for l in log
        .lines()
        .filter(|l| l.contains("authentication of") || l.contains("HASH_ALG"))
    {
        eprintln!("charon: {l}");
    }
    assert!(
        log.contains("(myself) with ED25519 successful"),
        "charon did not sign with Ed25519"
    );
    assert!(
        log.contains("with ECDSA_WITH_SHA256_DER successful"),
        "charon did not verify our P-256 signature"
    );
    assert_eq!(tunnel.state(), LinkState::Up);
    drop(tunnel);
    drop(lab);
}

#[test]
fn an_ed25519_certificate_under_another_ca_key_is_refused() {
    let Some((lab, ca, _)) = ed_lab() else {
        return;
    };
    // The same CA name with another Ed25519 key: charon's certificate does not verify.
    let impostor = Ca::new_alg(CA_NAME, &rcgen::PKCS_ED25519);
    let trust = PeerTrust::Ca(impostor.cert_der.clone());
    let err = try_up(&lab, &ca, trust, LifetimeLimits::default(), quiet())
        .expect_err("a certificate signed by another key was accepted");
    let msg = format!("{err}");
    eprintln!("refused: {msg}");
    assert!(msg.contains("signature"), "unexpected refusal: {msg}");
    drop(lab);
}

#[test]
fn another_ed25519_certificate_than_the_pinned_one_is_refused() {
    let Some((lab, ca, fw_der)) = ed_lab() else {
        return;
    };
    // A certificate with the same names and another Ed25519 key is pinned.
    let (other, ..) = ca.issue_alg("tenant firewall", "fw.tenant.test", &rcgen::PKCS_ED25519);
    assert_ne!(other, fw_der);
    let trust = PeerTrust::Pin(sha256(&other));
    let err = try_up(&lab, &ca, trust, LifetimeLimits::default(), quiet())
        .expect_err("a certificate other than the pinned one was accepted");
    let msg = format!("{err}");
    eprintln!("refused: {msg}");
    assert!(msg.contains("pinned"), "unexpected refusal: {msg}");
    // The pinned one itself is accepted.
    let ok = try_up(
        &lab,
        &ca,
        PeerTrust::Pin(sha256(&fw_der)),
        LifetimeLimits::default(),
        quiet(),
    );
    assert!(ok.is_ok(), "the pinned Ed25519 certificate was refused");
    drop(ok);
    drop(lab);
}
