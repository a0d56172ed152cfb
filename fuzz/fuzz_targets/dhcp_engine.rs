//! Fuzz target: arbitrary bytes -> `pxe::dhcp::wire::decode` -> `Engine::handle` over a table
//! with a few leases (bound, expired, declined, an offer hold), under a gate and a clock drawn
//! from the input; the decision's changes are applied to a copy of the table and its reply is
//! encoded. None of it may panic. No IO.

#![no_main]

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use lm_api::{BootId, MacAddr};
use pxe::dhcp::{
    DhcpConfig, DhcpSection, Engine, Lease, LeaseChange, LeaseState, LeaseTable, OfferHold,
    PoolSection, RequestContext, ReservationSection, wire,
};
use pxe::{Gate, HostBoot};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

struct Fixture {
    engine: Engine,
    table: LeaseTable,
}

fn mac(n: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, 0, n])
}

fn lease(n: u8, last: u8, expires_at: u64, state: LeaseState) -> Lease {
    Lease {
        mac: mac(n),
        address: Ipv4Addr::new(10, 77, 0, last),
        expires_at,
        state,
        hostname: None,
        client_id: None,
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut s = DhcpSection::single_subnet(
            SERVER,
            "10.77.0.0/24".parse().expect("static network"),
            PoolSection {
                start: Ipv4Addr::new(10, 77, 0, 100),
                end: Ipv4Addr::new(10, 77, 0, 107),
            },
        );
        s.reservations.push(ReservationSection {
            mac: mac(9),
            address: Ipv4Addr::new(10, 77, 0, 9),
        });
        let cfg = DhcpConfig::from_section(&s).expect("the static fuzz config is valid");
        let mut table = LeaseTable::from_leases([
            lease(1, 100, 5_000, LeaseState::Bound),
            lease(2, 101, 500, LeaseState::Bound),
            lease(3, 102, 3_000, LeaseState::Declined),
        ]);
        table.apply(&LeaseChange::Hold(OfferHold {
            mac: mac(4),
            address: Ipv4Addr::new(10, 77, 0, 103),
            until: 1_030,
        }));
        Fixture {
            engine: Engine::new(cfg),
            table,
        }
    })
}

fn gate(selector: u8) -> Gate {
    let host = |reserved_ip| HostBoot {
        name: "fuzz".into(),
        reserved_ip,
        boot_id: BootId::from_random(1),
    };
    match selector % 5 {
        0 => Gate::Unknown,
        1 => Gate::Closed {
            name: "fuzz".into(),
            reason: "idle".into(),
        },
        2 => Gate::Open(host(Some(Ipv4Addr::new(10, 77, 0, 100)))),
        3 => Gate::Open(host(Some(Ipv4Addr::new(192, 168, 0, 1)))),
        _ => Gate::Open(host(None)),
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Ok(msg) = wire::decode(data) else { return };
    let selector = data.get(4).copied().unwrap_or(0);
    let now = 1_000 + u64::from(data.get(5).copied().unwrap_or(0)) * 40;
    let ctx = RequestContext {
        interface_addr: SERVER,
    };
    let decision = f.engine.handle(&msg, &ctx, &gate(selector), &f.table, now);
    let mut table = f.table.clone();
    for change in decision.changes() {
        table.apply(change);
    }
    if let Some(reply) = decision.reply() {
        let _ = wire::encode(&reply.message);
    }
});
