//! The console against the real `/v1` router served on a real Unix socket, as `serve` does
//! for the admin socket (`LocalOperator` layered): tenants and their bundles, leases, the
//! followed event stream, audit export and offline verification, the CRL, and errors.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lm_api::{AddServer, CreateLease, CredentialBundle, LeaseId, MacAddr, Name, Tunnel};

use super::*;
use crate::api::{self, Api, LocalOperator, Settings};
use crate::ca::Ca;
use crate::clock::ManualClock;
use crate::inventory::{Inventory, InventoryError};
use crate::ledger::leases::{self as ledger_leases, Limits};
use crate::power::RecordingPower;
use crate::store::Store;

struct Lm {
    dir: tempfile::TempDir,
    api: Arc<Api>,
    client: AdminClient,
}

async fn lm() -> Lm {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let inventory = Arc::new(Inventory::load(store, Arc::new(ManualClock::new(now))).unwrap());
    for i in 1..=2u8 {
        let server = AddServer {
            name: format!("vm{i}"),
            mac: MacAddr([0x52, 0x54, 0, 0, 0, i]),
            reserved_ip: None,
            wol_password: None,
        };
        inventory.add("test", server).unwrap();
    }
    let (ca, _) = Ca::load_or_create(&dir.path().join("ca"), SystemTime::now(), 1).unwrap();
    let api = Arc::new(Api {
        inventory,
        power: Arc::new(RecordingPower::default()),
        wake: crate::wake::WakePolicy::default(),
        ca: Arc::new(ca),
        settings: Settings {
            api_url: "https://10.77.0.1:8443".into(),
            heartbeat_secs: 5,
            limits: Limits::default(),
            agent_cert_max_s: 86_400,
            tenant_cert_days: 365,
        },
    });
    let sock = dir.path().join("admin.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let local = api::router(api.clone()).layer(axum::Extension(LocalOperator));
    tokio::spawn(async move { axum::serve(listener, local).await });
    Lm {
        client: AdminClient::new(&sock),
        dir,
        api,
    }
}

impl Lm {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A tenant's lease, made the way `POST /v1/leases` makes it (tenants are not on the
    /// admin socket).
    fn lease(&self, tenant: &str) -> LeaseId {
        let tenant: Name = tenant.parse().unwrap();
        let req = CreateLease {
            count: 1,
            duration_s: 3600,
            allow_partial: false,
            queue: false,
            tunnel: Tunnel::Wireguard,
            role: None,
            image: None,
            gateway: None,
        };
        let limits = self.api.settings.limits;
        self.api
            .inventory
            .transact(&format!("tenant:{tenant}"), |w| {
                ledger_leases::create(w, &tenant, &req, limits).map_err(InventoryError::from)
            })
            .unwrap()
            .id
    }
}

#[tokio::test]
async fn tenants_leases_and_audit_over_the_admin_socket() {
    let lm = lm().await;
    let c = &lm.client;

    // tenant add: the bundle carries the key; the tenant is listed.
    let acme: Name = "acme".parse().unwrap();
    let b = add_tenant(c, &acme, Some(30)).await.unwrap();
    assert_eq!(b.identity, "urn:lease-appliance:tenant:acme");
    assert_eq!(b.api_url, "https://10.77.0.1:8443");
    assert!(b.key_pem.contains("PRIVATE KEY") && b.cert_pem.contains("CERTIFICATE"));
    let t = tenants(c).await.unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].name.as_str(), t[0].removed), ("acme", false));
    assert!(leases(c).await.unwrap().is_empty());

    // The API's error message comes back, with a non-zero exit (an Err) for the command.
    let err = add_tenant(c, &acme, None).await.unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("already") && err.contains("HTTP 409"), "{err}");
    let err = run(
        c,
        ConsoleCmd::Tenant(TenantCmd::Show {
            name: "nobody".parse().unwrap(),
            json: false,
        }),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("no tenant nobody (HTTP 404)"),
        "{err:#}"
    );

    // tenant add --out: a new file of mode 0600; an existing file is never overwritten, and
    // then no tenant is added.
    let out = lm.path("globex.json");
    let add = |name: &str, out: &PathBuf| {
        ConsoleCmd::Tenant(TenantCmd::Add {
            name: name.parse().unwrap(),
            cert_days: None,
            out: Some(out.clone()),
        })
    };
    run(c, add("globex", &out)).await.unwrap();
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let saved: CredentialBundle = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(saved.identity, "urn:lease-appliance:tenant:globex");
    let err = run(c, add("initech", &out)).await.unwrap_err();
    assert!(format!("{err:#}").contains("already exists"), "{err:#}");
    assert!(
        tenants(c)
            .await
            .unwrap()
            .iter()
            .all(|t| t.name.as_str() != "initech")
    );

    // A lease shows up with its events.
    let id = lm.lease("acme");
    let l = leases(c).await.unwrap();
    assert_eq!((l.len(), l[0].id, l[0].servers.len()), (1, id, 1));
    let events = lease_events(c, id).await.unwrap();
    assert!(
        events.iter().any(|e| e.action == "lease.created"),
        "{events:?}"
    );
    let shown = lease_render::lease_show(&l[0], &events, 0);
    assert!(shown.contains("lease.created"), "{shown}");

    // The followed stream stays open and delivers new events as they are committed.
    let mut s = c.stream("/v1/events?from=1&follow=true").await.unwrap();
    let mut seen = 0;
    while seen < events.last().unwrap().seq {
        let e: lm_api::AuditEntry =
            serde_json::from_slice(&s.next_line().await.unwrap().unwrap()).unwrap();
        seen = e.seq;
    }
    run(c, ConsoleCmd::Lease(LeaseCmd::Release { id, json: true }))
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), s.next_line())
        .await
        .expect("a new event within 10 s")
        .unwrap()
        .unwrap();
    let e: lm_api::AuditEntry = serde_json::from_slice(&next).unwrap();
    assert_eq!((e.seq, e.lease), (seen + 1, Some(id)));

    // tenant remove revokes globex's certificate: the CRL lists it.
    run(
        c,
        ConsoleCmd::Tenant(TenantCmd::Remove {
            name: "globex".parse().unwrap(),
            json: true,
        }),
    )
    .await
    .unwrap();
    let der = c.bytes("GET", "/v1/ca/crl", None).await.unwrap();
    let serial = tenants(c)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.removed)
        .unwrap()
        .cert_serial;
    assert_eq!(crl::summarize(&der).unwrap().revoked, [serial.as_str()]);
    // The CRL is signed afresh for every request: compare what it says.
    ca_crl(c, Some(&lm.path("crl.der"))).await.unwrap();
    let saved = crl::summarize(&std::fs::read(lm.path("crl.der")).unwrap()).unwrap();
    assert_eq!(saved.revoked, [serial.as_str()]);

    // audit export, then verify the file offline: same count and head as the LM says.
    let export_path = lm.path("audit.ndjson");
    let mut f = std::fs::File::create(&export_path).unwrap();
    let sum = export(c, &mut f, false).await.unwrap();
    drop(f);
    let online: lm_api::AuditVerification = c.call("GET", "/v1/audit/verify", None).await.unwrap();
    let offline = verify_file(&export_path).unwrap();
    assert_eq!(offline.broken, None);
    assert_eq!(
        (offline.entries, &offline.head),
        (online.entries, &online.head)
    );
    assert_eq!((sum.entries, &sum.head), (online.entries, &online.head));
    assert!(sum.entries >= 8, "{sum:?}");
    run(
        c,
        ConsoleCmd::Audit(AuditCmd::Verify {
            file: Some(export_path.clone()),
            json: false,
        }),
    )
    .await
    .unwrap();

    // A tampered export fails, naming the entry; so does an edited line that is not JSON.
    let text = std::fs::read_to_string(&export_path).unwrap();
    let tampered = text.replacen("client certificate", "client certificat", 1);
    assert_ne!(tampered, text);
    let bad = lm.path("tampered.ndjson");
    std::fs::write(&bad, &tampered).unwrap();
    let v = verify_file(&bad).unwrap();
    assert!(v.broken.as_deref().unwrap().contains("rewritten"), "{v:?}");
    let err = run(
        c,
        ConsoleCmd::Audit(AuditCmd::Verify {
            file: Some(bad.clone()),
            json: false,
        }),
    )
    .await
    .unwrap_err();
    assert!(format!("{err}").contains("broken"), "{err}");
    let mut dropped: Vec<&str> = text.lines().collect();
    dropped.remove(1);
    std::fs::write(&bad, dropped.join("\n")).unwrap();
    assert!(
        verify_file(&bad)
            .unwrap()
            .broken
            .unwrap()
            .contains("removed")
    );
    std::fs::write(&bad, text.replacen('{', "[", 1)).unwrap();
    let err = format!("{:#}", verify_file(&bad).unwrap_err());
    assert!(err.contains("line 1 is not an audit entry"), "{err}");
}

