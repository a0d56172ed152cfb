//! DHCPv4 bytes <-> [`v4::Message`], guarded so hostile datagrams never reach a panic.
//!
//! ```text
//!  0      1      2      3      4          8       12      16     20     24     28      44     108     236  240
//!  | op   | htype| hlen | hops | xid      | secs+fl| ciaddr| yiaddr| siaddr| giaddr| chaddr| sname | file | cookie | options ... 255
//! ```
//! (RFC 2131 section 2; option overload, option 52, per RFC 2131 section 4.1: 1 = `file` holds
//! options, 2 = `sname`, 3 = both, `file` first.)
//!
//! [`decode`] checks lengths and the magic cookie, walks every option area once before
//! dhcproto sees it (rejecting overruns and the option lengths dhcproto 0.15 would trip a debug
//! assertion or an underflow on: 80, 81, 94, 151-155, with RFC 3396 concatenation taken into
//! account), then decodes and merges overloaded areas into the main options. [`inspect`] checks
//! the fields the engine relies on (op, Ethernet `chaddr`, message type). Pure: no IO.

use dhcproto::{Decodable, Decoder, Encodable, Encoder, v4};
use lm_api::MacAddr;

/// Fixed BOOTP header plus the magic cookie.
pub const MIN_MESSAGE_LEN: usize = 240;
/// Largest datagram accepted (the receive buffer of the shell).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// BOOTP minimum message size; replies are padded to it (old PXE ROMs drop shorter ones).
pub const MIN_REPLY_LEN: usize = 300;

const SNAME: std::ops::Range<usize> = 44..108;
const FILE: std::ops::Range<usize> = 108..236;
const COOKIE: std::ops::Range<usize> = 236..240;

/// Why a datagram is not a DHCP request the engine can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Shorter than the header.
    #[error("{len} bytes is shorter than the {MIN_MESSAGE_LEN}-byte DHCP header")]
    Truncated {
        /// Datagram length.
        len: usize,
    },
    /// Longer than accepted.
    #[error("{len} bytes is longer than the {MAX_MESSAGE_LEN} accepted")]
    TooLong {
        /// Datagram length.
        len: usize,
    },
    /// Not the DHCP magic cookie (plain BOOTP, or garbage).
    #[error("magic cookie {found:02x?} is not 63 82 53 63")]
    BadCookie {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// An option's length runs past the end of its area.
    #[error("option {code} runs past the end of its area")]
    OptionOverrun {
        /// Option code.
        code: u8,
    },
    /// An option's (concatenated) length is impossible for its code.
    #[error("option {code} has length {len}, expected {expected}")]
    OptionLength {
        /// Option code.
        code: u8,
        /// Total length found.
        len: usize,
        /// What the code requires.
        expected: &'static str,
    },
    /// Option 52 with a value other than 1, 2, 3.
    #[error("option overload value {value} is not 1, 2 or 3")]
    BadOverload {
        /// The value.
        value: u8,
    },
    /// dhcproto refused the message.
    #[error("undecodable: {0}")]
    Decode(String),
    /// Not a BOOTREQUEST (a reply, or garbage).
    #[error("op {0} is not BOOTREQUEST (1)")]
    WrongOp(u8),
    /// `hlen` larger than the 16-byte `chaddr` field.
    #[error("hardware address length {0} exceeds the 16-byte chaddr field")]
    HardwareLength(u8),
    /// Not Ethernet: the gate and the leases are keyed by 6-byte MACs.
    #[error("hardware type {htype} length {hlen}: only Ethernet (1, 6) is served")]
    NotEthernet {
        /// htype.
        htype: u8,
        /// hlen.
        hlen: u8,
    },
    /// A multicast/broadcast `chaddr`.
    #[error("chaddr {0} is a group address")]
    GroupMac(MacAddr),
    /// No option 53.
    #[error("no message type (option 53)")]
    MissingMessageType,
    /// Option 53 is a server message or unknown.
    #[error("message type {0} is not sent by clients")]
    NotClientMessage(u8),
    /// A required field or option is absent.
    #[error("{message} without {what}")]
    Missing {
        /// The message type.
        message: &'static str,
        /// What is missing.
        what: &'static str,
    },
}

/// Decodes one datagram into a message, with overloaded options merged.
pub fn decode(bytes: &[u8]) -> Result<v4::Message, Malformed> {
    if bytes.len() < MIN_MESSAGE_LEN {
        return Err(Malformed::Truncated { len: bytes.len() });
    }
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(Malformed::TooLong { len: bytes.len() });
    }
    let area = |r: std::ops::Range<usize>| bytes.get(r).unwrap_or_default();
    let cookie: [u8; 4] = area(COOKIE).try_into().unwrap_or_default();
    if cookie != v4::MAGIC {
        return Err(Malformed::BadCookie { found: cookie });
    }
    let main = area(MIN_MESSAGE_LEN..bytes.len());
    let overload = scan(main)?;
    let extra: Vec<&[u8]> = match overload {
        None => vec![],
        Some(1) => vec![area(FILE)],
        Some(2) => vec![area(SNAME)],
        Some(3) => vec![area(FILE), area(SNAME)],
        Some(value) => return Err(Malformed::BadOverload { value }),
    };
    for a in &extra {
        if scan(a)?.is_some() {
            return Err(Malformed::OptionLength {
                code: 52,
                len: 1,
                expected: "only in the main option area",
            });
        }
    }
    let mut msg = v4::Message::decode(&mut Decoder::new(bytes))
        .map_err(|e| Malformed::Decode(e.to_string()))?;
    if !extra.is_empty() {
        msg.clear_fname();
        msg.clear_sname();
        for a in extra {
            let opts = v4::DhcpOptions::decode(&mut Decoder::new(a))
                .map_err(|e| Malformed::Decode(e.to_string()))?;
            for (code, opt) in opts {
                if !msg.opts().contains(code) {
                    msg.opts_mut().insert(opt);
                }
            }
        }
        msg.opts_mut().remove(v4::OptionCode::OptionOverload);
    }
    Ok(msg)
}

