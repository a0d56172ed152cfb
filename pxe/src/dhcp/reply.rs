//! Building replies: BOOTP header fields per RFC 2131 table 3, the options the engine sends
//! (53, 54, 51/58/59, 1, 3, 6, 15, PXE 60/66/67, echoed 61 and 82) and the destination per
//! RFC 2131 section 4.1. Pure: no IO.

use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::{Decodable, Decoder, v4};
use lm_api::MacAddr;

use super::classify::{self, Classification, ClientClass, PXE_VENDOR_CLASS};
use super::decision::{Reply, ReplyKind};
use super::validate::{DhcpConfig, Subnet};

/// BOOTP `file` field size (with the terminating NUL).
const FILE_FIELD: usize = 128;

/// True if the client listed `code` in its parameter request list (option 55).
fn asked_for(req: &v4::Message, code: v4::OptionCode) -> bool {
    match req.opts().get(v4::OptionCode::ParameterRequestList) {
        Some(v4::DhcpOption::ParameterRequestList(list)) => list.contains(&code),
        _ => false,
    }
}

/// An all-zero BOOTREPLY header with the magic cookie.
const BLANK: [u8; 240] = {
    let mut b = [0u8; 240];
    b[0] = 2;
    b[236] = 99;
    b[237] = 130;
    b[238] = 83;
    b[239] = 99;
    b
};

/// An empty message, decoded from [`BLANK`] rather than built with `Message::default()`,
/// which draws a random xid (the core takes no randomness of its own).
fn blank() -> v4::Message {
    v4::Message::decode(&mut Decoder::new(&BLANK)).unwrap_or_default()
}

/// A reply skeleton: op, htype, hlen, chaddr, xid, flags and giaddr copied, hops and secs 0.
fn skeleton(req: &v4::Message, kind: ReplyKind, ciaddr: Ipv4Addr, yiaddr: Ipv4Addr) -> v4::Message {
    let mut m = blank();
    m.set_opcode(v4::Opcode::BootReply)
        .set_htype(req.htype())
        .set_xid(req.xid())
        .set_flags(req.flags())
        .set_ciaddr(ciaddr)
        .set_yiaddr(yiaddr)
        .set_giaddr(req.giaddr());
    if req.hlen() <= 16 {
        m.set_chaddr(req.chaddr());
    }
    let t = match kind {
        ReplyKind::Offer => v4::MessageType::Offer,
        ReplyKind::Ack | ReplyKind::InformAck => v4::MessageType::Ack,
        ReplyKind::Nak => v4::MessageType::Nak,
    };
    m.opts_mut().insert(v4::DhcpOption::MessageType(t));
    m
}

/// Copies option 61 (RFC 6842) and option 82 (RFC 3046) from the request.
fn echo(req: &v4::Message, m: &mut v4::Message) {
    for code in [
        v4::OptionCode::ClientIdentifier,
        v4::OptionCode::RelayAgentInformation,
    ] {
        if let Some(o) = req.opts().get(code) {
            m.opts_mut().insert(o.clone());
        }
    }
}

/// Where a reply goes (RFC 2131 section 4.1).
pub fn destination(cfg: &DhcpConfig, req: &v4::Message, kind: ReplyKind) -> SocketAddrV4 {
    let giaddr = req.giaddr();
    if !giaddr.is_unspecified() {
        return SocketAddrV4::new(giaddr, cfg.relay_port);
    }
    let ciaddr = req.ciaddr();
    if kind != ReplyKind::Nak && !ciaddr.is_unspecified() {
        return SocketAddrV4::new(ciaddr, cfg.client_port);
    }
    SocketAddrV4::new(Ipv4Addr::BROADCAST, cfg.client_port)
}

/// What a positive reply says.
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    /// OFFER, ACK or INFORM-ACK.
    pub kind: ReplyKind,
    /// The address given (unspecified for INFORM).
    pub yiaddr: Ipv4Addr,
    /// The client's subnet.
    pub subnet: &'a Subnet,
    /// The client's class.
    pub class: &'a Classification,
    /// The client.
    pub mac: MacAddr,
}

