//! Unit tests of REQUEST (SELECTING, INIT-REBOOT, RENEWING/REBINDING), RELEASE and DECLINE.

use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4;

use crate::dhcp::lease::LeaseState;
use crate::dhcp::testutil::*;
use crate::dhcp::wire::Malformed;
use crate::dhcp::{Action, LeaseChange, ReplyKind, Silence};

#[test]
fn selecting_request_binds_the_offer() {
    let mut lab = Lab::new();
    let offer = lab.run(&discover(1), &open(), 1000);
    let addr = offer.reply().unwrap().message.yiaddr();
    let mut req = select(1, addr, SERVER);
    req.opts_mut()
        .insert(v4::DhcpOption::Hostname("vm-1 \u{7}evil".into()));
    req.opts_mut().insert(v4::DhcpOption::ClientIdentifier(vec![
        1, 0x52, 0x54, 0, 0, 0, 1,
    ]));
    let d = lab.run(&req, &open(), 1010);
    let r = d.reply().unwrap();
    assert_eq!((r.kind, r.message.yiaddr()), (ReplyKind::Ack, addr));
    let [LeaseChange::Put(lease)] = d.changes() else {
        panic!("{:?}", d.changes())
    };
    assert_eq!(
        (lease.mac, lease.address, lease.expires_at, lease.state),
        (mac(1), addr, 4610, LeaseState::Bound)
    );
    assert_eq!(lease.hostname.as_deref(), Some("vm-1evil"));
    assert_eq!(lease.client_id.as_deref(), Some("01525400000001"));
    assert!(d.needs_flush());
    assert_eq!(lab.table.mac_for(addr, 1010), Some(mac(1)));
}

#[test]
fn requests_for_other_servers_or_taken_addresses() {
    let mut lab = Lab::new();
    let a = lab.bind(1, 0);
    let d = lab.run(&select(2, a, ip("10.77.0.2")), &open(), 0);
    assert_eq!(
        d.silence(),
        Some(&Silence::NotForUs {
            server_id: ip("10.77.0.2")
        })
    );
    let d = lab.run(&select(2, a, SERVER), &open(), 0);
    assert_eq!(d.reply().unwrap().kind, ReplyKind::Nak);
    assert!(d.changes().is_empty());
    let d = lab.run(&select(2, ip("10.77.0.50"), SERVER), &open(), 0);
    assert_eq!(d.reply().unwrap().kind, ReplyKind::Nak, "outside the pools");
    let d = lab.run(&request_of(v4::MessageType::Request, 2), &open(), 0);
    assert!(matches!(
        d.silence(),
        Some(Silence::Malformed(Malformed::Missing { .. }))
    ));
}

#[test]
fn init_reboot() {
    let mut lab = Lab::new();
    let a = lab.bind(1, 0);
    let mut req = request_of(v4::MessageType::Request, 1);
    req.opts_mut().insert(v4::DhcpOption::RequestedIpAddress(a));
    assert_eq!(
        lab.run(&req, &open(), 50).reply().unwrap().kind,
        ReplyKind::Ack
    );
    req.opts_mut()
        .insert(v4::DhcpOption::RequestedIpAddress(ip("192.168.1.50")));
    let nak = lab.run(&req, &open(), 50);
    assert_eq!(nak.reply().unwrap().kind, ReplyKind::Nak, "wrong network");
    assert_eq!(
        nak.reply().unwrap().to,
        SocketAddrV4::new(Ipv4Addr::BROADCAST, 68)
    );
    let mut other = request_of(v4::MessageType::Request, 2);
    other
        .opts_mut()
        .insert(v4::DhcpOption::RequestedIpAddress(a));
    assert_eq!(
        lab.run(&other, &open(), 50).reply().unwrap().kind,
        ReplyKind::Nak
    );
    other
        .opts_mut()
        .insert(v4::DhcpOption::RequestedIpAddress(other_than(a)));
    assert_eq!(
        lab.run(&other, &open(), 50).reply().unwrap().kind,
        ReplyKind::Ack,
        "free address, no record"
    );
}