/// Walks one option area; returns the option overload value if option 52 is present.
/// Adjacent options with the same code are one option (RFC 3396), as dhcproto decodes them.
fn scan(area: &[u8]) -> Result<Option<u8>, Malformed> {
    let mut overload = None;
    let mut run: Option<(u8, usize)> = None;
    let mut rest = area;
    while let Some((&code, tail)) = rest.split_first() {
        if code == 0 || code == 255 {
            check_run(run.take())?;
            if code == 255 {
                break;
            }
            rest = tail;
            continue;
        }
        let Some((&len, tail)) = tail.split_first() else {
            return Err(Malformed::OptionOverrun { code });
        };
        let Some(value) = tail.get(..usize::from(len)) else {
            return Err(Malformed::OptionOverrun { code });
        };
        rest = tail.get(usize::from(len)..).unwrap_or_default();
        run = match run {
            Some((c, total)) if c == code => Some((c, total + usize::from(len))),
            other => {
                check_run(other)?;
                Some((code, usize::from(len)))
            }
        };
        if code == 52 {
            overload = Some(value.first().copied().unwrap_or(0));
        }
    }
    check_run(run)?;
    Ok(overload)
}

fn check_run(run: Option<(u8, usize)>) -> Result<(), Malformed> {
    let Some((code, len)) = run else {
        return Ok(());
    };
    let (ok, expected) = match code {
        52 => (len == 1, "1"),
        80 => (len == 0, "0"),
        81 => (len >= 3, "at least 3"),
        94 => (len == 3, "3"),
        151 => (len >= 1, "at least 1"),
        152..=155 => (len == 4, "4"),
        _ => (true, ""),
    };
    if ok {
        Ok(())
    } else {
        Err(Malformed::OptionLength {
            code,
            len,
            expected,
        })
    }
}

/// The name of a message type for logs and events (`DISCOVER`, `ACK`, ...).
pub fn type_name(t: v4::MessageType) -> &'static str {
    use v4::MessageType as M;
    match t {
        M::Discover => "DISCOVER",
        M::Offer => "OFFER",
        M::Request => "REQUEST",
        M::Decline => "DECLINE",
        M::Ack => "ACK",
        M::Nak => "NAK",
        M::Release => "RELEASE",
        M::Inform => "INFORM",
        _ => "OTHER",
    }
}

/// The client's MAC, checked: BOOTREQUEST, Ethernet, `hlen` 6, not a group address.
pub fn client_mac(msg: &v4::Message) -> Result<MacAddr, Malformed> {
    if msg.opcode() != v4::Opcode::BootRequest {
        return Err(Malformed::WrongOp(msg.opcode().into()));
    }
    let (htype, hlen) = (u8::from(msg.htype()), msg.hlen());
    if hlen > 16 {
        return Err(Malformed::HardwareLength(hlen));
    }
    if msg.htype() != v4::HType::Eth || hlen != 6 {
        return Err(Malformed::NotEthernet { htype, hlen });
    }
    let mac = MacAddr::from_slice(msg.chaddr()).ok_or(Malformed::NotEthernet { htype, hlen })?;
    if mac.is_multicast() {
        return Err(Malformed::GroupMac(mac));
    }
    Ok(mac)
}

/// The checked MAC and client message type of a request.
pub fn inspect(msg: &v4::Message) -> Result<(MacAddr, v4::MessageType), Malformed> {
    let mac = client_mac(msg)?;
    use v4::MessageType as M;
    match msg.opts().msg_type() {
        None => Err(Malformed::MissingMessageType),
        Some(t @ (M::Discover | M::Request | M::Decline | M::Release | M::Inform)) => Ok((mac, t)),
        Some(other) => Err(Malformed::NotClientMessage(other.into())),
    }
}

/// Encodes a reply, padded to [`MIN_REPLY_LEN`].
pub fn encode(msg: &v4::Message) -> Result<Vec<u8>, dhcproto::error::EncodeError> {
    let mut buf = Vec::with_capacity(MIN_REPLY_LEN);
    msg.encode(&mut Encoder::new(&mut buf))?;
    if buf.len() < MIN_REPLY_LEN {
        buf.resize(MIN_REPLY_LEN, 0);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests;
