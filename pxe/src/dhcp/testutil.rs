//! Test helpers: a lab-like config (10.77.0.0/24 served directly, 10.78.0.0/24 through a
//! relay), request builders and gates. Test-only; no IO.

use std::net::Ipv4Addr;

use dhcproto::v4;
use lm_api::{BootId, MacAddr};

use crate::gate::{Gate, HostBoot};

use super::config::{DhcpSection, PoolSection, SubnetSection};
use super::decision::{Decision, ReplyKind, RequestContext};
use super::engine::Engine;
use super::table::LeaseTable;
use super::validate::DhcpConfig;

pub(crate) const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub(crate) const RELAY: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);

pub(crate) fn mac(n: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, 0, n])
}

pub(crate) fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub(crate) fn section_with_pool(start: &str, end: &str) -> DhcpSection {
    let mut s = DhcpSection::single_subnet(
        SERVER,
        "10.77.0.0/24".parse().unwrap(),
        PoolSection {
            start: ip(start),
            end: ip(end),
        },
    );
    s.subnets[0].routers = vec![SERVER];
    s.subnets[0].dns_servers = vec![SERVER];
    s.subnets.push(SubnetSection {
        network: "10.78.0.0/24".parse().unwrap(),
        pools: vec![PoolSection {
            start: ip("10.78.0.100"),
            end: ip("10.78.0.199"),
        }],
        routers: vec![RELAY],
        dns_servers: vec![],
        domain_name: Some("relayed.lab".into()),
    });
    s
}

pub(crate) fn config_with_pool(start: &str, end: &str) -> DhcpConfig {
    DhcpConfig::from_section(&section_with_pool(start, end)).unwrap()
}

pub(crate) fn config() -> DhcpConfig {
    config_with_pool("10.77.0.100", "10.77.0.199")
}

pub(crate) fn ctx() -> RequestContext {
    RequestContext {
        interface_addr: SERVER,
    }
}

pub(crate) fn open() -> Gate {
    Gate::Open(HostBoot {
        name: "vm".into(),
        reserved_ip: None,
        boot_id: BootId::from_random(7),
    })
}

pub(crate) fn open_reserved(addr: Ipv4Addr) -> Gate {
    Gate::Open(HostBoot {
        name: "vm".into(),
        reserved_ip: Some(addr),
        boot_id: BootId::from_random(7),
    })
}

/// A request of type `t` from `mac(n)` with a fixed xid.
pub(crate) fn request_of(t: v4::MessageType, n: u8) -> v4::Message {
    let mut m = v4::Message::new_with_id(
        0x1000 + u32::from(n),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac(n).octets(),
    );
    m.opts_mut().insert(v4::DhcpOption::MessageType(t));
    m
}

pub(crate) fn discover(n: u8) -> v4::Message {
    request_of(v4::MessageType::Discover, n)
}

/// A SELECTING request for `addr` naming `server`.
pub(crate) fn select(n: u8, addr: Ipv4Addr, server: Ipv4Addr) -> v4::Message {
    let mut m = request_of(v4::MessageType::Request, n);
    m.opts_mut()
        .insert(v4::DhcpOption::RequestedIpAddress(addr));
    m.opts_mut()
        .insert(v4::DhcpOption::ServerIdentifier(server));
    m
}

/// Encodes a message for the byte-level tests.
pub(crate) fn bytes(m: &v4::Message) -> Vec<u8> {
    super::wire::encode(m).unwrap()
}

/// An engine and its table, applying every decision like the shell.
pub(crate) struct Lab {
    pub(crate) engine: Engine,
    pub(crate) table: LeaseTable,
}

impl Lab {
    pub(crate) fn new() -> Self {
        Self {
            engine: Engine::new(config()),
            table: LeaseTable::new(),
        }
    }

    /// Handles `msg` and applies its changes, like the shell.
    pub(crate) fn run(&mut self, msg: &v4::Message, gate: &Gate, now: u64) -> Decision {
        let d = self.engine.handle(msg, &ctx(), gate, &self.table, now);
        for c in d.changes() {
            self.table.apply(c);
        }
        self.table.check_invariants();
        d
    }

    /// DISCOVER + SELECTING REQUEST for `mac(n)`; returns the bound address.
    pub(crate) fn bind(&mut self, n: u8, now: u64) -> Ipv4Addr {
        let offer = self.run(&discover(n), &open(), now);
        let addr = offer.reply().unwrap().message.yiaddr();
        let ack = self.run(&select(n, addr, SERVER), &open(), now);
        assert_eq!(ack.reply().unwrap().kind, ReplyKind::Ack);
        addr
    }
}

/// A pool address different from `a`.
pub(crate) fn other_than(a: Ipv4Addr) -> Ipv4Addr {
    if a == ip("10.77.0.199") {
        ip("10.77.0.198")
    } else {
        ip("10.77.0.199")
    }
}

pub(crate) fn opt(d: &Decision, code: v4::OptionCode) -> Option<&v4::DhcpOption> {
    d.reply().and_then(|r| r.message.opts().get(code))
}
