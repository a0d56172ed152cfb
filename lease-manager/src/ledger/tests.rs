use lm_api::{
    AgentPhase, BootId, CreateLease, LeaseId, LeaseState, MacAddr, Name, ServerState, Tunnel,
};
use proptest::prelude::*;

use super::leases::{self, Grant, LeaseRefusal, Limits};
use super::*;

fn acme() -> Name {
    "acme".parse().unwrap()
}

fn ledger(servers: u8) -> Ledger {
    let mut l = Ledger::default();
    for i in 0..servers {
        let mac = MacAddr([2, 0, 0, 0, 0, i]);
        let rec = ServerRecord {
            name: format!("s{i:02}"),
            mac,
            reserved_ip: None,
            wol_password: None,
            state: ServerState::Idle,
            since_ms: 0,
            facts: None,
            lease: None,
            cert_serial: None,
            token_key: None,
            started_boot: None,
        };
        l.by_name.insert(rec.name.clone(), mac);
        l.servers.insert(mac, rec);
    }
    for t in ["acme", "globex"] {
        let name: Name = t.parse().unwrap();
        l.tenants.insert(
            name.clone(),
            TenantRecord {
                name,
                created_ms: 0,
                cert_serial: "01".into(),
                cert_not_after_ms: u64::MAX,
                removed: false,
            },
        );
    }
    l
}

struct Sim {
    l: Ledger,
    now: u64,
    next_id: u64,
}

impl Sim {
    fn new(servers: u8) -> Self {
        Self {
            l: ledger(servers),
            now: 1_000,
            next_id: 1,
        }
    }

    fn run<T>(&mut self, f: impl FnOnce(&mut Work<'_>) -> T) -> (T, Tx) {
        let mut n = self.next_id;
        let mut ids = || {
            n += 1;
            n
        };
        let base = self.l.clone();
        let mut w = Work::new(&base, self.now, "test", &mut ids);
        let out = f(&mut w);
        let tx = w.tx;
        self.next_id = n;
        self.l.apply(&tx);
        self.l.check().unwrap();
        (out, tx)
    }

    fn create(&mut self, count: u32, queue: bool, partial: bool) -> Result<Grant, LeaseRefusal> {
        let req = CreateLease {
            count,
            duration_s: 3600,
            allow_partial: partial,
            queue,
            tunnel: Tunnel::Wireguard,
            role: None,
            image: None,
            gateway: None,
        };
        self.run(|w| leases::create(w, &acme(), &req, Limits::default()))
            .0
    }

    fn server_input(&mut self, mac: MacAddr, input: Input) {
        self.run(|w| {
            if w.step_server(mac, &input).unwrap().is_some() {
                leases::server_changed(w, mac).unwrap();
            }
        });
    }

    fn boot(&mut self, mac: MacAddr) -> BootId {
        self.l.servers[&mac].state.boot_id().unwrap()
    }

    fn state(&self, id: LeaseId) -> LeaseState {
        self.l.leases[&id].state
    }
}

#[test]
fn grant_wakes_every_server() {
    let mut s = Sim::new(3);
    let (g, tx) = s.run(|w| {
        leases::create(
            w,
            &acme(),
            &CreateLease {
                count: 2,
                duration_s: 3600,
                allow_partial: false,
                queue: false,
                tunnel: Tunnel::Ipsec,
                role: Some("db".into()),
                image: None,
                gateway: None,
            },
            Limits::default(),
        )
        .unwrap()
    });
    assert_eq!((g.granted, g.queued, g.declined), (2, 0, 0));
    let wakes = tx
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::Wake { .. }))
        .count();
    assert_eq!(wakes, 2);
    assert_eq!(s.state(g.id), LeaseState::Provisioning);
    let lease = &s.l.leases[&g.id];
    assert_eq!(lease.ends_ms, 1_000 + 3_600_000);
    for m in &lease.servers {
        assert_eq!(s.l.servers[m].state.name(), "waking");
        assert_eq!(s.l.servers[m].lease, Some(g.id));
    }
    assert!(tx.audit.iter().any(|a| a.action == "lease.created"));
}

