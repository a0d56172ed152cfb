//! A bound DHCP lease and how it is read out of an ACK (RFC 2131 4.4.5 timer defaults).
//!
//! Pure, no IO.

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Message, OptionCode};

use crate::dhcp_client::{Ignored, Offer};

/// Name servers kept from option 6.
const MAX_DNS: usize = 3;

/// A bound lease: what the shell configures on the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub server_id: Ipv4Addr,
    /// Lease time in seconds (`u32::MAX` is infinite).
    pub lease_secs: u32,
    /// Renewal time T1 in seconds (option 58, or half the lease).
    pub t1: u32,
    /// Rebinding time T2 in seconds (option 59, or 7/8 of the lease).
    pub t2: u32,
    /// When the ACK arrived.
    pub bound_at: Duration,
}

impl Lease {
    /// Prefix length of the netmask (counting its leading ones).
    pub fn prefix_len(&self) -> u32 {
        u32::from(self.netmask).leading_ones()
    }
}

/// A unicast address a host can use (not 0.0.0.0, broadcast, multicast or loopback).
pub(crate) fn usable(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback())
}

/// The pre-CIDR default mask of an address, for servers that send no option 1.
pub fn classful_mask(ip: Ipv4Addr) -> Ipv4Addr {
    match ip.octets()[0] {
        0..=127 => Ipv4Addr::new(255, 0, 0, 0),
        128..=191 => Ipv4Addr::new(255, 255, 0, 0),
        _ => Ipv4Addr::new(255, 255, 255, 0),
    }
}

pub(crate) fn lease_from_ack(m: &Message, offer: &Offer, now: Duration) -> Result<Lease, Ignored> {
    if m.yiaddr() != offer.address {
        return Err(Ignored::BadAck("yiaddr differs from the offered address"));
    }
    let o = m.opts();
    let Some(DhcpOption::AddressLeaseTime(lease_secs)) = o.get(OptionCode::AddressLeaseTime) else {
        return Err(Ignored::BadAck("no lease time (option 51)"));
    };
    let lease_secs = *lease_secs;
    let netmask = match o.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => *mask,
        _ => classful_mask(offer.address),
    };
    let bits = u32::from(netmask);
    if bits.leading_ones() + bits.trailing_zeros() != 32 || bits.leading_ones() > 30 {
        return Err(Ignored::BadAck(
            "subnet mask is not a contiguous prefix of /30 or shorter",
        ));
    }
    let router = match o.get(OptionCode::Router) {
        Some(DhcpOption::Router(list)) => list.iter().copied().find(|r| usable(*r)),
        _ => None,
    };
    let dns = match o.get(OptionCode::DomainNameServer) {
        Some(DhcpOption::DomainNameServer(list)) => list
            .iter()
            .copied()
            .filter(|d| usable(*d))
            .take(MAX_DNS)
            .collect(),
        _ => Vec::new(),
    };
    let t1_given = match o.get(OptionCode::Renewal) {
        Some(DhcpOption::Renewal(t)) => Some(*t),
        _ => None,
    };
    let t2_given = match o.get(OptionCode::Rebinding) {
        Some(DhcpOption::Rebinding(t)) => Some(*t),
        _ => None,
    };
    // RFC 2131 4.4.5 defaults, then T1 <= T2 <= lease whatever the server said.
    let t2 = t2_given
        .unwrap_or_else(|| scale(lease_secs, 7, 8))
        .min(lease_secs);
    let t1 = t1_given.unwrap_or_else(|| scale(lease_secs, 1, 2)).min(t2);
    Ok(Lease {
        address: offer.address,
        netmask,
        router,
        dns,
        server_id: offer.server_id,
        lease_secs,
        t1,
        t2,
        bound_at: now,
    })
}

pub(crate) fn scale(v: u32, num: u64, den: u64) -> u32 {
    u32::try_from(u64::from(v) * num / den).unwrap_or(u32::MAX)
}
