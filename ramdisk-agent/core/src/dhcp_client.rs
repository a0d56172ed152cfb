//! The agent's DHCPv4 client (RFC 2131) as a sans-IO state machine on `dhcproto::v4`.
//!
//! Pure: time (`now`, monotonic) and randomness (`random`, one fresh `u64` per call) are
//! arguments; the caller moves whole Ethernet frames (see [`crate::frame`]) between the machine
//! and an AF_PACKET socket and calls [`DhcpClient::poll`] when [`DhcpClient::next_wakeup`] is due.
//!
//! ```text
//!  Init --poll--> Selecting --OFFER--> Requesting --ACK--> Bound
//!   ^  (DISCOVER)   | retransmit 4,8,..64 s  | (REQUEST)      |
//!   |               v                        | NAK, or no ACK after REQUEST_TRIES
//!   +----------------------------------------+
//! ```
//! The client has no address yet, so every message goes from 0.0.0.0:68 to
//! 255.255.255.255:67 with the broadcast flag set, asking the server to broadcast its reply. It
//! identifies itself with option 60 `lease-agent` (the LM's DHCP server then gives it an address
//! without boot files) and option 61 `01 + MAC`, and requests options 1, 3, 6, 51, 54, 58, 59.
//! Replies with the wrong op, xid, hardware address, message type or server are ignored, each
//! with a reason ([`Ignored`]). Not done in this version: ARP probing of the offered address
//! (DECLINE), RENEWING/REBINDING at T1/T2.

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use lm_api::MacAddr;

use crate::backoff::dhcp_retransmit_timeout;
pub use crate::dhcp_lease::Lease;
use crate::dhcp_lease::{lease_from_ack, usable};
use crate::dhcp_wire;
pub use crate::dhcp_wire::Ignored;
use crate::frame::{self, BROADCAST_MAC, FrameError, UdpChecksum, UdpFrame};

/// UDP port of DHCP clients.
pub const CLIENT_PORT: u16 = 68;
/// UDP port of DHCP servers.
pub const SERVER_PORT: u16 = 67;
/// Option 60, the vendor class the LM's DHCP server recognises as the agent.
pub const VENDOR_CLASS: &[u8] = b"lease-agent";
/// Option 55, the parameters the agent asks for.
pub const REQUESTED_OPTIONS: [OptionCode; 7] = [
    OptionCode::SubnetMask,
    OptionCode::Router,
    OptionCode::DomainNameServer,
    OptionCode::AddressLeaseTime,
    OptionCode::ServerIdentifier,
    OptionCode::Renewal,
    OptionCode::Rebinding,
];
/// REQUESTs sent for one offer before starting over with a DISCOVER.
pub const REQUEST_TRIES: u32 = 4;
/// Wait after a NAK before the next DISCOVER, so a server that NAKs everything is not flooded.
pub const NAK_HOLDOFF: Duration = Duration::from_secs(1);
/// BOOTP messages are padded to at least this size (RFC 1542 3.1.1: some relays drop less).
const MIN_MESSAGE: usize = 300;

/// An address offered by a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub address: Ipv4Addr,
    pub server_id: Ipv4Addr,
}

/// Where the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Nothing sent yet; the next poll at or after `not_before` sends a DISCOVER.
    Init { not_before: Duration },
    /// DISCOVER sent `sent` times; expecting an OFFER.
    Selecting {
        xid: u32,
        sent: u32,
        next_at: Duration,
    },
    /// REQUEST for `offer` sent `sent` times; expecting ACK or NAK.
    Requesting {
        xid: u32,
        offer: Offer,
        sent: u32,
        next_at: Duration,
    },
    /// Configured.
    Bound(Lease),
}

/// What handling a frame did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Nothing; the reason is for a debug log line.
    Ignored(Ignored),
    /// An OFFER was taken: send this REQUEST frame now.
    Send(Vec<u8>),
    /// An ACK bound the lease.
    Bound(Lease),
    /// A NAK sent the client back to `Init`.
    Restarted,
}

/// Our own message could not be built (a bug, not bad input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("encoding a DHCP message failed: {0}")]
    Encode(String),
    #[error("framing a DHCP message failed")]
    Frame(#[from] FrameError),
}

/// The DHCP client of one interface.
#[derive(Debug, Clone)]
pub struct DhcpClient {
    mac: MacAddr,
    started: Duration,
    state: State,
}

