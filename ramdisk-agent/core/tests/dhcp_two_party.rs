//! Two-party tests: the agent's DHCP client machine against scripted DHCP servers, exchanging
//! whole Ethernet frames over an in-memory "wire" with a fake clock. No IO.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Duration;

use agent_core::dhcp_client::{DhcpClient, Handled, Lease, VENDOR_CLASS};
use agent_core::frame::{self, BROADCAST_MAC, UdpFrame};
use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use lm_api::MacAddr;

const CLIENT: MacAddr = MacAddr([0x52, 0x54, 0, 0xab, 0, 7]);

/// What a scripted server does with the n-th message it sees (0-based, per server).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Script {
    Answer,
    Drop,
    Nak,
    /// Answer, but first send a reply with a wrong xid and one for another client.
    Noise,
}

/// A minimal DHCP server with one address to give and a script per received message.
struct Server {
    id: Ipv4Addr,
    mac: MacAddr,
    offer: Ipv4Addr,
    script: Vec<Script>,
    seen: usize,
    log: Vec<(Duration, MessageType, u32)>,
}

impl Server {
    fn new(id: [u8; 4], offer: [u8; 4], script: &[Script]) -> Self {
        Self {
            id: id.into(),
            mac: MacAddr([2, 0, 0, 0, 0, id[3]]),
            offer: offer.into(),
            script: script.to_vec(),
            seen: 0,
            log: vec![],
        }
    }

    fn reply(&self, to: &Message, kind: MessageType, xid: u32, chaddr: &[u8]) -> Vec<u8> {
        let u = Ipv4Addr::UNSPECIFIED;
        let yiaddr = if kind == MessageType::Nak {
            u
        } else {
            self.offer
        };
        let mut m = Message::new_with_id(xid, u, yiaddr, self.id, u, chaddr);
        m.set_opcode(Opcode::BootReply);
        m.set_flags(to.flags());
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(kind));
        o.insert(DhcpOption::ServerIdentifier(self.id));
        if kind != MessageType::Nak {
            o.insert(DhcpOption::AddressLeaseTime(600));
            o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
            o.insert(DhcpOption::Router(vec![self.id]));
            o.insert(DhcpOption::DomainNameServer(vec![self.id]));
        }
        let payload = m.to_vec().unwrap();
        frame::build_udp(
            &UdpFrame {
                dst_mac: BROADCAST_MAC,
                src_mac: self.mac,
                src_ip: self.id,
                dst_ip: Ipv4Addr::BROADCAST,
                src_port: 67,
                dst_port: 68,
                payload: &payload,
            },
            0,
        )
        .unwrap()
    }

    /// Handles one frame from the wire; returns the frames it sends back.
    fn receive(&mut self, bytes: &[u8], now: Duration) -> Vec<Vec<u8>> {
        let udp = frame::parse_udp(bytes).unwrap();
        assert_eq!(
            (udp.src_port, udp.dst_port, udp.dst_mac),
            (68, 67, BROADCAST_MAC)
        );
        let m = Message::decode(&mut Decoder::new(udp.payload)).unwrap();
        // Every client message identifies the agent and asks for a broadcast reply.
        assert!(m.flags().broadcast());
        assert_eq!(m.chaddr(), &CLIENT.0);
        assert_eq!(
            m.opts().get(OptionCode::ClassIdentifier),
            Some(&DhcpOption::ClassIdentifier(VENDOR_CLASS.to_vec()))
        );
        let kind = m.opts().msg_type().unwrap();
        self.log.push((now, kind, m.xid()));
        let action = self
            .script
            .get(self.seen)
            .copied()
            .unwrap_or(Script::Answer);
        self.seen += 1;
        if kind == MessageType::Request {
            // RFC 2131 4.3.2: a REQUEST naming another server means "not you": stay silent.
            match m.opts().get(OptionCode::ServerIdentifier) {
                Some(DhcpOption::ServerIdentifier(id)) if *id == self.id => {}
                _ => return vec![],
            }
            assert_eq!(
                m.opts().get(OptionCode::RequestedIpAddress),
                Some(&DhcpOption::RequestedIpAddress(self.offer))
            );
        }
        let answer = match kind {
            MessageType::Discover => MessageType::Offer,
            MessageType::Request => MessageType::Ack,
            other => panic!("client sent {other:?}"),
        };
        match action {
            Script::Drop => vec![],
            Script::Nak if kind == MessageType::Request => {
                vec![self.reply(&m, MessageType::Nak, m.xid(), &CLIENT.0)]
            }
            Script::Noise => vec![
                self.reply(&m, answer, m.xid() ^ 1, &CLIENT.0),
                self.reply(&m, answer, m.xid(), &[2, 2, 2, 2, 2, 2]),
                self.reply(&m, answer, m.xid(), &CLIENT.0),
            ],
            _ => vec![self.reply(&m, answer, m.xid(), &CLIENT.0)],
        }
    }
}

/// xorshift64*, seeded: the test's source of "random" values.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Runs the client against the servers (every frame reaches every server, replies reach the
/// client in order) until it binds or `limit` passes. Returns the lease and when it was bound.
fn run(servers: &mut [Server], limit: Duration, seed: u64) -> Option<(Lease, Duration)> {
    let mut rng = Rng(seed);
    let mut now = Duration::from_secs(100);
    let mut client = DhcpClient::new(CLIENT, now);
    let mut to_client: VecDeque<Vec<u8>> = VecDeque::new();
    while now < limit {
        let mut outgoing = client
            .poll(now, rng.next())
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>();
        loop {
            for f in outgoing.drain(..) {
                for s in servers.iter_mut() {
                    to_client.extend(s.receive(&f, now));
                }
            }
            let Some(reply) = to_client.pop_front() else {
                break;
            };
            match client.handle_frame(&reply, now, rng.next()).unwrap() {
                Handled::Send(f) => outgoing.push(f),
                Handled::Bound(lease) => return Some((lease, now)),
                Handled::Ignored(_) | Handled::Restarted => {}
            }
        }
        now = client.next_wakeup().unwrap_or(limit).max(now);
    }
    None
}

