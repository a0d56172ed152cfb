//! The agent's lease pipeline through the real router: enrolled agents report the end of their
//! tunnel and transfer phases with their certificates; the servers move tunneling ->
//! transferring -> running and the lease becomes active when all of them run. Out-of-order
//! reports are refused naming the state, repeats change nothing, and other boots are refused.

use lm_api::{AgentPhase, EventKind, LeaseState};

use super::*;

/// An enrolled agent: its server and boot, and the caller holding its certificate.
struct Agent {
    mac: MacAddr,
    boot: BootId,
    who: As,
}

/// A lease of `count` servers (tenant acme, with a gateway), each booted and enrolled through
/// `/v1/agent/enroll`, so each is `tunneling`.
async fn enrolled_lease(f: &Fixture, count: u32) -> (LeaseId, Vec<Agent>) {
    f.add_tenant("acme").await;
    let body =
        format!(r#"{{"count":{count},"duration_s":3600,"image":"img-1","gateway":{GATEWAY}}}"#);
    let (s, b) = f
        .call(&tenant("acme"), Method::POST, "/v1/leases", &body)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let r: lm_api::CreateLeaseResponse = serde_json::from_str(&b).unwrap();
    let inv = &f.api.inventory;
    let mut agents = Vec::new();
    for server in &r.lease.servers {
        let mac = server.mac;
        inv.apply(mac, &Input::DhcpSeen).unwrap();
        let Gate::Open(mut host) = inv.lookup(mac) else {
            panic!("gate closed")
        };
        let args = inv.script_args(mac, &mut host);
        let token = args[1].strip_prefix("lm.token=").unwrap().to_string();
        inv.apply(
            mac,
            &Input::Hello {
                boot_id: host.boot_id,
            },
        )
        .unwrap();
        let (s, b) = f
            .call(
                &As::Nobody,
                Method::POST,
                "/v1/agent/enroll",
                &enroll_body(r.lease.id, mac, host.boot_id, &token, &csr()),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let e: EnrollResponse = serde_json::from_str(&b).unwrap();
        let identity = Identity::Agent {
            lease: r.lease.id,
            server: e.server.parse::<Name>().unwrap(),
        };
        agents.push(Agent {
            mac,
            boot: host.boot_id,
            who: As::Cert(identity, Box::leak(e.serial.into_boxed_str())),
        });
    }
    (r.lease.id, agents)
}

fn report_body(a: &Agent, boot: BootId, phase: AgentPhase, ok: bool, detail: &str) -> String {
    serde_json::to_string(&lm_api::AgentReport {
        boot_id: boot,
        boot_mac: a.mac,
        phase,
        ok,
        detail: detail.into(),
        attempt: 1,
    })
    .unwrap()
}

impl Fixture {
    /// `a` reports `phase` of its own boot; the answer.
    async fn report(&self, a: &Agent, phase: AgentPhase, ok: bool) -> (StatusCode, String) {
        let body = report_body(a, a.boot, phase, ok, "detail");
        self.call(&a.who, Method::POST, "/v1/agent/report", &body)
            .await
    }

    fn state(&self, a: &Agent) -> &'static str {
        self.api.inventory.get(a.mac).unwrap().state.name()
    }

    fn lease_state(&self, id: LeaseId) -> LeaseState {
        self.api.inventory.lease_view(id).unwrap().state
    }

    /// How many state changes the audit log holds.
    fn state_changes(&self) -> usize {
        self.audit()
            .iter()
            .filter(|e| e.action == "server.state")
            .count()
    }

    /// The phase reports in `a`'s timeline, in order.
    fn reported(&self, a: &Agent) -> Vec<(AgentPhase, bool)> {
        self.api
            .inventory
            .store()
            .timeline(a.mac)
            .unwrap()
            .into_iter()
            .filter_map(|t| match t.kind {
                EventKind::AgentReport { phase, ok, .. } => Some((phase, ok)),
                _ => None,
            })
            .collect()
    }
}

#[tokio::test]
async fn tunnel_then_transfer_runs_the_servers_and_activates_the_lease() {
    use AgentPhase::{Transfer, Tunnel};
    let f = fixture(2);
    let (lease, agents) = enrolled_lease(&f, 2).await;
    let [a, b] = &agents[..] else {
        panic!("two agents")
    };
    assert_eq!(f.state(a), "tunneling");
    assert_eq!(f.lease_state(lease), LeaseState::Provisioning);

    let (s, body) = f.report(a, Tunnel, true).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(f.state(a), "transferring");
    let (s, body) = f.report(a, Transfer, true).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(f.state(a), "running");
    assert_eq!(
        f.lease_state(lease),
        LeaseState::Provisioning,
        "one of two servers runs"
    );

    for phase in [Tunnel, Transfer] {
        let (s, body) = f.report(b, phase, true).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    }
    assert_eq!(f.state(b), "running");
    assert_eq!(f.lease_state(lease), LeaseState::Active);
    let view = f.api.inventory.lease_view(lease).unwrap();
    assert!(
        view.servers.iter().all(|s| s.state == "running"),
        "{view:?}"
    );
    // Stored before the answer: an inventory loaded from the store sees the same.
    let reloaded = Inventory::load(f.api.inventory.store().clone(), f.clock.clone()).unwrap();
    assert_eq!(reloaded.lease_view(lease).unwrap(), view);
    assert_eq!(
        f.reported(a),
        vec![(Tunnel, true), (Transfer, true)],
        "each report is in the timeline"
    );
    f.api.inventory.with_ledger(|l| l.check()).unwrap();
}

#[tokio::test]
async fn out_of_order_reports_are_refused_naming_the_state() {
    use AgentPhase::Transfer;
    let f = fixture(1);
    let (lease, agents) = enrolled_lease(&f, 1).await;
    let a = &agents[0];
    let (s, body) = f.report(a, Transfer, true).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert!(
        body.contains("tunneling") && body.contains("transfer"),
        "the refusal names the state and the phase: {body}"
    );
    assert_eq!(f.state(a), "tunneling");
    assert!(
        f.reported(a).is_empty(),
        "a refused report is not in the timeline"
    );
    // A phase that is no lease-pipeline step (ready) leaves the server alone.
    let (s, body) = f.report(a, AgentPhase::Ready, true).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(f.state(a), "tunneling");
    assert_eq!(f.lease_state(lease), LeaseState::Provisioning);
}

#[tokio::test]
async fn repeated_reports_are_accepted_and_change_nothing() {
    use AgentPhase::{Transfer, Tunnel};
    let f = fixture(1);
    let (lease, agents) = enrolled_lease(&f, 1).await;
    let a = &agents[0];
    assert_eq!(f.report(a, Tunnel, true).await.0, StatusCode::NO_CONTENT);
    let (changes, since) = (
        f.state_changes(),
        f.api.inventory.get(a.mac).unwrap().since_ms,
    );
    f.clock.advance(5_000);
    let (s, body) = f.report(a, Tunnel, true).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(f.state(a), "transferring");
    assert_eq!(f.state_changes(), changes);
    assert_eq!(f.api.inventory.get(a.mac).unwrap().since_ms, since);

    assert_eq!(f.report(a, Transfer, true).await.0, StatusCode::NO_CONTENT);
    assert_eq!(f.lease_state(lease), LeaseState::Active);
    let changes = f.state_changes();
    for phase in [Tunnel, Transfer] {
        let (s, body) = f.report(a, phase, true).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{phase:?} again: {body}");
    }
    assert_eq!(f.state(a), "running");
    assert_eq!(f.lease_state(lease), LeaseState::Active);
    assert_eq!(f.state_changes(), changes);
}

#[tokio::test]
async fn failure_reports_only_go_to_the_timeline() {
    use AgentPhase::{Transfer, Tunnel};
    let f = fixture(1);
    let (lease, agents) = enrolled_lease(&f, 1).await;
    let a = &agents[0];
    let (s, body) = f.report(a, Tunnel, false).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(f.state(a), "tunneling");
    // Even a failure of a phase the server is not in is only recorded.
    let (s, body) = f.report(a, Transfer, false).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(f.state(a), "tunneling");
    assert_eq!(f.lease_state(lease), LeaseState::Provisioning);
    assert_eq!(f.reported(a), vec![(Tunnel, false), (Transfer, false)]);
}

#[tokio::test]
async fn reports_of_another_boot_are_refused() {
    let f = fixture(1);
    let (_, agents) = enrolled_lease(&f, 1).await;
    let a = &agents[0];
    let other = BootId::from_random(0x5eed);
    assert_ne!(other, a.boot);
    for phase in [AgentPhase::Tunnel, AgentPhase::Transfer] {
        let body = report_body(a, other, phase, true, "late");
        let (s, b) = f
            .call(&a.who, Method::POST, "/v1/agent/report", &body)
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert!(b.contains("boot id"), "{b}");
    }
    assert_eq!(f.state(a), "tunneling");
    assert!(f.reported(a).is_empty());
}

#[tokio::test]
async fn a_report_that_crosses_the_release_changes_nothing() {
    let f = fixture(1);
    let (lease, agents) = enrolled_lease(&f, 1).await;
    let a = &agents[0];
    let (s, _) = f
        .call(
            &tenant("acme"),
            Method::POST,
            &format!("/v1/leases/{lease}/release"),
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(f.state(a), "releasing");
    let (s, body) = f.report(a, AgentPhase::Tunnel, true).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(f.state(a), "releasing", "the release wins");
    assert_eq!(f.lease_state(lease), LeaseState::Releasing);
}

/// Every phase the agent can report, in its order; the match breaks the build when a phase is
/// added without being listed here.
const PHASES: [AgentPhase; 12] = {
    use AgentPhase::*;
    const fn listed(p: AgentPhase) {
        match p {
            Init | Modules | Link | Dhcp | Facts | Hello | Enroll | Tunnel | Transfer | Start
            | Ready | Wipe => {}
        }
    }
    listed(Init);
    [
        Init, Modules, Link, Dhcp, Facts, Hello, Enroll, Tunnel, Transfer, Start, Ready, Wipe,
    ]
};

#[test]
fn openapi_lists_every_agent_phase() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../../docs/api/openapi.json")).unwrap();
    let documented: Vec<&str> = doc["components"]["schemas"]["AgentReport"]["properties"]["phase"]
        ["enum"]
        .as_array()
        .expect("AgentReport.phase has an enum")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let phases: Vec<&str> = PHASES.iter().map(|p| p.as_str()).collect();
    assert_eq!(documented, phases);
    for p in PHASES {
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, format!("\"{}\"", p.as_str()), "wire name of {p:?}");
    }
}