#[test]
fn renewing_extends_and_moving_removes_the_old_lease() {
    let mut lab = Lab::new();
    let a = lab.bind(1, 0);
    let mut renew = request_of(v4::MessageType::Request, 1);
    renew.set_ciaddr(a);
    let d = lab.run(&renew, &open(), 1800);
    let r = d.reply().unwrap();
    assert_eq!(
        (r.kind, r.to, r.message.ciaddr()),
        (ReplyKind::Ack, SocketAddrV4::new(a, 68), a)
    );
    assert!(matches!(d.changes(), [LeaseChange::Put(l)] if l.expires_at == 1800 + 3600));
    let mut foreign = request_of(v4::MessageType::Request, 2);
    foreign.set_ciaddr(a);
    assert_eq!(
        lab.run(&foreign, &open(), 1800).reply().unwrap().kind,
        ReplyKind::Nak
    );
    let b = other_than(a);
    let d = lab.run(&select(1, b, SERVER), &open(), 1900);
    assert_eq!(
        d.changes().first(),
        Some(&LeaseChange::Remove {
            address: a,
            mac: mac(1)
        })
    );
    assert!(lab.table.lease_at(a).is_none());
}

#[test]
fn relayed_client_renews_by_unicast_without_giaddr() {
    let mut lab = Lab::new();
    let mut d = discover(1);
    d.set_giaddr(RELAY);
    let a = lab.run(&d, &open(), 0).reply().unwrap().message.yiaddr();
    let mut sel = select(1, a, SERVER);
    sel.set_giaddr(RELAY);
    assert_eq!(
        lab.run(&sel, &open(), 0).reply().unwrap().to,
        SocketAddrV4::new(RELAY, 67)
    );
    let mut renew = request_of(v4::MessageType::Request, 1);
    renew.set_ciaddr(a);
    let r = lab.run(&renew, &open(), 100);
    assert_eq!(
        r.reply().unwrap().kind,
        ReplyKind::Ack,
        "subnet chosen by ciaddr"
    );
    assert_eq!(r.reply().unwrap().to, SocketAddrV4::new(a, 68));
}

#[test]
fn release() {
    let mut lab = Lab::new();
    let a = lab.bind(1, 0);
    let mut rel = request_of(v4::MessageType::Release, 2);
    rel.set_ciaddr(a);
    assert_eq!(
        lab.run(&rel, &open(), 5).silence(),
        Some(&Silence::NoLease {
            message: "RELEASE",
            address: a
        })
    );
    let mut rel = request_of(v4::MessageType::Release, 1);
    rel.set_ciaddr(a);
    rel.opts_mut()
        .insert(v4::DhcpOption::ServerIdentifier(ip("10.77.0.9")));
    assert!(matches!(
        lab.run(&rel, &open(), 5).silence(),
        Some(Silence::NotForUs { .. })
    ));
    rel.opts_mut()
        .insert(v4::DhcpOption::ServerIdentifier(SERVER));
    let d = lab.run(&rel, &open(), 5);
    assert_eq!(
        d.action,
        Action::Update {
            changes: vec![LeaseChange::Remove {
                address: a,
                mac: mac(1)
            }]
        }
    );
    assert!(d.needs_flush() && d.reply().is_none());
    assert_eq!(lab.table.mac_for(a, 5), None);
    let no_ciaddr = request_of(v4::MessageType::Release, 1);
    assert!(matches!(
        lab.run(&no_ciaddr, &open(), 5).silence(),
        Some(Silence::Malformed(_))
    ));
}

#[test]
fn decline_quarantines_the_address() {
    let mut lab = Lab::new();
    let offer = lab.run(&discover(1), &open(), 0);
    let a = offer.reply().unwrap().message.yiaddr();
    let mut dec = request_of(v4::MessageType::Decline, 2);
    dec.opts_mut().insert(v4::DhcpOption::RequestedIpAddress(a));
    assert!(matches!(
        lab.run(&dec, &open(), 1).silence(),
        Some(Silence::NoLease { .. })
    ));
    let mut dec = request_of(v4::MessageType::Decline, 1);
    dec.opts_mut().insert(v4::DhcpOption::RequestedIpAddress(a));
    dec.opts_mut()
        .insert(v4::DhcpOption::ServerIdentifier(SERVER));
    let d = lab.run(&dec, &open(), 1);
    assert!(
        matches!(d.changes(), [LeaseChange::Put(l)] if l.state == LeaseState::Declined && l.expires_at == 601)
    );
    let next = lab.run(&discover(1), &open(), 2);
    assert_ne!(
        next.reply().unwrap().message.yiaddr(),
        a,
        "not offered during the quarantine"
    );
    let mut req = select(3, a, SERVER);
    req.opts_mut().insert(v4::DhcpOption::RequestedIpAddress(a));
    assert_eq!(
        lab.run(&req, &open(), 600).reply().unwrap().kind,
        ReplyKind::Nak
    );
    assert_eq!(
        lab.run(&req, &open(), 601).reply().unwrap().kind,
        ReplyKind::Ack,
        "free after it"
    );
}