fn kinds(s: &Server) -> Vec<MessageType> {
    s.log.iter().map(|(_, k, _)| *k).collect()
}

#[test]
fn clean_exchange_binds_at_once() {
    let mut servers = [Server::new([10, 77, 0, 1], [10, 77, 0, 50], &[])];
    let (lease, at) = run(&mut servers, Duration::from_secs(200), 1).unwrap();
    assert_eq!(at, Duration::from_secs(100));
    assert_eq!(lease.address, Ipv4Addr::new(10, 77, 0, 50));
    assert_eq!(lease.router, Some(Ipv4Addr::new(10, 77, 0, 1)));
    assert_eq!(lease.dns, vec![Ipv4Addr::new(10, 77, 0, 1)]);
    assert_eq!((lease.lease_secs, lease.t1, lease.t2), (600, 300, 525));
    assert_eq!(
        kinds(&servers[0]),
        vec![MessageType::Discover, MessageType::Request]
    );
    let xids: Vec<u32> = servers[0].log.iter().map(|l| l.2).collect();
    assert_eq!(xids[0], xids[1], "REQUEST keeps the DISCOVER's xid");
}

#[test]
fn lost_discovers_are_retransmitted_on_the_rfc_schedule() {
    let mut servers = [Server::new(
        [10, 77, 0, 1],
        [10, 77, 0, 50],
        &[Script::Drop, Script::Drop],
    )];
    let (_, at) = run(&mut servers, Duration::from_secs(200), 7).unwrap();
    let log = &servers[0].log;
    assert_eq!(kinds(&servers[0])[..3], [MessageType::Discover; 3]);
    assert!(
        log.iter().all(|l| l.2 == log[0].2),
        "retransmissions keep the xid"
    );
    let gap1 = (log[1].0 - log[0].0).as_secs_f64();
    let gap2 = (log[2].0 - log[1].0).as_secs_f64();
    assert!((3.0..=5.0).contains(&gap1), "first timeout {gap1}");
    assert!((7.0..=9.0).contains(&gap2), "second timeout {gap2}");
    assert_eq!(at, log[2].0);
}

#[test]
fn nak_restarts_with_a_new_transaction() {
    let mut servers = [Server::new(
        [10, 77, 0, 1],
        [10, 77, 0, 50],
        &[Script::Answer, Script::Nak],
    )];
    let (lease, _) = run(&mut servers, Duration::from_secs(200), 3).unwrap();
    assert_eq!(lease.address, Ipv4Addr::new(10, 77, 0, 50));
    use MessageType::*;
    assert_eq!(
        kinds(&servers[0]),
        vec![Discover, Request, Discover, Request]
    );
    let log = &servers[0].log;
    assert_ne!(log[0].2, log[2].2, "a new xid after the NAK");
    assert!(
        log[2].0 - log[1].0 >= Duration::from_secs(1),
        "NAK hold-off"
    );
}

#[test]
fn noise_is_ignored_and_the_first_offer_wins() {
    let mut servers = [
        Server::new(
            [10, 77, 0, 1],
            [10, 77, 0, 50],
            &[Script::Noise, Script::Noise],
        ),
        Server::new([10, 77, 0, 2], [10, 77, 0, 99], &[]),
    ];
    let (lease, _) = run(&mut servers, Duration::from_secs(200), 5).unwrap();
    assert_eq!(lease.server_id, Ipv4Addr::new(10, 77, 0, 1));
    assert_eq!(lease.address, Ipv4Addr::new(10, 77, 0, 50));
    // The second server saw the REQUEST naming the first one and stayed silent.
    assert_eq!(
        kinds(&servers[1]),
        vec![MessageType::Discover, MessageType::Request]
    );
}

#[test]
fn unanswered_requests_start_over() {
    use Script::*;
    let mut servers = [Server::new(
        [10, 77, 0, 1],
        [10, 77, 0, 50],
        &[Answer, Drop, Drop, Drop, Drop],
    )];
    let (lease, _) = run(&mut servers, Duration::from_secs(400), 11).unwrap();
    assert_eq!(lease.address, Ipv4Addr::new(10, 77, 0, 50));
    use MessageType::*;
    assert_eq!(
        kinds(&servers[0]),
        vec![
            Discover, Request, Request, Request, Request, Discover, Request
        ]
    );
}

#[test]
fn silence_never_binds_and_keeps_asking() {
    let mut servers = [Server::new(
        [10, 77, 0, 1],
        [10, 77, 0, 50],
        &[Script::Drop; 100],
    )];
    assert!(run(&mut servers, Duration::from_secs(400), 13).is_none());
    // From t=100 to t=400: DISCOVERs at 0, 4, 12, 28, 60, 124, 188, 252 s (each +-1 s).
    let n = servers[0].log.len();
    assert!((7..=9).contains(&n), "{n} DISCOVERs");
    assert!(servers[0].log.iter().all(|l| l.1 == MessageType::Discover));
}
