//! The API's rules, through the real router (TLS is tested in `tls_server`): the OpenAPI
//! document matches the routes, roles are enforced on every route, tenants are isolated,
//! bodies are checked, and every enrollment refusal is refused and audited.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use lm_api::{
    AddServer, AuditEntry, BootId, CredentialBundle, EnrollRequest, EnrollResponse, LeaseId,
    MacAddr, Name,
};
use lm_pki::{Identity, PeerCert};
use tower::ServiceExt;

use super::*;
use crate::clock::ManualClock;
use crate::fsm::Input;
use crate::power::RecordingPower;
use crate::store::Store;
use crate::tls_server::Caller;
use pxe::{BootDirectory, Gate};

#[path = "agent_phase_tests.rs"]
mod agent_phases;

struct Fixture {
    _dir: tempfile::TempDir,
    api: Arc<Api>,
    clock: Arc<ManualClock>,
    router: Router,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn fixture(servers: u8) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let clock = Arc::new(ManualClock::new(now_ms()));
    let inventory = Arc::new(Inventory::load(store, clock.clone()).unwrap());
    let (ca, _) = Ca::load_or_create(&dir.path().join("ca"), SystemTime::now(), 1).unwrap();
    for i in 0..servers {
        inventory
            .add(
                "test",
                AddServer {
                    name: format!("s{i:02}"),
                    mac: MacAddr([0x52, 0x54, 0, 0, 0, i + 1]),
                    reserved_ip: None,
                    wol_password: None,
                },
            )
            .unwrap();
    }
    let api = Arc::new(Api {
        inventory,
        power: Arc::new(RecordingPower::default()),
        wake: crate::wake::WakePolicy::default(),
        ca: Arc::new(ca),
        settings: Settings {
            api_url: "https://10.77.0.1:8443".into(),
            heartbeat_secs: 5,
            limits: Limits::default(),
            agent_cert_max_s: 7 * 86_400,
            tenant_cert_days: 365,
        },
    });
    let router = router(api.clone());
    Fixture {
        _dir: dir,
        api,
        clock,
        router,
    }
}

#[derive(Clone)]
enum As {
    Nobody,
    Local,
    Cert(Identity, &'static str),
}

fn tenant(n: &str) -> As {
    As::Cert(Identity::Tenant(n.parse().unwrap()), "")
}

impl Fixture {
    async fn call(&self, who: &As, method: Method, path: &str, body: &str) -> (StatusCode, String) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        match who {
            As::Nobody => {
                req.extensions_mut().insert(Caller::Anonymous);
            }
            As::Local => {
                req.extensions_mut().insert(LocalOperator);
            }
            As::Cert(identity, serial) => {
                let serial = if serial.is_empty() {
                    self.api
                        .inventory
                        .with_ledger(|l| match identity {
                            Identity::Tenant(n) => l.tenants.get(n).map(|t| t.cert_serial.clone()),
                            _ => None,
                        })
                        .unwrap_or_else(|| "77".into())
                } else {
                    serial.to_string()
                };
                req.extensions_mut().insert(Caller::Cert(PeerCert {
                    identity: identity.clone(),
                    serial_hex: serial,
                    not_after_unix: i64::MAX,
                }));
            }
        }
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn add_tenant(&self, name: &str) -> CredentialBundle {
        let (s, b) = self
            .call(
                &As::Local,
                Method::POST,
                "/v1/tenants",
                &format!(r#"{{"name":"{name}"}}"#),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        serde_json::from_str(&b).unwrap()
    }

    async fn lease(&self, who: &As, count: u32) -> (StatusCode, String) {
        self.call(
            who,
            Method::POST,
            "/v1/leases",
            &format!(r#"{{"count":{count},"duration_s":3600}}"#),
        )
        .await
    }

    fn audit(&self) -> Vec<AuditEntry> {
        self.api.inventory.store().audit(1, 10_000).unwrap()
    }
}

#[test]
fn openapi_document_matches_the_routes() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../../docs/api/openapi.json")).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let roles: BTreeSet<String> = op["x-roles"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} has no x-roles"))
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .collect();
            documented.insert((method.to_uppercase(), path.clone(), roles));
        }
    }
    let routed: BTreeSet<_> = ROUTES
        .iter()
        .map(|r| {
            let roles = r
                .who
                .iter()
                .map(|w| format!("{w:?}").to_lowercase())
                .collect();
            (r.method.to_string(), r.path.to_string(), roles)
        })
        .collect();
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes not documented: {missing:?}\ndocumented but not routed: {extra:?}"
    );
}

