//! Two-party tests: a small DHCP client simulator (RFC 2131 client states, reading T1/T2 and
//! the lease time from the replies) talks to the engine through encoded bytes, with a fake
//! clock. Test-only; no IO.

use std::net::Ipv4Addr;

use dhcproto::v4;

use super::engine::Engine;
use super::table::LeaseTable;
use super::testutil::*;
use super::wire;
use super::{DhcpConfig, ReplyKind};
use crate::gate::Gate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Init,
    Selecting,
    Requesting {
        addr: Ipv4Addr,
        server: Ipv4Addr,
    },
    Bound {
        addr: Ipv4Addr,
        t1: u64,
        t2: u64,
        expiry: u64,
    },
}

/// One simulated client.
struct Client {
    n: u8,
    xid: u32,
    state: State,
    vendor: Option<&'static [u8]>,
    user_class: Option<&'static [u8]>,
    last_file: Option<Vec<u8>>,
}

impl Client {
    fn new(n: u8) -> Self {
        Self {
            n,
            xid: u32::from(n) << 16,
            state: State::Init,
            vendor: None,
            user_class: None,
            last_file: None,
        }
    }

    fn msg(&mut self, t: v4::MessageType) -> v4::Message {
        self.xid = self.xid.wrapping_add(1);
        let mut m = request_of(t, self.n);
        m.set_xid(self.xid);
        if let Some(v) = self.vendor {
            m.opts_mut()
                .insert(v4::DhcpOption::ClassIdentifier(v.to_vec()));
            m.opts_mut()
                .insert(v4::DhcpOption::ClientSystemArchitecture(0.into()));
        }
        if let Some(u) = self.user_class {
            m.opts_mut().insert(v4::DhcpOption::UserClass(u.to_vec()));
        }
        m
    }

    fn discover(&mut self) -> v4::Message {
        self.state = State::Selecting;
        self.msg(v4::MessageType::Discover)
    }

    fn request(&mut self) -> v4::Message {
        let State::Requesting { addr, server } = self.state else {
            panic!("request in {:?}", self.state)
        };
        let mut m = self.msg(v4::MessageType::Request);
        m.opts_mut()
            .insert(v4::DhcpOption::RequestedIpAddress(addr));
        m.opts_mut()
            .insert(v4::DhcpOption::ServerIdentifier(server));
        m
    }

    fn bound_addr(&self) -> Option<Ipv4Addr> {
        match self.state {
            State::Bound { addr, .. } => Some(addr),
            _ => None,
        }
    }

    /// RENEWING and REBINDING look the same to the server: ciaddr, no 50, no 54.
    fn renew(&mut self) -> v4::Message {
        let addr = self.bound_addr().expect("bound");
        let mut m = self.msg(v4::MessageType::Request);
        m.set_ciaddr(addr);
        m
    }

    fn init_reboot(&mut self, addr: Ipv4Addr) -> v4::Message {
        let mut m = self.msg(v4::MessageType::Request);
        m.opts_mut()
            .insert(v4::DhcpOption::RequestedIpAddress(addr));
        self.state = State::Requesting {
            addr,
            server: Ipv4Addr::UNSPECIFIED,
        };
        m
    }

    fn release(&mut self) -> v4::Message {
        let mut m = self.renew();
        m.opts_mut()
            .insert(v4::DhcpOption::MessageType(v4::MessageType::Release));
        m.opts_mut()
            .insert(v4::DhcpOption::ServerIdentifier(SERVER));
        self.state = State::Init;
        m
    }

    fn decline(&mut self) -> v4::Message {
        let addr = self.bound_addr().expect("bound");
        let mut m = self.msg(v4::MessageType::Decline);
        m.opts_mut()
            .insert(v4::DhcpOption::RequestedIpAddress(addr));
        m.opts_mut()
            .insert(v4::DhcpOption::ServerIdentifier(SERVER));
        self.state = State::Init;
        m
    }

