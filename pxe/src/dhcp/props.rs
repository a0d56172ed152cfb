//! Property tests of the engine over random message sequences from many MACs, with time
//! advancing: (a) no address is ever held by two MACs at once (as the clients see it: ACKs and
//! OFFERs), (b) no ACK without the lease change that binds it in the same decision (and no
//! bound lease without an ACK). Test-only; no IO.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use dhcproto::v4;
use lm_api::MacAddr;
use proptest::prelude::*;

use super::engine::Engine;
use super::lease::LeaseState;
use super::table::{LeaseChange, LeaseTable};
use super::testutil::*;
use super::{Action, Decision, DhcpConfig, ReplyKind};

const MACS: u8 = 8;
const LEASE: u64 = 120;

fn small_config() -> DhcpConfig {
    let mut s = section_with_pool("10.77.0.100", "10.77.0.105");
    s.lease_time_secs = LEASE as u32;
    s.offer_hold_secs = 30;
    s.decline_quarantine_secs = 200;
    DhcpConfig::from_section(&s).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Discover(u8),
    /// SELECTING: the last offer to this MAC (when `own`) or a random address.
    Select {
        m: u8,
        own: bool,
        addr: u8,
        foreign_server: bool,
    },
    InitReboot {
        m: u8,
        addr: u8,
    },
    Renew {
        m: u8,
        addr: u8,
        relayed: bool,
    },
    Release {
        m: u8,
        addr: u8,
    },
    Decline {
        m: u8,
        addr: u8,
    },
    Inform(u8),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let m = 0..MACS;
    let a = 95u8..110; // a few addresses outside the pool too
    prop_oneof![
        5 => m.clone().prop_map(Op::Discover),
        5 => (m.clone(), any::<bool>(), a.clone(), proptest::bool::weighted(0.1))
            .prop_map(|(m, own, addr, foreign_server)| Op::Select { m, own, addr, foreign_server }),
        2 => (m.clone(), a.clone()).prop_map(|(m, addr)| Op::InitReboot { m, addr }),
        2 => (m.clone(), a.clone(), any::<bool>()).prop_map(|(m, addr, relayed)| Op::Renew { m, addr, relayed }),
        1 => (m.clone(), a.clone()).prop_map(|(m, addr)| Op::Release { m, addr }),
        1 => (m.clone(), a.clone()).prop_map(|(m, addr)| Op::Decline { m, addr }),
        1 => m.clone().prop_map(Op::Inform),
        3 => (0u64..150).prop_map(Op::Advance),
    ]
}

fn addr(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, last)
}

/// What the clients believe, checked against every decision.
#[derive(Default)]
struct Oracle {
    /// addr -> (mac, until) from ACKs.
    owner: HashMap<Ipv4Addr, (MacAddr, u64)>,
    /// addr -> (mac, until) from OFFERs.
    offer: HashMap<Ipv4Addr, (MacAddr, u64)>,
    last_offer: HashMap<MacAddr, Ipv4Addr>,
}

impl Oracle {
    fn forget(&mut self, m: MacAddr) {
        self.owner.retain(|_, (o, _)| *o != m);
        self.offer.retain(|_, (o, _)| *o != m);
    }