fn concrete(path: &str) -> String {
    path.replace("{key}", "s00")
        .replace("{id}", "l-0000000000000001")
        .replace("{name}", "acme")
}

#[tokio::test]
async fn every_route_exists_and_roles_are_enforced() {
    let f = fixture(1);
    f.add_tenant("acme").await;
    let callers = [
        ("anyone", As::Nobody),
        ("tenant", tenant("acme")),
        ("operator", As::Local),
        (
            "agent",
            As::Cert(
                Identity::Agent {
                    lease: LeaseId::from_random(1),
                    server: "s00".parse().unwrap(),
                },
                "99",
            ),
        ),
    ];
    // Removing the tenant revokes its certificate: do that last.
    let mut routes: Vec<_> = ROUTES.iter().collect();
    routes.sort_by_key(|r| r.method == "DELETE" && r.path.starts_with("/v1/tenants"));
    for r in routes {
        let method = Method::from_bytes(r.method.as_bytes()).unwrap();
        let path = concrete(r.path);
        for (role, who) in &callers {
            let (status, body) = f.call(who, method.clone(), &path, "{}").await;
            assert!(
                !body.contains("no such endpoint") && status != StatusCode::METHOD_NOT_ALLOWED,
                "{} {path} as {role}: {status} {body}",
                r.method
            );
            let admitted = r.who.iter().any(|w| match (w, *role) {
                (Who::Anyone, _) => true,
                (Who::Agent, "agent" | "anyone") => true,
                (w, role) => format!("{w:?}").to_lowercase() == role,
            });
            if !admitted {
                let want = if *role == "anyone" {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::FORBIDDEN
                };
                assert_eq!(status, want, "{} {path} as {role}: {body}", r.method);
            } else {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN
                        || r.path.starts_with("/v1/agent/"),
                    "{} {path} as {role} was refused: {status} {body}",
                    r.method
                );
            }
        }
    }
    let (s, b) = f.call(&As::Local, Method::GET, "/v1/nope", "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(b.contains("no such endpoint"), "{b}");
}