    fn secs(m: &v4::Message, code: v4::OptionCode) -> u64 {
        match m.opts().get(code) {
            Some(
                v4::DhcpOption::AddressLeaseTime(s)
                | v4::DhcpOption::Renewal(s)
                | v4::DhcpOption::Rebinding(s),
            ) => u64::from(*s),
            other => panic!("no {code:?} in reply: {other:?}"),
        }
    }

    /// Takes a reply the way a client does: xid and chaddr must match.
    fn on_reply(&mut self, m: &v4::Message, now: u64) {
        assert_eq!(m.opcode(), v4::Opcode::BootReply);
        assert_eq!((m.xid(), m.chaddr()), (self.xid, &mac(self.n).octets()[..]));
        // dhcproto keeps the NUL that ends the field; a client reads up to it.
        self.last_file = m
            .fname()
            .and_then(|f| f.split(|b| *b == 0).next())
            .map(<[u8]>::to_vec);
        match (m.opts().msg_type(), self.state) {
            (Some(v4::MessageType::Offer), State::Selecting) => {
                let server = match m.opts().get(v4::OptionCode::ServerIdentifier) {
                    Some(v4::DhcpOption::ServerIdentifier(s)) => *s,
                    _ => panic!("OFFER without server id"),
                };
                self.state = State::Requesting {
                    addr: m.yiaddr(),
                    server,
                };
            }
            (Some(v4::MessageType::Ack), State::Requesting { .. } | State::Bound { .. }) => {
                self.state = State::Bound {
                    addr: m.yiaddr(),
                    t1: now + Self::secs(m, v4::OptionCode::Renewal),
                    t2: now + Self::secs(m, v4::OptionCode::Rebinding),
                    expiry: now + Self::secs(m, v4::OptionCode::AddressLeaseTime),
                };
            }
            (Some(v4::MessageType::Nak), _) => self.state = State::Init,
            (t, s) => panic!("unexpected {t:?} in {s:?}"),
        }
    }
}

/// The server side: engine + table + clock, talking in bytes.
struct Net {
    engine: Engine,
    table: LeaseTable,
    now: u64,
}

impl Net {
    fn new(cfg: DhcpConfig) -> Self {
        Self {
            engine: Engine::new(cfg),
            table: LeaseTable::new(),
            now: 1_700_000_000,
        }
    }

    /// Sends `m` from `c`; delivers the reply, if any, and says what it was.
    fn send(&mut self, c: &mut Client, m: v4::Message) -> Option<ReplyKind> {
        let req = wire::decode(&wire::encode(&m).unwrap()).unwrap();
        let d = self
            .engine
            .handle(&req, &ctx(), &open(), &self.table, self.now);
        for ch in d.changes() {
            self.table.apply(ch);
        }
        self.table.check_invariants();
        let r = d.reply()?;
        let back = wire::decode(&wire::encode(&r.message).unwrap()).unwrap();
        c.on_reply(&back, self.now);
        Some(r.kind)
    }

    fn dora(&mut self, c: &mut Client) -> Option<Ipv4Addr> {
        let d = c.discover();
        self.send(c, d)?;
        let r = c.request();
        self.send(c, r)?;
        c.bound_addr()
    }
}

#[test]
fn dora_then_renew_at_t1_then_rebind_at_t2() {
    let mut net = Net::new(config());
    let mut c = Client::new(1);
    let addr = net.dora(&mut c).expect("bound");
    let State::Bound { t1, .. } = c.state else {
        unreachable!()
    };
    assert_eq!(t1, net.now + 1800);
    net.now = t1;
    let m = c.renew();
    assert_eq!(net.send(&mut c, m), Some(ReplyKind::Ack));
    let State::Bound { t2, expiry, .. } = c.state else {
        unreachable!()
    };
    assert_eq!(c.bound_addr(), Some(addr));
    assert_eq!(net.table.lease_at(addr).unwrap().expires_at, expiry);
    net.now = t2; // the renewal at T1 was lost; rebinding is broadcast, same fields
    let m = c.renew();
    assert_eq!(net.send(&mut c, m), Some(ReplyKind::Ack));
    assert_eq!(c.bound_addr(), Some(addr));
}