#[test]
fn capacity_refusal_partial_and_queue_are_explicit() {
    let mut s = Sim::new(2);
    assert_eq!(
        s.create(3, false, false),
        Err(LeaseRefusal::NoCapacity { idle: 2, asked: 3 })
    );
    let g = s.create(3, false, true).unwrap();
    assert_eq!((g.granted, g.queued, g.declined), (2, 0, 1));
    assert_eq!(s.l.leases[&g.id].count, 2);
    // Nothing idle now: a queued request waits with nothing granted.
    let q = s.create(1, true, false).unwrap();
    assert_eq!((q.granted, q.queued), (0, 1));
    assert_eq!(s.state(q.id), LeaseState::Requested);
    // Releasing the first lease returns its (never booted) servers at once; the queued
    // lease gets one of them.
    s.run(|w| leases::release(w, g.id, "released by tenant", false).unwrap());
    assert_eq!(s.state(g.id), LeaseState::Ended);
    assert_eq!(s.state(q.id), LeaseState::Provisioning);
    assert_eq!(s.l.leases[&q.id].waiting, 0);
    assert_eq!(s.l.leases[&q.id].servers.len(), 1);
}

#[test]
fn twenty_requests_on_ten_servers_never_share_one() {
    let mut s = Sim::new(10);
    let results: Vec<_> = (0..20).map(|_| s.create(1, false, false)).collect();
    let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(ok.len(), 10);
    assert_eq!(
        results.iter().filter(|r| r.is_err()).count(),
        10,
        "the rest are refused, not double-booked"
    );
    let mut seen = std::collections::HashSet::new();
    for g in ok {
        for m in &s.l.leases[&g.id].servers {
            assert!(seen.insert(*m), "{m} in two leases");
        }
    }
}

#[test]
fn release_of_a_booted_server_waits_for_the_wipe_and_revokes() {
    let mut s = Sim::new(1);
    let g = s.create(1, false, false).unwrap();
    let mac = s.l.leases[&g.id].servers[0];
    let b = s.boot(mac);
    s.server_input(mac, Input::DhcpSeen);
    s.server_input(mac, Input::Hello { boot_id: b });
    assert_eq!(s.l.servers[&mac].state.name(), "enrolling");
    s.run(|w| {
        let mut r = w.server(mac).unwrap();
        r.cert_serial = Some("abcd".into());
        w.put_server(r);
        w.step_server(mac, &Input::Enrolled { boot_id: b }).unwrap();
    });
    let (_, tx) = s.run(|w| leases::release(w, g.id, "released by tenant", false).unwrap());
    assert!(
        tx.revocations.is_empty(),
        "the agent keeps its certificate to wipe"
    );
    assert_eq!(s.state(g.id), LeaseState::Releasing);
    assert_eq!(s.l.servers[&mac].state.name(), "releasing");
    s.server_input(mac, Input::WipeStarted { boot_id: b });
    s.server_input(mac, Input::Wiped { boot_id: b });
    assert!(
        s.l.revoked.contains("abcd"),
        "revoked once the server left the lease"
    );
    assert_eq!(s.l.servers[&mac].state, ServerState::Idle);
    assert_eq!(s.l.servers[&mac].lease, None);
    assert_eq!(s.state(g.id), LeaseState::Ended);
    assert!(s.l.leases[&g.id].ended_ms.is_some());
}