/// An OFFER, ACK or INFORM-ACK.
pub fn grant(cfg: &DhcpConfig, req: &v4::Message, g: Grant<'_>) -> Reply {
    let ciaddr = if g.kind == ReplyKind::Offer {
        Ipv4Addr::UNSPECIFIED
    } else {
        req.ciaddr()
    };
    let mut m = skeleton(req, g.kind, ciaddr, g.yiaddr);
    let o = m.opts_mut();
    o.insert(v4::DhcpOption::ServerIdentifier(cfg.server_address));
    if g.kind != ReplyKind::InformAck {
        o.insert(v4::DhcpOption::AddressLeaseTime(cfg.lease_time));
        o.insert(v4::DhcpOption::Renewal(cfg.renewal_time));
        o.insert(v4::DhcpOption::Rebinding(cfg.rebinding_time));
    }
    o.insert(v4::DhcpOption::SubnetMask(g.subnet.network.mask()));
    if !g.subnet.routers.is_empty() {
        o.insert(v4::DhcpOption::Router(g.subnet.routers.clone()));
    }
    if !g.subnet.dns_servers.is_empty() {
        o.insert(v4::DhcpOption::DomainNameServer(
            g.subnet.dns_servers.clone(),
        ));
    }
    if let Some(d) = &g.subnet.domain_name {
        o.insert(v4::DhcpOption::DomainName(d.clone()));
    }
    // Option 60 "PXEClient" goes to iPXE only: without it iPXE waits for ProxyDHCP offers
    // (seconds per boot). Firmware PXE clients get a plain DHCP offer with siaddr + file, which
    // the PXE spec boots directly; with option 60 but no option 43 boot servers they take the
    // offer for a BINL one and ask port 4011 first (EDK2/OVMF fails there with PXE-E16).
    if g.class.pxe && g.class.class == ClientClass::Ipxe {
        o.insert(v4::DhcpOption::ClassIdentifier(PXE_VENDOR_CLASS.to_vec()));
    }
    let file = classify::boot_file(g.class, &cfg.boot, g.mac).filter(|f| f.len() < FILE_FIELD);
    if let Some(file) = file {
        let next = cfg.boot.next_server;
        if asked_for(req, v4::OptionCode::TFTPServerName) {
            m.opts_mut().insert(v4::DhcpOption::TFTPServerName(
                next.to_string().into_bytes(),
            ));
        }
        if asked_for(req, v4::OptionCode::BootfileName) {
            m.opts_mut()
                .insert(v4::DhcpOption::BootfileName(file.clone().into_bytes()));
        }
        m.set_siaddr(next).set_fname_str(&file);
    }
    echo(req, &mut m);
    let to = destination(cfg, req, g.kind);
    Reply {
        kind: g.kind,
        message: m,
        to,
    }
}