#[test]
fn an_expired_lease_goes_to_the_next_client() {
    let mut net = Net::new(config_with_pool("10.77.0.100", "10.77.0.100"));
    let (mut a, mut b) = (Client::new(1), Client::new(2));
    let addr = net.dora(&mut a).unwrap();
    let d = b.discover();
    assert_eq!(net.send(&mut b, d), None, "the only address is leased");
    let State::Bound { expiry, .. } = a.state else {
        unreachable!()
    };
    net.now = expiry;
    assert_eq!(net.dora(&mut b), Some(addr));
    let m = a.renew();
    assert_eq!(
        net.send(&mut a, m),
        Some(ReplyKind::Nak),
        "the late renewal is refused"
    );
    assert_eq!(a.state, State::Init);
}

#[test]
fn release_frees_the_address_at_once() {
    let mut net = Net::new(config_with_pool("10.77.0.100", "10.77.0.100"));
    let (mut a, mut b) = (Client::new(1), Client::new(2));
    let addr = net.dora(&mut a).unwrap();
    let m = a.release();
    assert_eq!(net.send(&mut a, m), None);
    assert_eq!(net.dora(&mut b), Some(addr));
}

#[test]
fn decline_sends_the_client_elsewhere_until_the_quarantine_ends() {
    let mut net = Net::new(config_with_pool("10.77.0.100", "10.77.0.101"));
    let mut a = Client::new(1);
    let first = net.dora(&mut a).unwrap();
    let m = a.decline();
    assert_eq!(net.send(&mut a, m), None);
    let second = net.dora(&mut a).unwrap();
    assert_ne!(first, second);
    let mut b = Client::new(2);
    let d = b.discover();
    assert_eq!(
        net.send(&mut b, d),
        None,
        "one address quarantined, the other leased"
    );
    net.now += 600;
    assert_eq!(net.dora(&mut b), Some(first));
}

#[test]
fn init_reboot_keeps_the_address_or_is_sent_back_to_discover() {
    let mut net = Net::new(config());
    let mut a = Client::new(1);
    let addr = net.dora(&mut a).unwrap();
    let m = a.init_reboot(addr);
    assert_eq!(net.send(&mut a, m), Some(ReplyKind::Ack));
    let m = a.init_reboot(Ipv4Addr::new(192, 168, 0, 7));
    assert_eq!(net.send(&mut a, m), Some(ReplyKind::Nak));
    assert_eq!(
        net.dora(&mut a),
        Some(addr),
        "back through DISCOVER to the same lease"
    );
}

#[test]
fn pxe_rom_then_ipxe_then_agent_share_one_address() {
    let mut net = Net::new(config());
    let mut c = Client::new(7);
    c.vendor = Some(b"PXEClient:Arch:00000:UNDI:002001");
    let addr = net.dora(&mut c).unwrap();
    assert_eq!(c.last_file.as_deref(), Some(&b"undionly.kpxe"[..]));
    c.user_class = Some(b"iPXE");
    assert_eq!(net.dora(&mut c), Some(addr));
    assert_eq!(
        c.last_file.as_deref(),
        Some(&b"http://10.77.0.1:8080/boot/52-54-00-00-00-07.ipxe"[..])
    );
    c.vendor = Some(b"lease-agent");
    c.user_class = None;
    assert_eq!(net.dora(&mut c), Some(addr));
    assert_eq!(c.last_file, None);
    assert_eq!(net.table.mac_for(addr, net.now), Some(mac(7)));
}

#[test]
fn many_clients_fill_the_pool_without_sharing() {
    let mut net = Net::new(config_with_pool("10.77.0.100", "10.77.0.139"));
    let mut clients: Vec<Client> = (1..=50).map(Client::new).collect();
    let mut seen = std::collections::HashSet::new();
    let mut bound = 0;
    for c in &mut clients {
        if let Some(a) = net.dora(c) {
            assert!(seen.insert(a), "{a} given twice");
            bound += 1;
        }
    }
    assert_eq!(bound, 40, "exactly the pool size");
    let gate = Gate::Unknown;
    let d = net
        .engine
        .handle(&discover(99), &ctx(), &gate, &net.table, net.now);
    assert!(d.reply().is_none());
}