    fn check(&mut self, d: &Decision, now: u64) -> Result<(), TestCaseError> {
        let Some(m) = d.mac else { return Ok(()) };
        let puts: Vec<_> = d
            .changes()
            .iter()
            .filter_map(|c| match c {
                LeaseChange::Put(l) if l.state == LeaseState::Bound => Some(l),
                _ => None,
            })
            .collect();
        match &d.action {
            Action::Reply { reply, changes } => {
                let a = reply.message.yiaddr();
                match reply.kind {
                    ReplyKind::Ack => {
                        // (b) the ACK carries the lease that makes it true.
                        prop_assert_eq!(
                            puts.len(),
                            1,
                            "ACK without exactly one bound lease: {:?}",
                            changes
                        );
                        let l = puts[0];
                        prop_assert_eq!((l.mac, l.address, l.expires_at), (m, a, now + LEASE));
                        // (a) nobody else holds it.
                        for held in [self.owner.get(&a), self.offer.get(&a)]
                            .into_iter()
                            .flatten()
                        {
                            prop_assert!(
                                held.0 == m || held.1 <= now,
                                "{} ACKed to {} while {} holds it until {}",
                                a,
                                m,
                                held.0,
                                held.1
                            );
                        }
                        self.forget(m);
                        self.owner.insert(a, (m, now + LEASE));
                    }
                    ReplyKind::Offer => {
                        prop_assert!(puts.is_empty());
                        prop_assert!(
                            matches!(changes.as_slice(), [LeaseChange::Hold(h)] if h.address == a && h.mac == m)
                        );
                        for held in [self.owner.get(&a), self.offer.get(&a)]
                            .into_iter()
                            .flatten()
                        {
                            prop_assert!(
                                held.0 == m || held.1 <= now,
                                "{} offered to {} while {} holds it until {}",
                                a,
                                m,
                                held.0,
                                held.1
                            );
                        }
                        self.offer.retain(|_, (o, _)| *o != m);
                        self.offer.insert(a, (m, now + 30));
                        self.last_offer.insert(m, a);
                    }
                    ReplyKind::Nak | ReplyKind::InformAck => {
                        prop_assert!(
                            changes.is_empty(),
                            "{:?} with changes {:?}",
                            reply.kind,
                            changes
                        );
                        if reply.kind == ReplyKind::Nak {
                            self.owner.retain(|_, (o, _)| *o != m);
                        }
                    }
                }
            }
            Action::Update { changes } => {
                prop_assert!(
                    puts.is_empty(),
                    "a bound lease without an ACK: {:?}",
                    changes
                );
                for c in changes {
                    let a = match c {
                        LeaseChange::Remove { address, .. } => *address,
                        LeaseChange::Put(l) => l.address,
                        LeaseChange::Hold(_) => {
                            return Err(TestCaseError::fail("hold without an offer"));
                        }
                    };
                    self.owner.remove(&a);
                    self.offer.remove(&a);
                }
            }
            Action::Silent(_) => {}
        }
        Ok(())
    }
}

fn message(op: &Op, oracle: &Oracle) -> Option<v4::Message> {
    Some(match *op {
        Op::Discover(m) => discover(m),
        Op::Select {
            m,
            own,
            addr: a,
            foreign_server,
        } => {
            let target = if own {
                oracle.last_offer.get(&mac(m)).copied().unwrap_or(addr(a))
            } else {
                addr(a)
            };
            select(
                m,
                target,
                if foreign_server {
                    ip("10.77.0.2")
                } else {
                    SERVER
                },
            )
        }
        Op::InitReboot { m, addr: a } => {
            let mut r = request_of(v4::MessageType::Request, m);
            r.opts_mut()
                .insert(v4::DhcpOption::RequestedIpAddress(addr(a)));
            r
        }
        Op::Renew {
            m,
            addr: a,
            relayed,
        } => {
            let mut r = request_of(v4::MessageType::Request, m);
            r.set_ciaddr(addr(a));
            if relayed {
                r.set_giaddr(RELAY);
            }
            r
        }
        Op::Release { m, addr: a } => {
            let mut r = request_of(v4::MessageType::Release, m);
            r.set_ciaddr(addr(a));
            r
        }
        Op::Decline { m, addr: a } => {
            let mut r = request_of(v4::MessageType::Decline, m);
            r.opts_mut()
                .insert(v4::DhcpOption::RequestedIpAddress(addr(a)));
            r
        }
        Op::Inform(m) => {
            let mut r = request_of(v4::MessageType::Inform, m);
            r.set_ciaddr(addr(50));
            r
        }
        Op::Advance(_) => return None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn no_address_is_held_twice_and_no_ack_without_its_lease(ops in proptest::collection::vec(op(), 1..250)) {
        let engine = Engine::new(small_config());
        let mut table = LeaseTable::new();
        let mut oracle = Oracle::default();
        let mut now = 1_000u64;
        for op in &ops {
            if let Op::Advance(s) = op {
                now += s;
                if s % 7 == 0 {
                    table.prune(now);
                }
                continue;
            }
            let Some(msg) = message(op, &oracle) else { continue };
            let d = engine.handle(&msg, &ctx(), &open(), &table, now);
            oracle.check(&d, now)?;
            for c in d.changes() {
                table.apply(c);
            }
            table.check_invariants();
            // The table agrees: at most one unexpired bound lease per address by construction,
            // and no MAC has two.
            let mut per_mac: HashMap<MacAddr, usize> = HashMap::new();
            for l in table.leases().filter(|l| l.state == LeaseState::Bound && l.is_active(now)) {
                *per_mac.entry(l.mac).or_default() += 1;
            }
            prop_assert!(per_mac.values().all(|n| *n == 1), "{:?}", per_mac);
        }
    }
}
