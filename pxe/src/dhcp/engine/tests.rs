//! Unit tests of the engine: DISCOVER, relaying, the gate, fixed addresses, INFORM and the
//! PXE classes. REQUEST, RELEASE and DECLINE are tested beside `request.rs`.

use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4;

use super::*;
use crate::dhcp::testutil::*;

#[test]
fn discover_gets_an_offer_with_a_hold() {
    let mut lab = Lab::new();
    let d = lab.run(&discover(1), &open(), 100);
    let r = d.reply().unwrap();
    assert_eq!(r.kind, ReplyKind::Offer);
    assert_eq!(r.to, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68));
    let addr = r.message.yiaddr();
    assert!(lab.engine.cfg.subnets[0].in_pool(addr));
    assert_eq!(r.message.xid(), discover(1).xid());
    assert_eq!(
        opt(&d, v4::OptionCode::ServerIdentifier),
        Some(&v4::DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(
        opt(&d, v4::OptionCode::Router),
        Some(&v4::DhcpOption::Router(vec![SERVER]))
    );
    assert_eq!(
        d.changes(),
        &[LeaseChange::Hold(OfferHold {
            mac: mac(1),
            address: addr,
            until: 130
        })]
    );
    assert!(!d.needs_flush(), "offers are not persisted");
    let again = lab.run(&discover(1), &open(), 110);
    assert_eq!(
        again.reply().unwrap().message.yiaddr(),
        addr,
        "a repeated DISCOVER gets the same offer"
    );
    let other = lab.run(&discover(2), &open(), 110);
    assert_ne!(other.reply().unwrap().message.yiaddr(), addr);
}

#[test]
fn relayed_discover_uses_the_relays_subnet_and_port() {
    let mut lab = Lab::new();
    let mut m = discover(1);
    m.set_giaddr(RELAY);
    let d = lab.run(&m, &open(), 0);
    let r = d.reply().unwrap();
    assert_eq!(r.to, SocketAddrV4::new(RELAY, 67));
    assert!(lab.engine.cfg.subnets[1].in_pool(r.message.yiaddr()));
    assert_eq!(r.message.giaddr(), RELAY);
    assert_eq!(
        opt(&d, v4::OptionCode::DomainName),
        Some(&v4::DhcpOption::DomainName("relayed.lab".into()))
    );
    m.set_giaddr(ip("192.168.9.1"));
    let d = lab.run(&m, &open(), 0);
    assert_eq!(
        d.silence(),
        Some(&Silence::NoSubnet {
            address: ip("192.168.9.1"),
            via: "giaddr"
        })
    );
}

#[test]
fn the_gate_decides_who_is_answered() {
    let mut lab = Lab::new();
    for t in [
        v4::MessageType::Discover,
        v4::MessageType::Request,
        v4::MessageType::Release,
        v4::MessageType::Inform,
    ] {
        let d = lab.run(&request_of(t, 1), &Gate::Unknown, 0);
        assert_eq!(d.silence(), Some(&Silence::UnknownMac));
        assert_eq!(d.mac, Some(mac(1)));
    }
    let closed = Gate::Closed {
        name: "vm1".into(),
        reason: "idle: not woken by the Lease Manager".into(),
    };
    let d = lab.run(&discover(1), &closed, 0);
    assert_eq!(
        d.silence().unwrap().to_string(),
        "netboot gate closed for vm1: idle: not woken by the Lease Manager"
    );
    assert!(lab.table.is_empty());
}

#[test]
fn fixed_addresses_from_the_gate_and_the_config() {
    let mut lab = Lab::new();
    let fixed = ip("10.77.0.10");
    let d = lab.run(&discover(1), &open_reserved(fixed), 0);
    assert_eq!(d.reply().unwrap().message.yiaddr(), fixed);
    let nak = lab.run(
        &select(1, ip("10.77.0.150"), SERVER),
        &open_reserved(fixed),
        0,
    );
    assert_eq!(nak.reply().unwrap().kind, ReplyKind::Nak);
    let ack = lab.run(&select(1, fixed, SERVER), &open_reserved(fixed), 0);
    assert_eq!(ack.reply().unwrap().kind, ReplyKind::Ack);

    let mut section = section_with_pool("10.77.0.100", "10.77.0.199");
    section.reservations.push(crate::dhcp::ReservationSection {
        mac: mac(2),
        address: ip("10.77.0.20"),
    });
    section.reservations.push(crate::dhcp::ReservationSection {
        mac: mac(3),
        address: ip("10.77.0.150"),
    });
    let mut lab = Lab {
        engine: Engine::new(DhcpConfig::from_section(&section).unwrap()),
        table: LeaseTable::new(),
    };
    let d = lab.run(&discover(2), &open(), 0);
    assert_eq!(d.reply().unwrap().message.yiaddr(), ip("10.77.0.20"));
    let d = lab.run(&select(4, ip("10.77.0.150"), SERVER), &open(), 0);
    assert_eq!(
        d.reply().unwrap().kind,
        ReplyKind::Nak,
        "a pool address reserved for another MAC"
    );
}

#[test]
fn inform_gets_configuration_only() {
    let mut lab = Lab::new();
    let mut inf = request_of(v4::MessageType::Inform, 1);
    inf.set_ciaddr(ip("10.77.0.42"));
    let d = lab.run(&inf, &open(), 0);
    let r = d.reply().unwrap();
    assert_eq!(
        (r.kind, r.to),
        (
            ReplyKind::InformAck,
            SocketAddrV4::new(ip("10.77.0.42"), 68)
        )
    );
    assert_eq!(r.message.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(opt(&d, v4::OptionCode::AddressLeaseTime).is_none());
    assert!(d.changes().is_empty() && lab.table.is_empty());
}

#[test]
fn pxe_ipxe_and_agent_replies() {
    let mut lab = Lab::new();
    let mut m = discover(1);
    m.opts_mut().insert(v4::DhcpOption::ClassIdentifier(
        b"PXEClient:Arch:00007:UNDI:003016".to_vec(),
    ));
    m.opts_mut()
        .insert(v4::DhcpOption::ClientSystemArchitecture(7.into()));
    let d = lab.run(&m, &open(), 0);
    assert_eq!(
        (d.client, d.reply().unwrap().message.fname()),
        (ClientClass::PxeUefi, Some(&b"ipxe.efi"[..]))
    );
    m.opts_mut()
        .insert(v4::DhcpOption::UserClass(b"iPXE".to_vec()));
    let d = lab.run(&m, &open(), 0);
    assert_eq!(d.client, ClientClass::Ipxe);
    assert_eq!(
        d.reply().unwrap().message.fname(),
        Some(&b"http://10.77.0.1:8080/boot/52-54-00-00-00-01.ipxe"[..])
    );
    assert_eq!(
        opt(&d, v4::OptionCode::ClassIdentifier),
        Some(&v4::DhcpOption::ClassIdentifier(b"PXEClient".to_vec()))
    );
    let mut agent = discover(1);
    agent
        .opts_mut()
        .insert(v4::DhcpOption::ClassIdentifier(b"lease-agent".to_vec()));
    let d = lab.run(&agent, &open(), 0);
    assert_eq!(d.client, ClientClass::Agent);
    let r = d.reply().unwrap();
    assert_eq!(
        (r.message.fname(), r.message.siaddr()),
        (None, Ipv4Addr::UNSPECIFIED)
    );
    assert_eq!(
        r.message.yiaddr(),
        lab.table.hold_of(mac(1), 0).unwrap().address,
        "same address across stages"
    );
}