#[test]
fn a_reboot_revokes_the_dead_agents_certificate_and_the_wipe_boot_reports_without_one() {
    let mut s = Sim::new(1);
    let g = s.create(1, false, false).unwrap();
    let mac = s.l.leases[&g.id].servers[0];
    let b = s.boot(mac);
    s.server_input(mac, Input::DhcpSeen);
    s.server_input(mac, Input::Hello { boot_id: b });
    s.run(|w| {
        let mut r = w.server(mac).unwrap();
        r.cert_serial = Some("abcd".into());
        w.put_server(r);
        w.step_server(mac, &Input::Enrolled { boot_id: b }).unwrap();
    });
    for phase in [AgentPhase::Tunnel, AgentPhase::Transfer] {
        s.server_input(mac, Input::PhaseDone { boot_id: b, phase });
    }
    assert_eq!(s.state(g.id), LeaseState::Active);
    let b2 = BootId::from_random(0xb2);
    s.server_input(mac, Input::Rebooted { boot_id: b2 });
    assert_eq!(
        s.l.servers[&mac].state,
        ServerState::Booting { boot_id: b2 }
    );
    assert_eq!(s.l.servers[&mac].cert_serial, None);
    assert!(
        s.l.revoked.contains("abcd"),
        "the old agent's certificate is revoked"
    );
    assert_eq!(s.state(g.id), LeaseState::Active, "the lease stays active");
    // Released while the tenant OS runs, then power-cycled for the wipe.
    s.run(|w| {
        let mut r = w.server(mac).unwrap();
        r.cert_serial = Some("ef01".into());
        r.state = ServerState::Running { boot_id: b2 };
        w.put_server(r);
    });
    s.run(|w| leases::release(w, g.id, "released by tenant", false).unwrap());
    let b3 = BootId::from_random(0xb3);
    s.server_input(mac, Input::Rebooted { boot_id: b3 });
    assert_eq!(
        s.l.servers[&mac].state,
        ServerState::Releasing { boot_id: Some(b3) }
    );
    assert!(s.l.revoked.contains("ef01"));
    s.server_input(mac, Input::WipeStarted { boot_id: b3 });
    s.server_input(mac, Input::Wiped { boot_id: b3 });
    assert_eq!(s.l.servers[&mac].state, ServerState::Idle);
    assert_eq!(s.state(g.id), LeaseState::Ended);
}

#[test]
fn unreachable_server_fails_the_lease_and_returns_the_others() {
    let mut s = Sim::new(2);
    let g = s.create(2, false, false).unwrap();
    let (a, b) = (s.l.leases[&g.id].servers[0], s.l.leases[&g.id].servers[1]);
    let boot = s.boot(a);
    s.server_input(
        a,
        Input::WakeExhausted {
            boot_id: boot,
            attempts: 3,
        },
    );
    let lease = &s.l.leases[&g.id];
    assert_eq!(lease.state, LeaseState::Failed, "{lease:?}");
    assert!(lease.reason.as_deref().unwrap().contains("unreachable"));
    assert_eq!(s.l.servers[&a].state.name(), "unreachable");
    assert_eq!(s.l.servers[&a].lease, None);
    assert_eq!(s.l.servers[&b].state, ServerState::Idle);
}

#[test]
fn expiry_renewal_and_release_timeout() {
    let mut s = Sim::new(1);
    let g = s.create(1, false, false).unwrap();
    let mac = s.l.leases[&g.id].servers[0];
    let b = s.boot(mac);
    s.server_input(mac, Input::DhcpSeen);
    s.server_input(mac, Input::Hello { boot_id: b });
    let ends = s
        .run(|w| leases::renew(w, g.id, 60, Limits::default()))
        .0
        .unwrap();
    assert_eq!(ends, 1_000 + 3_660_000);
    assert!(matches!(
        s.run(|w| leases::renew(w, g.id, 100 * 24 * 3600, Limits::default()))
            .0,
        Err(LeaseRefusal::Invalid {
            field: "duration_s",
            ..
        })
    ));
    s.now = ends - 1;
    assert!(s.run(|w| leases::expire_due(w).unwrap()).0.is_empty());
    s.now = ends;
    assert_eq!(s.run(|w| leases::expire_due(w).unwrap()).0, vec![g.id]);
    assert_eq!(s.state(g.id), LeaseState::Releasing);
    s.now += 119_000;
    s.run(|w| leases::release_timeouts(w, 120).unwrap());
    assert_eq!(s.l.servers[&mac].state.name(), "releasing");
    s.now += 1_000;
    s.run(|w| leases::release_timeouts(w, 120).unwrap());
    assert_eq!(s.l.servers[&mac].state.name(), "quarantined");
    assert_eq!(s.state(g.id), LeaseState::Ended);
    // A quarantined server is not handed out again.
    assert!(s.create(1, false, false).is_err());
}