#[tokio::test]
async fn lease_watch_follows_to_the_end_and_stops_on_request() {
    use tokio::sync::{mpsc, oneshot};

    use super::lease_cmd::{Stream, follow_into};

    let lm = lm().await;
    let c = lm.client.clone();
    add_tenant(&c, &"acme".parse().unwrap(), None)
        .await
        .unwrap();
    let id = lm.lease("acme");
    let history = lease_events(&c, id).await.unwrap().len();

    // `lease watch ID`: the history, then live events, then the end of the lease.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let s = Stream {
        lease: Some(id),
        from: 1,
        follow: true,
        json: false,
        only_leases: false,
    };
    let watch = tokio::spawn({
        let c = c.clone();
        async move {
            let mut sink = |l: String| Ok(tx.send(l)?);
            follow_into(&c, s, &mut sink, std::future::pending::<()>()).await
        }
    });
    for _ in 0..history {
        rx.recv().await.unwrap();
    }
    run(&c, ConsoleCmd::Lease(LeaseCmd::Release { id, json: true }))
        .await
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), watch)
        .await
        .expect("the watch ends with the lease")
        .unwrap()
        .unwrap();
    assert_eq!(end, Some(lm_api::LeaseState::Ended));
    let mut live = Vec::new();
    while let Ok(l) = rx.try_recv() {
        live.push(l);
    }
    // Every entry of the release, also those committed after the lease was over.
    let all = lease_events(&c, id).await.unwrap();
    assert_eq!(live.len(), all.len() - history, "{live:#?}");
    assert!(
        live.last().unwrap().contains("releasing -> ended"),
        "{live:#?}"
    );

    // A followed stream of everything ends cleanly when asked to (Ctrl-C).
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let s = Stream {
        lease: None,
        from: 1,
        follow: true,
        json: true,
        only_leases: false,
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let all_events = tokio::spawn(async move {
        let mut sink = |l: String| Ok(tx.send(l)?);
        follow_into(&c, s, &mut sink, stop_rx).await
    });
    let first = rx.recv().await.unwrap();
    assert!(first.starts_with(r#"{"seq":1,"#), "{first}");
    stop_tx.send(()).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), all_events)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.unwrap(), None);
}
