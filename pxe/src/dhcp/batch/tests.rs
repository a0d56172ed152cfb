//! Group commit without sockets: one flush per batch, no ACK before its lease is durable,
//! no ACK at all when the store fails, and the event rule.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};

use dhcproto::v4;
use lm_api::{BootEvent, EventKind, MacAddr};
use proptest::prelude::*;

use super::*;
use crate::dhcp::lease::{Lease, LeaseState, MemoryLeaseStore};
use crate::dhcp::testutil::*;
use crate::gate::{HostBoot, RecordingSink, StaticDirectory};

struct Rig {
    batcher: Batcher,
    store: Arc<MemoryLeaseStore>,
    sink: Arc<RecordingSink>,
}

fn rig_with(store: MemoryLeaseStore, hosts: HashMap<MacAddr, Gate>, default_open: bool) -> Rig {
    let store = Arc::new(store);
    let sink = Arc::new(RecordingSink::default());
    let default = default_open.then(|| HostBoot {
        name: "bench".into(),
        reserved_ip: None,
        boot_id: lm_api::BootId::from_random(1),
    });
    let table = LeaseTable::from_leases(store.load_all().unwrap());
    let batcher = Batcher {
        engine: Engine::new(config()),
        table: Arc::new(RwLock::new(table)),
        store: store.clone(),
        directory: Arc::new(StaticDirectory { hosts, default }),
        sink: sink.clone(),
        ctx: ctx(),
        next_prune: 0,
    };
    Rig {
        batcher,
        store,
        sink,
    }
}

fn rig() -> Rig {
    rig_with(MemoryLeaseStore::default(), HashMap::new(), true)
}

impl Rig {
    fn run(&mut self, msgs: &[v4::Message], now: u64) -> Vec<(ReplyKind, v4::Message)> {
        let raw: Vec<Vec<u8>> = msgs.iter().map(bytes).collect();
        let out = self.batcher.process(raw.iter().map(Vec::as_slice), now);
        out.into_iter()
            .map(|o| (o.kind, crate::dhcp::wire::decode(&o.bytes).unwrap()))
            .collect()
    }

    fn offers(&mut self, macs: &[u8], now: u64) -> Vec<Ipv4Addr> {
        let msgs: Vec<_> = macs.iter().map(|n| discover(*n)).collect();
        self.run(&msgs, now)
            .iter()
            .map(|(_, m)| m.yiaddr())
            .collect()
    }
}

#[test]
fn one_flush_per_batch_and_acks_only_for_durable_leases() {
    let mut rig = rig();
    let offered = rig.offers(&[1, 2, 3], 100);
    assert_eq!(offered.len(), 3);
    assert!(
        offered[0] != offered[1] && offered[1] != offered[2] && offered[0] != offered[2],
        "one batch, distinct offers"
    );
    assert_eq!(rig.store.flush_count(), 0, "offers need no flush");
    let reqs: Vec<_> = (1..=3)
        .zip(&offered)
        .map(|(n, a)| select(n, *a, SERVER))
        .collect();
    let acks = rig.run(&reqs, 101);
    assert_eq!(acks.len(), 3);
    assert_eq!(
        rig.store.flush_count(),
        1,
        "group commit: one flush for the batch"
    );
    let durable = rig.store.durable();
    for (kind, m) in &acks {
        assert_eq!(*kind, ReplyKind::Ack);
        let lease = durable.get(&m.yiaddr()).expect("ACKed lease is durable");
        assert_eq!(lease.mac, MacAddr::from_slice(m.chaddr()).unwrap());
    }
}

#[test]
fn a_failing_store_stops_every_ack_of_the_batch_but_not_offers() {
    let mut rig = rig();
    let a = rig.offers(&[1], 0)[0];
    rig.store.fail_flushes(true);
    let out = rig.run(
        &[
            select(1, a, SERVER),
            discover(2),
            request_of(v4::MessageType::Inform, 3),
        ],
        1,
    );
    let kinds: Vec<_> = out.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, vec![ReplyKind::Offer, ReplyKind::InformAck]);
    assert!(rig.store.durable().is_empty());
    rig.store.fail_flushes(false);
    rig.store.fail_puts(true);
    assert!(
        rig.run(&[select(1, a, SERVER)], 2).is_empty(),
        "put failures hold the ACK back too"
    );
    rig.store.fail_puts(false);
    let out = rig.run(&[select(1, a, SERVER)], 3);
    assert_eq!(
        out.first().map(|(k, _)| *k),
        Some(ReplyKind::Ack),
        "the retry is ACKed once the store works"
    );
    assert!(rig.store.durable().contains_key(&a));
    let events = rig.sink.events();
    let withheld = events.iter().filter(|e| matches!(&e.kind, EventKind::Dhcp { message, reply: None, .. } if message == "REQUEST")).count();
    assert_eq!(withheld, 2, "events say the ACK did not go out");
}

