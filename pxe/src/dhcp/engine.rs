//! The DHCPv4 engine: `request + context + gate + lease table + now -> Decision`. Pure: no
//! sockets, files or clocks; the caller applies the decision (see the server shell).
//!
//! Order of checks for every datagram:
//! 1. the message is a usable client request (`wire::inspect`), else silence `Malformed`;
//! 2. the gate: `Unknown` and `Closed` mean silence, for every message type (RELEASE and
//!    DECLINE included: only hosts the LM expects may change leases);
//! 3. option 54 naming another server (REQUEST, RELEASE, DECLINE) means silence `NotForUs`;
//! 4. the subnet: `giaddr` when set (relayed), else `ciaddr` when it is in a configured
//!    subnet (renewals are unicast and carry no `giaddr`), else the receiving interface;
//! 5. the message type: DISCOVER -> OFFER (+ hold), REQUEST -> ACK (+ lease) or NAK,
//!    RELEASE -> lease removed, DECLINE -> address quarantined, INFORM -> ACK without lease.
//!
//! Leases are keyed by MAC, not by option 61: the PXE ROM, iPXE and the agent of one server
//! send different client identifiers and should all get the server's one address.

use std::net::Ipv4Addr;

use dhcproto::v4;
use lm_api::MacAddr;

use crate::gate::{Gate, HostBoot};

use super::classify::{self, Classification, ClientClass};
use super::decision::{Action, Decision, ReplyKind, RequestContext, Silence};
use super::pool;
use super::reply::{self, Grant};
use super::table::{LeaseChange, LeaseTable, OfferHold};
use super::validate::{DhcpConfig, Subnet};
use super::wire;

/// The engine; cheap to share (`&self` only).
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) cfg: DhcpConfig,
}

/// One request being handled, with everything the handlers need.
pub(crate) struct Req<'a> {
    pub(crate) msg: &'a v4::Message,
    pub(crate) mac: MacAddr,
    pub(crate) class: Classification,
    pub(crate) host: &'a HostBoot,
    pub(crate) subnet: &'a Subnet,
    pub(crate) table: &'a LeaseTable,
    pub(crate) now: u64,
}

/// Option 54 of a request.
pub(crate) fn server_id(msg: &v4::Message) -> Option<Ipv4Addr> {
    match msg.opts().get(v4::OptionCode::ServerIdentifier) {
        Some(v4::DhcpOption::ServerIdentifier(a)) => Some(*a),
        _ => None,
    }
}

/// Option 50 of a request.
pub(crate) fn requested_ip(msg: &v4::Message) -> Option<Ipv4Addr> {
    match msg.opts().get(v4::OptionCode::RequestedIpAddress) {
        Some(v4::DhcpOption::RequestedIpAddress(a)) => Some(*a),
        _ => None,
    }
}

impl Engine {
    /// An engine for a validated configuration.
    pub fn new(cfg: DhcpConfig) -> Self {
        Self { cfg }
    }

    /// The configuration.
    pub fn config(&self) -> &DhcpConfig {
        &self.cfg
    }

    /// Decides what to do about `req`. `gate` is the LM's answer for the request's MAC
    /// (ask with [`wire::client_mac`]); `now` is unix seconds.
    pub fn handle(
        &self,
        req: &v4::Message,
        ctx: &RequestContext,
        gate: &Gate,
        table: &LeaseTable,
        now: u64,
    ) -> Decision {
        let xid = req.xid();
        let (mac, kind) = match wire::inspect(req) {
            Ok(v) => v,
            Err(e) => {
                let mac = wire::client_mac(req).ok();
                return Decision {
                    mac,
                    xid,
                    message: req.opts().msg_type(),
                    client: ClientClass::Other,
                    action: Action::Silent(e.into()),
                };
            }
        };
        let class = classify::classify(req, &self.cfg.agent_vendor_class);
        let decided = |action| Decision {
            mac: Some(mac),
            xid,
            message: Some(kind),
            client: class.class,
            action,
        };
        let host = match gate {
            Gate::Unknown => return decided(Action::Silent(Silence::UnknownMac)),
            Gate::Closed { name, reason } => {
                return decided(Action::Silent(Silence::GateClosed {
                    name: name.clone(),
                    reason: reason.clone(),
                }));
            }
            Gate::Open(host) => host,
        };
        if matches!(
            kind,
            v4::MessageType::Request | v4::MessageType::Release | v4::MessageType::Decline
        ) && let Some(sid) = server_id(req).filter(|s| *s != self.cfg.server_address)
        {
            return decided(Action::Silent(Silence::NotForUs { server_id: sid }));
        }
        let subnet = match self.subnet_for(req, ctx) {
            Ok(s) => s,
            Err(e) => return decided(Action::Silent(e)),
        };
        if class.unknown_arch() {
            tracing::warn!(%mac, xid, arch = ?class.arch, "PXE client architecture has no boot file here: it gets an address only");
        }
        let r = Req {
            msg: req,
            mac,
            class,
            host,
            subnet,
            table,
            now,
        };
        let action = match kind {
            v4::MessageType::Discover => self.discover(&r),
            v4::MessageType::Request => self.request(&r),
            v4::MessageType::Release => self.release(&r),
            v4::MessageType::Decline => self.decline(&r),
            _ => self.inform(&r),
        };
        decided(action)
    }

    fn subnet_for(&self, req: &v4::Message, ctx: &RequestContext) -> Result<&Subnet, Silence> {
        let giaddr = req.giaddr();
        if !giaddr.is_unspecified() {
            return self.cfg.subnet_of(giaddr).ok_or(Silence::NoSubnet {
                address: giaddr,
                via: "giaddr",
            });
        }
        if let Some(s) = self
            .cfg
            .subnet_of(req.ciaddr())
            .filter(|_| !req.ciaddr().is_unspecified())
        {
            return Ok(s);
        }
        self.cfg
            .subnet_of(ctx.interface_addr)
            .ok_or(Silence::NoSubnet {
                address: ctx.interface_addr,
                via: "receiving interface",
            })
    }

    pub(crate) fn grant(
        &self,
        r: &Req<'_>,
        kind: ReplyKind,
        yiaddr: Ipv4Addr,
    ) -> super::decision::Reply {
        reply::grant(
            &self.cfg,
            r.msg,
            Grant {
                kind,
                yiaddr,
                subnet: r.subnet,
                class: &r.class,
                mac: r.mac,
            },
        )
    }

    fn discover(&self, r: &Req<'_>) -> Action {
        let addr = match pool::address_for(
            &self.cfg,
            r.subnet,
            r.host.reserved_ip,
            r.table,
            r.mac,
            requested_ip(r.msg),
            r.now,
        ) {
            Ok(a) => a,
            Err(e) => return Action::Silent(e),
        };
        let hold = OfferHold {
            mac: r.mac,
            address: addr,
            until: r.now.saturating_add(u64::from(self.cfg.offer_hold)),
        };
        Action::Reply {
            reply: self.grant(r, ReplyKind::Offer, addr),
            changes: vec![LeaseChange::Hold(hold)],
        }
    }

    fn inform(&self, r: &Req<'_>) -> Action {
        Action::Reply {
            reply: self.grant(r, ReplyKind::InformAck, Ipv4Addr::UNSPECIFIED),
            changes: vec![],
        }
    }
}

#[cfg(test)]
mod tests;