#[test]
fn bad_requests_name_the_field() {
    let mut s = Sim::new(1);
    let mut req = CreateLease {
        count: 0,
        duration_s: 3600,
        allow_partial: false,
        queue: false,
        tunnel: Tunnel::Wireguard,
        role: None,
        image: None,
        gateway: None,
    };
    let mut check = |req: &CreateLease, field: &str| {
        let e = s
            .run(|w| leases::create(w, &acme(), req, Limits::default()))
            .0
            .unwrap_err();
        assert!(
            matches!(&e, LeaseRefusal::Invalid { field: f, .. } if *f == field),
            "{e}"
        );
    };
    check(&req, "count");
    req.count = 1;
    req.duration_s = 1;
    check(&req, "duration_s");
    req.duration_s = 3600;
    req.role = Some("a b".into());
    check(&req, "role");
    req.role = None;
    req.image = Some("x".repeat(129));
    check(&req, "image");
    let unknown: Name = "initech".parse().unwrap();
    req.image = None;
    assert!(matches!(
        s.run(|w| leases::create(w, &unknown, &req, Limits::default()))
            .0,
        Err(LeaseRefusal::UnknownTenant(_))
    ));
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        count: u32,
        queue: bool,
        partial: bool,
    },
    Release(usize),
    Server(u8, u8),
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u32..5, any::<bool>(), any::<bool>()).prop_map(|(count, queue, partial)| Op::Create {
            count,
            queue,
            partial
        }),
        (0usize..8).prop_map(Op::Release),
        (0u8..6, 0u8..8).prop_map(|(s, i)| Op::Server(s, i)),
        (1u64..200_000).prop_map(Op::Tick),
    ]
}

proptest! {
    /// Whatever happens, in any order: no server is ever in two leases, leases and servers
    /// agree on who holds whom (`Ledger::check` after every transaction), and a server given
    /// to a lease was idle and unleased right before.
    #[test]
    fn ledger_invariants_hold(ops in proptest::collection::vec(op(), 1..60)) {
        let mut s = Sim::new(6);
        let mut ids: Vec<LeaseId> = vec![];
        for op in ops {
            match op {
                Op::Create { count, queue, partial } => {
                    let before = s.l.clone();
                    if let Ok(g) = s.create(count, queue, partial) {
                        ids.push(g.id);
                        for m in &s.l.leases[&g.id].servers {
                            prop_assert_eq!(&before.servers[m].state, &ServerState::Idle);
                            prop_assert_eq!(before.servers[m].lease, None);
                        }
                    }
                }
                Op::Release(i) => {
                    if let Some(id) = ids.get(i).copied() {
                        s.run(|w| { let _ = leases::release(w, id, "test", false); });
                    }
                }
                Op::Server(n, i) => {
                    let mac = MacAddr([2, 0, 0, 0, 0, n]);
                    let b = s.l.servers[&mac].state.boot_id().unwrap_or(BootId::from_random(7));
                    let input = match i {
                        0 => Input::DhcpSeen,
                        1 => Input::Hello { boot_id: b },
                        2 => Input::Enrolled { boot_id: b },
                        3 => Input::WakeExhausted { boot_id: b, attempts: 3 },
                        4 => Input::AgentGaveUp { boot_id: b, reason: "x".into() },
                        5 => Input::WipeStarted { boot_id: b },
                        6 => Input::Wiped { boot_id: b },
                        _ => Input::Reset,
                    };
                    // Reset is the operator's; the shell refuses it for leased servers.
                    if matches!(input, Input::Reset) && s.l.servers[&mac].lease.is_some() {
                        continue;
                    }
                    s.run(|w| {
                        if let Ok(Some(_)) = w.step_server(mac, &input) {
                            leases::server_changed(w, mac).unwrap();
                        }
                    });
                }
                Op::Tick(ms) => {
                    s.now += ms;
                    s.run(|w| {
                        leases::expire_due(w).unwrap();
                        leases::release_timeouts(w, 120).unwrap();
                    });
                }
            }
        }
    }
}