impl DhcpClient {
    /// A client for the NIC `mac`, starting at `now` in `Init`.
    pub fn new(mac: MacAddr, now: Duration) -> Self {
        Self {
            mac,
            started: now,
            state: State::Init { not_before: now },
        }
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// When [`Self::poll`] has something to do (`None` once bound).
    pub fn next_wakeup(&self) -> Option<Duration> {
        match &self.state {
            State::Init { not_before } => Some(*not_before),
            State::Selecting { next_at, .. } | State::Requesting { next_at, .. } => Some(*next_at),
            State::Bound(_) => None,
        }
    }

    /// Runs the timers: returns a frame to send when a (re)transmission is due at `now`.
    pub fn poll(&mut self, now: Duration, random: u64) -> Result<Option<Vec<u8>>, BuildError> {
        let jitter = random >> 32;
        match self.state.clone() {
            State::Init { not_before } if now >= not_before => {
                // Lower 32 bits of the random value: a fresh transaction id.
                let xid = random as u32;
                let frame = self.discover(xid, now, random)?;
                let next_at = now + dhcp_retransmit_timeout(1, jitter);
                self.state = State::Selecting {
                    xid,
                    sent: 1,
                    next_at,
                };
                Ok(Some(frame))
            }
            State::Selecting { xid, sent, next_at } if now >= next_at => {
                let frame = self.discover(xid, now, random)?;
                let sent = sent.saturating_add(1);
                let next_at = now + dhcp_retransmit_timeout(sent, jitter);
                self.state = State::Selecting { xid, sent, next_at };
                Ok(Some(frame))
            }
            State::Requesting { sent, next_at, .. } if now >= next_at && sent >= REQUEST_TRIES => {
                self.state = State::Init { not_before: now };
                self.poll(now, random)
            }
            State::Requesting {
                xid,
                offer,
                sent,
                next_at,
            } if now >= next_at => {
                let frame = self.request(xid, &offer, now, random)?;
                let sent = sent.saturating_add(1);
                let next_at = now + dhcp_retransmit_timeout(sent, jitter);
                self.state = State::Requesting {
                    xid,
                    offer,
                    sent,
                    next_at,
                };
                Ok(Some(frame))
            }
            _ => Ok(None),
        }
    }

    /// Feeds one received Ethernet frame to the machine.
    pub fn handle_frame(
        &mut self,
        bytes: &[u8],
        now: Duration,
        random: u64,
    ) -> Result<Handled, BuildError> {
        self.handle_received(bytes, UdpChecksum::Verify, now, random)
    }

    /// [`Self::handle_frame`] for a frame whose UDP checksum the kernel says is not filled in
    /// (see [`UdpChecksum::NotReady`]).
    pub fn handle_received(
        &mut self,
        bytes: &[u8],
        csum: UdpChecksum,
        now: Duration,
        random: u64,
    ) -> Result<Handled, BuildError> {
        let msg = match self.accept(bytes, csum) {
            Ok(m) => m,
            Err(why) => return Ok(Handled::Ignored(why)),
        };
        let kind = msg.opts().msg_type();
        let server = match msg.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
            _ => None,
        };
        match (self.state.clone(), kind) {
            (State::Selecting { xid, .. }, Some(MessageType::Offer)) => {
                if let Err(why) = check_xid(&msg, xid) {
                    return Ok(Handled::Ignored(why));
                }
                let address = msg.yiaddr();
                let Some(server_id) = server.filter(|s| usable(*s)) else {
                    return Ok(Handled::Ignored(Ignored::BadOffer));
                };
                if !usable(address) {
                    return Ok(Handled::Ignored(Ignored::BadOffer));
                }
                let offer = Offer { address, server_id };
                let frame = self.request(xid, &offer, now, random)?;
                let next_at = now + dhcp_retransmit_timeout(1, random >> 32);
                self.state = State::Requesting {
                    xid,
                    offer,
                    sent: 1,
                    next_at,
                };
                Ok(Handled::Send(frame))
            }
            (
                State::Requesting { xid, offer, .. },
                Some(k @ (MessageType::Ack | MessageType::Nak)),
            ) => {
                if let Err(why) = check_xid(&msg, xid) {
                    return Ok(Handled::Ignored(why));
                }
                if let Some(got) = server
                    && got != offer.server_id
                {
                    return Ok(Handled::Ignored(Ignored::WrongServer {
                        got,
                        want: offer.server_id,
                    }));
                }
                if k == MessageType::Nak {
                    self.state = State::Init {
                        not_before: now + NAK_HOLDOFF,
                    };
                    return Ok(Handled::Restarted);
                }
                match lease_from_ack(&msg, &offer, now) {
                    Ok(lease) => {
                        self.state = State::Bound(lease.clone());
                        Ok(Handled::Bound(lease))
                    }
                    Err(why) => Ok(Handled::Ignored(why)),
                }
            }
            (state, kind) => Ok(Handled::Ignored(Ignored::Unexpected(
                kind.map_or_else(|| "none".to_string(), |k| format!("{k:?}")),
                state_name(&state),
            ))),
        }
    }