/// A NAK with a reason in option 56; broadcast bit set when it goes through a relay.
pub fn nak(cfg: &DhcpConfig, req: &v4::Message, reason: &str) -> Reply {
    let mut m = skeleton(
        req,
        ReplyKind::Nak,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
    );
    if !req.giaddr().is_unspecified() {
        m.set_flags(req.flags().set_broadcast());
    }
    m.opts_mut()
        .insert(v4::DhcpOption::ServerIdentifier(cfg.server_address));
    m.opts_mut()
        .insert(v4::DhcpOption::Message(reason.to_string()));
    echo(req, &mut m);
    let to = destination(cfg, req, ReplyKind::Nak);
    Reply {
        kind: ReplyKind::Nak,
        message: m,
        to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::classify::classify;
    use crate::dhcp::testutil::{config, discover, mac};

    fn grant_for(req: &v4::Message, kind: ReplyKind) -> Reply {
        let cfg = config();
        let class = classify(req, b"lease-agent");
        let g = Grant {
            kind,
            yiaddr: Ipv4Addr::new(10, 77, 0, 120),
            subnet: &cfg.subnets[0],
            class: &class,
            mac: mac(1),
        };
        grant(&cfg, req, g)
    }

    #[test]
    fn destinations_follow_rfc_2131_4_1() {
        let cfg = config();
        let mut req = discover(1);
        assert_eq!(
            destination(&cfg, &req, ReplyKind::Offer),
            "255.255.255.255:68".parse().unwrap()
        );
        req.set_ciaddr(Ipv4Addr::new(10, 77, 0, 5));
        assert_eq!(
            destination(&cfg, &req, ReplyKind::Ack),
            "10.77.0.5:68".parse().unwrap()
        );
        assert_eq!(
            destination(&cfg, &req, ReplyKind::Nak),
            "255.255.255.255:68".parse().unwrap()
        );
        req.set_giaddr(Ipv4Addr::new(10, 78, 0, 1));
        assert_eq!(
            destination(&cfg, &req, ReplyKind::Nak),
            "10.78.0.1:67".parse().unwrap()
        );
    }

    #[test]
    fn pxe_offer_carries_boot_fields_and_asked_options() {
        let mut req = discover(1);
        req.opts_mut().insert(v4::DhcpOption::ClassIdentifier(
            b"PXEClient:Arch:00000".to_vec(),
        ));
        req.opts_mut()
            .insert(v4::DhcpOption::ClientSystemArchitecture(0.into()));
        req.opts_mut()
            .insert(v4::DhcpOption::ParameterRequestList(vec![
                v4::OptionCode::BootfileName,
                v4::OptionCode::TFTPServerName,
            ]));
        let r = grant_for(&req, ReplyKind::Offer);
        let m = &r.message;
        assert_eq!(m.opcode(), v4::Opcode::BootReply);
        assert_eq!(
            (m.xid(), m.yiaddr(), m.siaddr()),
            (
                req.xid(),
                Ipv4Addr::new(10, 77, 0, 120),
                Ipv4Addr::new(10, 77, 0, 1)
            )
        );
        assert_eq!(m.fname(), Some(&b"undionly.kpxe"[..]));
        // A firmware PXE client gets a plain offer: option 60 would make it look for BINL.
        assert!(!m.opts().contains(v4::OptionCode::ClassIdentifier));
        assert_eq!(
            m.opts().get(v4::OptionCode::BootfileName),
            Some(&v4::DhcpOption::BootfileName(b"undionly.kpxe".to_vec()))
        );
        assert_eq!(
            m.opts().get(v4::OptionCode::TFTPServerName),
            Some(&v4::DhcpOption::TFTPServerName(b"10.77.0.1".to_vec()))
        );
        assert_eq!(
            m.opts().get(v4::OptionCode::AddressLeaseTime),
            Some(&v4::DhcpOption::AddressLeaseTime(3600))
        );
        assert_eq!(
            m.opts().get(v4::OptionCode::Renewal),
            Some(&v4::DhcpOption::Renewal(1800))
        );
        assert_eq!(
            m.opts().get(v4::OptionCode::Rebinding),
            Some(&v4::DhcpOption::Rebinding(3150))
        );
        assert_eq!(
            m.opts().get(v4::OptionCode::SubnetMask),
            Some(&v4::DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
        );
    }

    #[test]
    fn ipxe_gets_pxeclient_echoed_and_its_script_url() {
        let mut req = discover(1);
        req.opts_mut().insert(v4::DhcpOption::ClassIdentifier(
            b"PXEClient:Arch:00000:UNDI:002001".to_vec(),
        ));
        req.opts_mut()
            .insert(v4::DhcpOption::ClientSystemArchitecture(0.into()));
        req.opts_mut()
            .insert(v4::DhcpOption::UserClass(b"iPXE".to_vec()));
        let r = grant_for(&req, ReplyKind::Offer);
        let m = &r.message;
        assert_eq!(
            m.opts().get(v4::OptionCode::ClassIdentifier),
            Some(&v4::DhcpOption::ClassIdentifier(b"PXEClient".to_vec()))
        );
        let file = String::from_utf8_lossy(m.fname().unwrap_or_default()).into_owned();
        assert!(
            file.starts_with("http://") && file.ends_with(".ipxe"),
            "{file}"
        );
    }

    #[test]
    fn plain_clients_get_no_boot_fields_and_inform_no_lease_time() {
        let req = discover(1);
        let r = grant_for(&req, ReplyKind::InformAck);
        let m = &r.message;
        assert_eq!((m.siaddr(), m.fname()), (Ipv4Addr::UNSPECIFIED, None));
        assert!(!m.opts().contains(v4::OptionCode::ClassIdentifier));
        assert!(!m.opts().contains(v4::OptionCode::AddressLeaseTime));
        assert!(!m.opts().contains(v4::OptionCode::Renewal));
        assert_eq!(m.opts().msg_type(), Some(v4::MessageType::Ack));
    }

    #[test]
    fn nak_through_a_relay_sets_broadcast_and_echoes_client_id() {
        let cfg = config();
        let mut req = discover(1);
        req.set_giaddr(Ipv4Addr::new(10, 78, 0, 1));
        req.opts_mut()
            .insert(v4::DhcpOption::ClientIdentifier(vec![1, 2, 0, 0, 0, 0, 1]));
        let r = nak(&cfg, &req, "wrong network");
        assert!(r.message.flags().broadcast());
        assert_eq!(r.message.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert!(r.message.opts().contains(v4::OptionCode::ClientIdentifier));
        assert_eq!(
            r.message.opts().get(v4::OptionCode::Message),
            Some(&v4::DhcpOption::Message("wrong network".into()))
        );
    }
}
