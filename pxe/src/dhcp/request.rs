//! The engine's handling of DHCPREQUEST (RFC 2131 section 4.3.2), DHCPRELEASE and
//! DHCPDECLINE. Pure: no IO.
//!
//! REQUEST states, told apart by the request's fields:
//!
//! | state               | option 54 | option 50 | ciaddr | address checked |
//! |---------------------|-----------|-----------|--------|-----------------|
//! | SELECTING           | ours      | set       | 0      | option 50       |
//! | INIT-REBOOT         | -         | set       | 0      | option 50       |
//! | RENEWING/REBINDING  | -         | -         | set    | ciaddr          |
//!
//! RENEWING (unicast) and REBINDING (broadcast) get the same answer; only the transport
//! differs. The address is ACKed when it is the client's lease, its fixed address, or a free
//! pool address of its subnet; otherwise NAKed (also in INIT-REBOOT without a record here: this
//! server is authoritative on the provisioning network, so a client with a stale address is
//! sent back to DISCOVER rather than left waiting). A client with a fixed address is NAKed
//! for any other address.

use std::net::Ipv4Addr;

use dhcproto::v4;

use super::decision::{Action, ReplyKind, Silence};
use super::engine::{Engine, Req, requested_ip, server_id};
use super::lease::{Lease, LeaseState};
use super::pool;
use super::reply;
use super::table::LeaseChange;
use super::wire::Malformed;

/// Longest hostname kept from option 12.
const MAX_HOSTNAME: usize = 63;
/// Longest client identifier kept from option 61 (bytes).
const MAX_CLIENT_ID: usize = 64;

/// Option 12 reduced to letters, digits, `-` and `.`; `None` if nothing is left.
fn hostname(msg: &v4::Message) -> Option<String> {
    let Some(v4::DhcpOption::Hostname(h)) = msg.opts().get(v4::OptionCode::Hostname) else {
        return None;
    };
    let clean: String = h
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(MAX_HOSTNAME)
        .collect();
    (!clean.is_empty()).then_some(clean)
}

/// Option 61 as lowercase hex.
fn client_id(msg: &v4::Message) -> Option<String> {
    let Some(v4::DhcpOption::ClientIdentifier(id)) =
        msg.opts().get(v4::OptionCode::ClientIdentifier)
    else {
        return None;
    };
    (!id.is_empty()).then(|| {
        id.iter()
            .take(MAX_CLIENT_ID)
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

fn missing(message: &'static str, what: &'static str) -> Action {
    Action::Silent(Silence::Malformed(Malformed::Missing { message, what }))
}

impl Engine {
    pub(crate) fn request(&self, r: &Req<'_>) -> Action {
        let ciaddr = r.msg.ciaddr();
        let addr = match (server_id(r.msg), requested_ip(r.msg)) {
            (_, Some(a)) => a,
            (_, None) if !ciaddr.is_unspecified() => ciaddr,
            _ => return missing("REQUEST", "requested address (option 50) or ciaddr"),
        };
        match self.refusal(r, addr) {
            Some(reason) => Action::Reply {
                reply: reply::nak(&self.cfg, r.msg, reason),
                changes: vec![],
            },
            None => self.ack(r, addr),
        }
    }

    /// Why `addr` cannot be bound to the client, or `None` if it can.
    fn refusal(&self, r: &Req<'_>, addr: Ipv4Addr) -> Option<&'static str> {
        if !r.subnet.network.is_host(addr) {
            return Some("requested address is not on the client's network");
        }
        if let Some(fixed) = pool::fixed_address(&self.cfg, r.host.reserved_ip, r.mac) {
            if fixed != addr {
                return Some("this client has another fixed address");
            }
            return match pool::check_fixed(&self.cfg, r.subnet, r.table, addr, r.mac, r.now) {
                Ok(_) => None,
                Err(Silence::ReservationTaken { .. }) => {
                    Some("this client's fixed address is in use")
                }
                Err(_) => Some("this client's fixed address is not on its network"),
            };
        }
        if r.table
            .lease_at(addr)
            .is_some_and(|l| l.is_bound_to(r.mac, r.now))
        {
            return None;
        }
        if !pool::dynamic_ok(&self.cfg, r.subnet, r.table, addr, r.mac, r.now) {
            return Some(if r.subnet.in_pool(addr) {
                "requested address is in use"
            } else {
                "requested address is not in a pool"
            });
        }
        None
    }

    fn ack(&self, r: &Req<'_>, addr: Ipv4Addr) -> Action {
        let lease = Lease {
            mac: r.mac,
            address: addr,
            expires_at: r.now.saturating_add(u64::from(self.cfg.lease_time)),
            state: LeaseState::Bound,
            hostname: hostname(r.msg),
            client_id: client_id(r.msg),
        };
        let mut changes = Vec::with_capacity(2);
        if let Some(old) = r.table.lease_of(r.mac).filter(|l| l.address != addr) {
            changes.push(LeaseChange::Remove {
                address: old.address,
                mac: r.mac,
            });
        }
        changes.push(LeaseChange::Put(lease));
        Action::Reply {
            reply: self.grant(r, ReplyKind::Ack, addr),
            changes,
        }
    }

    pub(crate) fn release(&self, r: &Req<'_>) -> Action {
        let addr = r.msg.ciaddr();
        if addr.is_unspecified() {
            return missing("RELEASE", "ciaddr");
        }
        match r.table.lease_at(addr) {
            Some(l) if l.state == LeaseState::Bound && l.mac == r.mac => Action::Update {
                changes: vec![LeaseChange::Remove {
                    address: addr,
                    mac: r.mac,
                }],
            },
            _ => Action::Silent(Silence::NoLease {
                message: "RELEASE",
                address: addr,
            }),
        }
    }

    pub(crate) fn decline(&self, r: &Req<'_>) -> Action {
        let Some(addr) = requested_ip(r.msg) else {
            return missing("DECLINE", "requested address (option 50)");
        };
        let leased = r
            .table
            .lease_at(addr)
            .is_some_and(|l| l.state == LeaseState::Bound && l.mac == r.mac);
        let offered = r
            .table
            .hold_of(r.mac, r.now)
            .is_some_and(|h| h.address == addr);
        if !(leased || offered) {
            return Action::Silent(Silence::NoLease {
                message: "DECLINE",
                address: addr,
            });
        }
        let quarantine = Lease {
            mac: r.mac,
            address: addr,
            expires_at: r.now.saturating_add(u64::from(self.cfg.quarantine)),
            state: LeaseState::Declined,
            hostname: None,
            client_id: None,
        };
        Action::Update {
            changes: vec![LeaseChange::Put(quarantine)],
        }
    }
}

#[cfg(test)]
mod tests;