    /// Frame, port, op and hardware-address checks shared by every reply.
    fn accept(&self, bytes: &[u8], csum: UdpChecksum) -> Result<Message, Ignored> {
        let udp = frame::parse_udp_with(bytes, csum).map_err(Ignored::Frame)?;
        if udp.src_port != SERVER_PORT || udp.dst_port != CLIENT_PORT {
            return Err(Ignored::NotDhcp {
                src: udp.src_port,
                dst: udp.dst_port,
            });
        }
        if udp.dst_mac != self.mac && udp.dst_mac != BROADCAST_MAC {
            return Err(Ignored::NotForUs(udp.dst_mac));
        }
        dhcp_wire::prescan(udp.payload).map_err(|e| Ignored::Decode(e.to_string()))?;
        let msg = Message::decode(&mut Decoder::new(udp.payload))
            .map_err(|e| Ignored::Decode(e.to_string()))?;
        // hlen first: dhcproto's `chaddr()` slices by the wire's hlen and panics above 16.
        if msg.opcode() != Opcode::BootReply || msg.htype() != HType::Eth || msg.hlen() != 6 {
            return Err(Ignored::NotReply);
        }
        if msg.chaddr().get(..6) != Some(&self.mac.octets()[..]) {
            let shown: Vec<String> = msg
                .chaddr()
                .iter()
                .take(6)
                .map(|b| format!("{b:02x}"))
                .collect();
            return Err(Ignored::WrongChaddr(shown.join(":")));
        }
        Ok(msg)
    }

    fn base_message(&self, xid: u32, kind: MessageType, now: Duration) -> Message {
        let unspecified = Ipv4Addr::UNSPECIFIED;
        let mut m = Message::new_with_id(
            xid,
            unspecified,
            unspecified,
            unspecified,
            unspecified,
            &self.mac.0,
        );
        m.set_flags(Flags::default().set_broadcast());
        let secs = now.saturating_sub(self.started).as_secs();
        m.set_secs(u16::try_from(secs).unwrap_or(u16::MAX));
        let opts = m.opts_mut();
        opts.insert(DhcpOption::MessageType(kind));
        opts.insert(DhcpOption::ClientIdentifier(
            [&[1u8][..], &self.mac.0].concat(),
        ));
        opts.insert(DhcpOption::ClassIdentifier(VENDOR_CLASS.to_vec()));
        opts.insert(DhcpOption::ParameterRequestList(REQUESTED_OPTIONS.to_vec()));
        opts.insert(DhcpOption::MaxMessageSize(1500));
        m
    }

    fn discover(&self, xid: u32, now: Duration, random: u64) -> Result<Vec<u8>, BuildError> {
        let m = self.base_message(xid, MessageType::Discover, now);
        self.frame(&m, random)
    }

    fn request(
        &self,
        xid: u32,
        offer: &Offer,
        now: Duration,
        random: u64,
    ) -> Result<Vec<u8>, BuildError> {
        let mut m = self.base_message(xid, MessageType::Request, now);
        m.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(offer.address));
        m.opts_mut()
            .insert(DhcpOption::ServerIdentifier(offer.server_id));
        self.frame(&m, random)
    }

    fn frame(&self, m: &Message, random: u64) -> Result<Vec<u8>, BuildError> {
        let mut payload = m.to_vec().map_err(|e| BuildError::Encode(e.to_string()))?;
        if payload.len() < MIN_MESSAGE {
            payload.resize(MIN_MESSAGE, 0); // option 0 is Pad
        }
        let f = UdpFrame {
            dst_mac: BROADCAST_MAC,
            src_mac: self.mac,
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::BROADCAST,
            src_port: CLIENT_PORT,
            dst_port: SERVER_PORT,
            payload: &payload,
        };
        Ok(frame::build_udp(&f, (random >> 16) as u16)?)
    }
}

fn state_name(s: &State) -> &'static str {
    match s {
        State::Init { .. } => "init",
        State::Selecting { .. } => "selecting",
        State::Requesting { .. } => "requesting",
        State::Bound(_) => "bound",
    }
}

fn check_xid(m: &Message, want: u32) -> Result<(), Ignored> {
    if m.xid() == want {
        Ok(())
    } else {
        Err(Ignored::WrongXid { got: m.xid(), want })
    }
}

#[cfg(test)]
#[path = "dhcp_client_tests.rs"]
mod tests;
