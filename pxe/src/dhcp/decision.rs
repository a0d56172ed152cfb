//! What the engine decided about one request: a reply with the lease changes that must be
//! durable before it is sent, lease changes without a reply (RELEASE, DECLINE), or silence
//! with a typed reason. Also the per-datagram context the shell supplies. Pure: no IO.

use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4;
use lm_api::MacAddr;

use super::classify::ClientClass;
use super::net::Ipv4Net;
use super::table::LeaseChange;
use super::wire::{self, Malformed};

/// Facts about a datagram that are not in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestContext {
    /// Address of the interface the datagram arrived on. It picks the subnet when the request
    /// has neither `giaddr` nor a `ciaddr` inside a configured subnet.
    pub interface_addr: Ipv4Addr,
}

/// The kind of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// DHCPOFFER to a DISCOVER.
    Offer,
    /// DHCPACK to a REQUEST (binds a lease).
    Ack,
    /// DHCPNAK to a REQUEST.
    Nak,
    /// DHCPACK to an INFORM (configuration only, no lease).
    InformAck,
}

impl ReplyKind {
    /// The DHCP message type name, as in events (`OFFER`, `ACK`, `NAK`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Offer => "OFFER",
            Self::Ack | Self::InformAck => "ACK",
            Self::Nak => "NAK",
        }
    }
}

/// A reply and where it goes (RFC 2131 section 4.1: `giaddr` -> the relay's server port;
/// NAK without relay -> broadcast; `ciaddr` -> unicast; else broadcast, since a UDP socket
/// cannot unicast to an address the client has not configured yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Offer, ACK, NAK or INFORM-ACK.
    pub kind: ReplyKind,
    /// The message.
    pub message: v4::Message,
    /// Destination.
    pub to: SocketAddrV4,
}

/// Why the engine stays silent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Silence {
    /// The datagram is not a usable client request.
    #[error("malformed request: {0}")]
    Malformed(#[from] Malformed),
    /// The MAC is not in the inventory.
    #[error("unknown MAC: not in the Lease Manager's inventory")]
    UnknownMac,
    /// The MAC is known but not expected to boot now.
    #[error("netboot gate closed for {name}: {reason}")]
    GateClosed {
        /// Inventory name.
        name: String,
        /// The LM's reason.
        reason: String,
    },
    /// The client talks to another server (option 54).
    #[error("addressed to server {server_id}, not to this one")]
    NotForUs {
        /// The server identifier in the request.
        server_id: Ipv4Addr,
    },
    /// No configured subnet holds the relay's or the interface's address.
    #[error("no [[dhcp.subnets]] entry holds {address} ({via})")]
    NoSubnet {
        /// The address that selects the subnet.
        address: Ipv4Addr,
        /// Where it came from (`giaddr`, `ciaddr`, `receiving interface`).
        via: &'static str,
    },
    /// The pools of the subnet are exhausted.
    #[error("no free address in {subnet}")]
    NoFreeAddress {
        /// The subnet.
        subnet: Ipv4Net,
    },
    /// The MAC's fixed address is not inside the subnet it talks from.
    #[error("reserved address {address} is not a host address of {subnet}, where the client is")]
    ReservationOutsideSubnet {
        /// The reserved address.
        address: Ipv4Addr,
        /// The client's subnet.
        subnet: Ipv4Net,
    },
    /// The MAC's fixed address is used by someone else (or quarantined).
    #[error("reserved address {address} is held by {holder}")]
    ReservationTaken {
        /// The reserved address.
        address: Ipv4Addr,
        /// The MAC holding (or having declined) it.
        holder: MacAddr,
    },
    /// RELEASE/DECLINE of an address this client does not hold.
    #[error("{message} of {address}, which is not leased or offered to this client")]
    NoLease {
        /// `RELEASE` or `DECLINE`.
        message: &'static str,
        /// The address.
        address: Ipv4Addr,
    },
}

/// What to do about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `reply`, after every durable change in `changes` is flushed to the store.
    Reply {
        /// The reply.
        reply: Reply,
        /// Lease changes (ACK: the bound lease; OFFER: an in-memory hold).
        changes: Vec<LeaseChange>,
    },
    /// Apply and persist `changes`; nothing is sent (RELEASE, DECLINE).
    Update {
        /// Lease changes.
        changes: Vec<LeaseChange>,
    },
    /// Send nothing, change nothing.
    Silent(Silence),
}

/// The engine's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The client, when `chaddr` was usable.
    pub mac: Option<MacAddr>,
    /// Transaction id.
    pub xid: u32,
    /// The request's message type, when known.
    pub message: Option<v4::MessageType>,
    /// Who asked.
    pub client: ClientClass,
    /// What to do.
    pub action: Action,
}

impl Decision {
    /// The lease changes (empty for silence).
    pub fn changes(&self) -> &[LeaseChange] {
        match &self.action {
            Action::Reply { changes, .. } | Action::Update { changes } => changes,
            Action::Silent(_) => &[],
        }
    }

    /// True if a durable change comes with the decision (the reply waits for the flush).
    pub fn needs_flush(&self) -> bool {
        self.changes().iter().any(LeaseChange::is_durable)
    }

    /// The reply, if any.
    pub fn reply(&self) -> Option<&Reply> {
        match &self.action {
            Action::Reply { reply, .. } => Some(reply),
            _ => None,
        }
    }

    /// The silence reason, if silent.
    pub fn silence(&self) -> Option<&Silence> {
        match &self.action {
            Action::Silent(s) => Some(s),
            _ => None,
        }
    }

    /// The request's message type name (`DISCOVER`, ...; `?` when unknown).
    pub fn message_name(&self) -> &'static str {
        self.message.map(wire::type_name).unwrap_or("?")
    }

    /// The address concerned: offered/acked `yiaddr`, else the address of the first change.
    pub fn address(&self) -> Option<Ipv4Addr> {
        let from_reply = self
            .reply()
            .map(|r| r.message.yiaddr())
            .filter(|a| !a.is_unspecified());
        from_reply.or_else(|| {
            self.changes().first().map(|c| match c {
                LeaseChange::Put(l) => l.address,
                LeaseChange::Remove { address, .. } => *address,
                LeaseChange::Hold(h) => h.address,
            })
        })
    }
}