#[test]
fn event_rule_known_macs_only() {
    let hosts = HashMap::from([
        (mac(1), open()),
        (
            mac(2),
            Gate::Closed {
                name: "vm2".into(),
                reason: "idle".into(),
            },
        ),
    ]);
    let mut rig = rig_with(MemoryLeaseStore::default(), hosts, false);
    let mut pxe = discover(1);
    pxe.opts_mut().insert(v4::DhcpOption::ClassIdentifier(
        b"PXEClient:Arch:00000".to_vec(),
    ));
    pxe.opts_mut()
        .insert(v4::DhcpOption::ClientSystemArchitecture(0.into()));
    let out = rig.run(&[pxe, discover(2), discover(3)], 0);
    assert_eq!(out.len(), 1);
    let garbage = vec![0u8; 50];
    rig.batcher.process([garbage.as_slice()], 0);
    let events = rig.sink.events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[0],
        BootEvent {
            mac: mac(1),
            kind: EventKind::Dhcp {
                message: "DISCOVER".into(),
                client: "pxe-bios".into(),
                reply: Some("OFFER".into()),
                address: Some(out[0].1.yiaddr())
            }
        }
    );
    assert_eq!(
        events[1].kind,
        EventKind::Dhcp {
            message: "DISCOVER".into(),
            client: "other".into(),
            reply: None,
            address: None
        }
    );
}

#[test]
fn expired_leases_are_pruned_from_the_store() {
    let old = Lease {
        mac: mac(9),
        address: ip("10.77.0.150"),
        expires_at: 50,
        state: LeaseState::Bound,
        hostname: None,
        client_id: None,
    };
    let live = Lease {
        mac: mac(8),
        expires_at: 5000,
        address: ip("10.77.0.151"),
        ..old.clone()
    };
    let mut rig = rig_with(
        MemoryLeaseStore::with_leases([old, live]),
        HashMap::new(),
        true,
    );
    rig.batcher.next_prune = 100;
    rig.run(&[discover(1)], 99);
    assert_eq!(rig.store.durable().len(), 2);
    rig.run(&[discover(1)], 100);
    assert_eq!(
        rig.store.durable().keys().copied().collect::<Vec<_>>(),
        vec![ip("10.77.0.151")]
    );
    assert_eq!(rig.batcher.next_prune, 100 + PRUNE_INTERVAL_SECS);
}

#[derive(Debug, Clone)]
enum Step {
    Discover(u8),
    Select(u8),
    FailStore(bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..6).prop_map(Step::Discover),
        4 => (0u8..6).prop_map(Step::Select),
        1 => any::<bool>().prop_map(Step::FailStore),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Property (c): when the store fails, the shell sends no ACK; when it works, every ACK's
    /// lease is durable before the batch's replies are released.
    #[test]
    fn no_ack_without_a_durable_lease(batches in proptest::collection::vec(proptest::collection::vec(step(), 1..8), 1..12)) {
        let mut rig = rig();
        let mut offered: HashMap<u8, Ipv4Addr> = HashMap::new();
        for (t, batch) in batches.into_iter().enumerate() {
            let mut msgs = vec![];
            let mut failing = false;
            for s in batch {
                match s {
                    Step::Discover(n) => msgs.push(discover(n)),
                    Step::Select(n) => msgs.push(select(n, offered.get(&n).copied().unwrap_or(ip("10.77.0.100")), SERVER)),
                    Step::FailStore(f) => failing = f,
                }
            }
            rig.store.fail_flushes(failing);
            let out = rig.run(&msgs, t as u64);
            let durable = rig.store.durable();
            for (kind, m) in out {
                let who = MacAddr::from_slice(m.chaddr()).unwrap();
                match kind {
                    ReplyKind::Offer => { offered.insert(who.octets()[5], m.yiaddr()); }
                    ReplyKind::Ack => {
                        prop_assert!(!failing, "ACK sent while the store fails");
                        let l = durable.get(&m.yiaddr());
                        prop_assert!(l.is_some_and(|l| l.mac == who && l.state == LeaseState::Bound), "ACK without a durable lease");
                    }
                    _ => {}
                }
            }
        }
    }
}