#[tokio::test]
async fn bad_bodies_are_400s_naming_the_field() {
    let f = fixture(1);
    f.add_tenant("acme").await;
    let t = tenant("acme");
    for (body, field) in [
        (r#"{"count":"many","duration_s":3600}"#, "count"),
        (r#"{"count":1}"#, "duration_s"),
        (r#"{"count":1,"duration_s":3600,"colour":"red"}"#, "colour"),
        (r#"{"count":0,"duration_s":3600}"#, "count"),
        (r#"{"count":1,"duration_s":5}"#, "duration_s"),
        (r#"{"count":1,"duration_s":3600,"tunnel":"gre"}"#, "tunnel"),
        (
            r#"{"count":1,"duration_s":3600,"gateway":{"register_url":"http://x:1","tls_cert_sha256":"00"}}"#,
            "gateway.register_url",
        ),
        (
            r#"{"count":1,"duration_s":3600,"gateway":{"register_url":"https://x:1","tls_cert_sha256":"00"}}"#,
            "gateway.tls_cert_sha256",
        ),
        (
            r#"{"count":1,"duration_s":3600,"gateway":{"register_url":"https://x:1"}}"#,
            "tls_cert_sha256",
        ),
        ("not json", "invalid"),
        ("", "empty"),
    ] {
        let (s, b) = f.call(&t, Method::POST, "/v1/leases", body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {b}");
        assert!(b.contains(field), "{body}: {b}");
    }
    let huge = format!(
        r#"{{"count":1,"duration_s":3600,"role":"{}"}}"#,
        "x".repeat(70_000)
    );
    let (s, b) = f.call(&t, Method::POST, "/v1/leases", &huge).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("larger than"), "{b}");
    let (s, b) = f.call(&t, Method::GET, "/v1/leases/l-XYZ", "").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("lease id"), "{b}");
}

#[tokio::test]
async fn tenants_see_only_their_own_leases() {
    let f = fixture(2);
    f.add_tenant("acme").await;
    f.add_tenant("globex").await;
    let (s, b) = f.lease(&tenant("acme"), 1).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let created: lm_api::CreateLeaseResponse = serde_json::from_str(&b).unwrap();
    let id = created.lease.id;
    let g = tenant("globex");
    let (s, b) = f.call(&g, Method::GET, "/v1/leases", "").await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "[]"));
    for (m, p) in [
        (Method::GET, format!("/v1/leases/{id}")),
        (Method::POST, format!("/v1/leases/{id}/release")),
        (Method::GET, format!("/v1/leases/{id}/events")),
    ] {
        let (s, b) = f.call(&g, m.clone(), &p, "").await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {p}: {b}");
    }
    let (s, b) = f
        .call(
            &g,
            Method::POST,
            &format!("/v1/leases/{id}/renew"),
            r#"{"duration_s":60}"#,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    // The owner and the operator see it; the operator sees everything.
    let (s, _) = f
        .call(
            &tenant("acme"),
            Method::GET,
            &format!("/v1/leases/{id}"),
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, b) = f.call(&As::Local, Method::GET, "/v1/leases", "").await;
    assert!(b.contains(&id.to_string()));
    // The lease's event stream (not followed) holds its creation.
    let (s, b) = f
        .call(
            &tenant("acme"),
            Method::GET,
            &format!("/v1/leases/{id}/events"),
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.lines().any(|l| l.contains("lease.created")), "{b}");
    // A removed tenant's certificate no longer works, even before the CRL is fetched.
    let (s, b) = f
        .call(&As::Local, Method::DELETE, "/v1/tenants/globex", "")
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = f.call(&g, Method::GET, "/v1/leases", "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_requests_on_ten_servers() {
    let f = Arc::new(fixture(10));
    for t in ["acme", "globex"] {
        f.add_tenant(t).await;
    }
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let f = f.clone();
            tokio::spawn(async move {
                let who = tenant(if i % 2 == 0 { "acme" } else { "globex" });
                f.lease(&who, 1).await
            })
        })
        .collect();
    let mut granted = 0;
    let mut refused = 0;
    for t in tasks {
        let (s, b) = t.await.unwrap();
        match s {
            StatusCode::CREATED => granted += 1,
            StatusCode::CONFLICT => {
                assert!(b.contains("idle"), "{b}");
                refused += 1
            }
            s => panic!("{s}: {b}"),
        }
    }
    assert_eq!((granted, refused), (10, 10));
    let leases = f.api.inventory.leases(None);
    let mut seen = BTreeSet::new();
    for l in &leases {
        assert_eq!(l.servers.len(), 1);
        assert!(seen.insert(l.servers[0].mac), "server in two leases");
    }
    assert_eq!(seen.len(), 10);
    f.api.inventory.with_ledger(|l| l.check()).unwrap();
}

/// A lease for one server, booted up to `enrolling`, with a fresh token.
/// The gateway every lease of `enrolling` names; its agents are told it at enrollment.
const GATEWAY: &str = r#"{"register_url":"https://10.88.0.50:7443","tls_cert_sha256":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff","wg_endpoint":"10.88.0.50:51820","wg_public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#;

async fn enrolling(f: &Fixture) -> (LeaseId, MacAddr, BootId, String) {
    f.add_tenant("acme").await;
    let body = format!(r#"{{"count":1,"duration_s":3600,"image":"img-1","gateway":{GATEWAY}}}"#);
    let (s, b) = f
        .call(&tenant("acme"), Method::POST, "/v1/leases", &body)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let r: lm_api::CreateLeaseResponse = serde_json::from_str(&b).unwrap();
    let mac = r.lease.servers[0].mac;
    let inv = &f.api.inventory;
    inv.apply(mac, &Input::DhcpSeen).unwrap();
    let Gate::Open(mut host) = inv.lookup(mac) else {
        panic!("gate closed")
    };
    let args = inv.script_args(mac, &mut host);
    assert_eq!(args[0], format!("lm.lease={}", r.lease.id));
    let token = args[1].strip_prefix("lm.token=").unwrap().to_string();
    inv.apply(
        mac,
        &Input::Hello {
            boot_id: host.boot_id,
        },
    )
    .unwrap();
    (r.lease.id, mac, host.boot_id, token)
}

fn csr() -> String {
    let key = lm_pki::generate_key().unwrap();
    lm_pki::make_csr(&key, "agent").unwrap()
}

fn enroll_body(lease: LeaseId, mac: MacAddr, boot: BootId, token: &str, csr: &str) -> String {
    serde_json::to_string(&EnrollRequest {
        lease,
        boot_id: boot,
        boot_mac: mac,
        token: token.into(),
        csr_pem: csr.into(),
    })
    .unwrap()
}

fn refusals(f: &Fixture) -> usize {
    f.audit()
        .iter()
        .filter(|e| e.action == "security.enroll-refused")
        .count()
}

#[tokio::test]
async fn enrollment_issues_a_certificate_bound_to_lease_and_server() {
    let f = fixture(1);
    let (lease, mac, boot, token) = enrolling(&f).await;
    let (s, b) = f
        .call(
            &As::Nobody,
            Method::POST,
            "/v1/agent/enroll",
            &enroll_body(lease, mac, boot, &token, &csr()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let r: EnrollResponse = serde_json::from_str(&b).unwrap();
    assert_eq!(r.image.as_deref(), Some("img-1"));
    assert_eq!(
        r.gateway,
        Some(serde_json::from_str::<lm_api::GatewaySpec>(GATEWAY).unwrap()),
        "the agent is told the tenant's gateway"
    );
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(r.cert_pem.as_bytes()).unwrap();
    let peer = lm_pki::peer_cert(&der).unwrap();
    assert_eq!(
        peer.identity,
        Identity::Agent {
            lease,
            server: "s00".parse::<Name>().unwrap()
        }
    );
    let lease_end = f.api.inventory.lease_view(lease).unwrap().ends_ms;
    assert!(
        r.not_after_ms <= lease_end,
        "certificate outlives the lease"
    );
    let rec = f.api.inventory.get(mac).unwrap();
    assert_eq!(rec.state.name(), "tunneling");
    assert_eq!(rec.cert_serial.as_deref(), Some(r.serial.as_str()));
    // Now anonymous reports for this server are refused: the agent must use its certificate.
    let hb = format!(r#"{{"boot_id":"{boot}","boot_mac":"{mac}","uptime_ms":1}}"#);
    let (s, _) = f
        .call(&As::Nobody, Method::POST, "/v1/agent/heartbeat", &hb)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let agent = As::Cert(peer.identity.clone(), "x");
    let agent = match agent {
        As::Cert(i, _) => As::Cert(i, Box::leak(r.serial.clone().into_boxed_str())),
        a => a,
    };
    let (s, b) = f
        .call(&agent, Method::POST, "/v1/agent/heartbeat", &hb)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b.contains("continue"), "{b}");
    // Release: the next heartbeat says release; the agent wipes and confirms with its
    // certificate; then the certificate is revoked and stops working, and the server is idle.
    let (s, _) = f
        .call(
            &tenant("acme"),
            Method::POST,
            &format!("/v1/leases/{lease}/release"),
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = f
        .call(&agent, Method::POST, "/v1/agent/heartbeat", &hb)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b.contains("release"), "{b}");
    assert_eq!(f.api.inventory.get(mac).unwrap().state.name(), "wiping");
    let wiped = format!(
        r#"{{"boot_id":"{boot}","boot_mac":"{mac}","phase":"wipe","ok":true,"detail":"done","attempt":1}}"#
    );
    let (s, b) = f
        .call(&As::Nobody, Method::POST, "/v1/agent/report", &wiped)
        .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "anonymous wipe report of an enrolled server: {b}"
    );
    let (s, b) = f
        .call(&agent, Method::POST, "/v1/agent/report", &wiped)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(f.api.inventory.get(mac).unwrap().state.name(), "idle");
    assert!(
        f.api
            .inventory
            .with_ledger(|l| l.revoked.contains(&r.serial))
    );
    let (s, b) = f.call(&agent, Method::GET, "/v1/whoami", "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "revoked: {b}");
    assert_eq!(
        f.api.inventory.lease_view(lease).unwrap().state,
        lm_api::LeaseState::Ended
    );
    // The CRL lists the agent certificate.
    let (s, _) = f.call(&As::Nobody, Method::GET, "/v1/ca/crl", "").await;
    assert_eq!(s, StatusCode::OK);
    // The audit chain holds.
    let (_, b) = f
        .call(&As::Local, Method::GET, "/v1/audit/verify", "")
        .await;
    assert!(b.contains(r#""broken":null"#), "{b}");
}

#[tokio::test]
async fn every_enrollment_refusal_is_refused_and_audited() {
    let f = fixture(2);
    let (lease, mac, boot, token) = enrolling(&f).await;
    let good_csr = csr();
    let other_mac = MacAddr([0x52, 0x54, 0, 0, 0, 2]);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "malformed token",
            enroll_body(lease, mac, boot, "abc", &good_csr),
            "malformed",
        ),
        (
            "unknown token",
            enroll_body(lease, mac, boot, &"0".repeat(64), &good_csr),
            "unknown",
        ),
        (
            "token for another MAC",
            enroll_body(lease, other_mac, boot, &token, &good_csr),
            "another server",
        ),
    ];
    let mut expected = 0;
    for (what, body, msg) in cases {
        let (s, b) = f
            .call(&As::Nobody, Method::POST, "/v1/agent/enroll", &body)
            .await;
        assert!(
            s == StatusCode::FORBIDDEN || s == StatusCode::BAD_REQUEST,
            "{what}: {s} {b}"
        );
        assert!(b.contains(msg), "{what}: {b}");
        expected += 1;
        assert_eq!(refusals(&f), expected, "{what} not audited");
    }
    // The stolen token was spent by the attempt from the wrong MAC: the real agent is refused
    // too (and an operator sees both refusals).
    let (s, b) = f
        .call(
            &As::Nobody,
            Method::POST,
            "/v1/agent/enroll",
            &enroll_body(lease, mac, boot, &token, &good_csr),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(b.contains("already used"), "{b}");

    // A fresh boot script gives a fresh token; a token for another lease, a bad CSR, reuse.
    let fresh = || {
        let Gate::Open(mut host) = f.api.inventory.lookup(mac) else {
            panic!()
        };
        f.api.inventory.script_args(mac, &mut host)[1]
            .strip_prefix("lm.token=")
            .unwrap()
            .to_string()
    };
    let t2 = fresh();
    let other_lease = LeaseId::from_random(42);
    let (s, b) = f
        .call(
            &As::Nobody,
            Method::POST,
            "/v1/agent/enroll",
            &enroll_body(other_lease, mac, boot, &t2, &good_csr),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(b.contains("belongs to lease"), "{b}");
    let t3 = fresh();
    let mut bad_csr = good_csr.clone().into_bytes();
    let mid = bad_csr.len() / 2;
    bad_csr[mid] = if bad_csr[mid] == b'A' { b'B' } else { b'A' };
    let (s, b) = f
        .call(
            &As::Nobody,
            Method::POST,
            "/v1/agent/enroll",
            &enroll_body(lease, mac, boot, &t3, &String::from_utf8(bad_csr).unwrap()),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b.contains("certificate request"), "{b}");
    let t4 = fresh();
    let t5 = fresh();
    let (s, b) = f
        .call(
            &As::Nobody,
            Method::POST,
            "/v1/agent/enroll",
            &enroll_body(lease, mac, boot, &t4, &good_csr),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "superseded token: {b}");
    assert!(b.contains("superseded"), "{b}");
    let (s, b) = f
        .call(
            &As::Nobody,
            Method::POST,
            "/v1/agent/enroll",
            &enroll_body(lease, mac, boot, &t5, &good_csr),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let first: EnrollResponse = serde_json::from_str(&b).unwrap();
    // The same agent asking again (its answer was lost) with the same key gets the same
    // certificate; that is not a refusal.
    let (s, b) = f
        .call(
            &As::Nobody,
            Method::POST,
            "/v1/agent/enroll",
            &enroll_body(lease, mac, boot, &t5, &good_csr),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "replay: {b}");
    let again: EnrollResponse = serde_json::from_str(&b).unwrap();
    assert_eq!(
        (again.serial, again.cert_pem),
        (first.serial, first.cert_pem)
    );
    // Another key with the used token is a reuse.
    let (s, b) = f
        .call(
            &As::Nobody,
            Method::POST,
            "/v1/agent/enroll",
            &enroll_body(lease, mac, boot, &t5, &csr()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "reuse: {b}");
    assert!(b.contains("already used"), "{b}");
    assert_eq!(refusals(&f), 8);
    // The token itself never reaches the audit log or the store in the clear.
    let log = serde_json::to_string(&f.audit()).unwrap();
    for t in [&token, &t2, &t5] {
        assert!(!log.contains(t.as_str()));
    }
}

#[tokio::test]
async fn expired_tokens_and_ended_leases_are_refused() {
    let f = fixture(1);
    let (lease, mac, boot, token) = enrolling(&f).await;
    f.clock
        .advance(crate::inventory::DEFAULT_TOKEN_TTL_S * 1000);
    let (s, b) = f
        .call(
            &As::Nobody,
            Method::POST,
            "/v1/agent/enroll",
            &enroll_body(lease, mac, boot, &token, &csr()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(b.contains("expired"), "{b}");
    // The lease ends: a token minted before is refused.
    let Gate::Open(mut host) = f.api.inventory.lookup(mac) else {
        panic!()
    };
    let t2 = f.api.inventory.script_args(mac, &mut host)[1]
        .strip_prefix("lm.token=")
        .unwrap()
        .to_string();
    let (s, _) = f
        .call(
            &tenant("acme"),
            Method::POST,
            &format!("/v1/leases/{lease}/release"),
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = f
        .call(
            &As::Nobody,
            Method::POST,
            "/v1/agent/enroll",
            &enroll_body(lease, mac, boot, &t2, &csr()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(b.contains("over") || b.contains("not enrolling"), "{b}");
}

#[tokio::test]
async fn operators_with_certificates_and_their_removal() {
    let f = fixture(1);
    let (s, b) = f
        .call(
            &As::Local,
            Method::POST,
            "/v1/operators",
            r#"{"name":"alice"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let bundle: CredentialBundle = serde_json::from_str(&b).unwrap();
    assert_eq!(bundle.identity, "urn:lease-appliance:operator:alice");
    assert!(bundle.key_pem.contains("PRIVATE KEY"));
    let serial = f.api.inventory.with_ledger(|l| {
        l.operators[&"alice".parse::<Name>().unwrap()]
            .cert_serial
            .clone()
    });
    let alice = As::Cert(
        Identity::Operator("alice".parse().unwrap()),
        Box::leak(serial.into_boxed_str()),
    );
    let (s, b) = f.call(&alice, Method::GET, "/v1/servers", "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // An operator certificate for a name the LM never issued is refused.
    let mallory = As::Cert(Identity::Operator("mallory".parse().unwrap()), "5");
    let (s, _) = f.call(&mallory, Method::GET, "/v1/servers", "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, b) = f
        .call(&As::Local, Method::DELETE, "/v1/operators/alice", "")
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = f.call(&alice, Method::GET, "/v1/servers", "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "removed operators are refused");
    assert!(f.audit().iter().any(|e| e.action == "operator.removed"));
}
