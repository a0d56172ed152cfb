//! The little this crate reads of packets itself, before boringtun sees them: the WireGuard
//! message type and receiver index of a datagram from the network (to find the peer), and the
//! addresses of an IPv4 header (to route a packet from the TUN device, and to check the inner
//! source of a decrypted one).
//!
//! Pure; every length is checked before it is read (fuzz target `wg_packet`).

use std::net::Ipv4Addr;

/// Sizes of the WireGuard messages (whitepaper section 5.4).
pub const HANDSHAKE_INIT_LEN: usize = 148;
pub const HANDSHAKE_RESPONSE_LEN: usize = 92;
pub const COOKIE_REPLY_LEN: usize = 64;
/// Header (16) plus the AEAD tag (16) of a transport message; an empty one is a keepalive.
pub const DATA_MIN_LEN: usize = 32;

/// What a datagram from the network claims to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// Type 1: names no receiver; the peer is found by decrypting the initiator's static key.
    HandshakeInit,
    /// Type 2, to the handshake whose local index is `receiver`.
    HandshakeResponse { receiver: u32 },
    /// Type 3, to the handshake whose local index is `receiver`.
    CookieReply { receiver: u32 },
    /// Type 4, to the session whose local index is `receiver`.
    Data { receiver: u32 },
}

impl Message {
    /// The receiver index, when the message names one.
    pub fn receiver(self) -> Option<u32> {
        match self {
            Message::HandshakeInit => None,
            Message::HandshakeResponse { receiver }
            | Message::CookieReply { receiver }
            | Message::Data { receiver } => Some(receiver),
        }
    }

    /// The peer slot that a receiver index belongs to: boringtun's `Tunn` gives its sessions
    /// `peer_index << 8 | n`, so the upper 24 bits name the peer.
    pub fn peer_index(self) -> Option<u32> {
        self.receiver().map(|r| r >> 8)
    }
}

/// Why a datagram is not a WireGuard message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("datagram of {0} bytes is shorter than a WireGuard header")]
    Short(usize),
    #[error("unknown WireGuard message type word {0:#010x} (or reserved bytes not zero)")]
    Type(u32),
    #[error("WireGuard message type {kind} must be {want} bytes, got {got}")]
    Length { kind: u32, want: usize, got: usize },
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Classifies a datagram by its first word (type and three reserved zero bytes) and length,
/// as boringtun does, and reads the receiver index. Nothing is authenticated yet.
pub fn classify(datagram: &[u8]) -> Result<Message, PacketError> {
    let kind = le_u32(datagram, 0).ok_or(PacketError::Short(datagram.len()))?;
    let exact = |want: usize| {
        if datagram.len() == want {
            Ok(())
        } else {
            Err(PacketError::Length {
                kind,
                want,
                got: datagram.len(),
            })
        }
    };
    let receiver = |at: usize| le_u32(datagram, at).ok_or(PacketError::Short(datagram.len()));
    match kind {
        1 => exact(HANDSHAKE_INIT_LEN).map(|()| Message::HandshakeInit),
        2 => {
            exact(HANDSHAKE_RESPONSE_LEN)?;
            Ok(Message::HandshakeResponse {
                receiver: receiver(8)?,
            })
        }
        3 => {
            exact(COOKIE_REPLY_LEN)?;
            Ok(Message::CookieReply {
                receiver: receiver(4)?,
            })
        }
        4 => {
            if datagram.len() < DATA_MIN_LEN {
                return Err(PacketError::Length {
                    kind,
                    want: DATA_MIN_LEN,
                    got: datagram.len(),
                });
            }
            Ok(Message::Data {
                receiver: receiver(4)?,
            })
        }
        other => Err(PacketError::Type(other)),
    }
}

/// Source and destination of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Addrs {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
}

/// The addresses of an IPv4 packet, or `None` when `packet` is not one: version other than 4,
/// shorter than 20 bytes, a header length below 5 words or beyond the packet, or a total length
/// below the header length or beyond the packet.
pub fn ipv4_addrs(packet: &[u8]) -> Option<Ipv4Addrs> {
    let first = *packet.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let header_len = usize::from(first & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    if header_len < 20 || header_len > packet.len() || total < header_len || total > packet.len() {
        return None;
    }
    let addr = |at: usize| -> Option<Ipv4Addr> {
        let b = packet.get(at..at + 4)?;
        Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    };
    Some(Ipv4Addrs {
        src: addr(12)?,
        dst: addr(16)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u8, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        if let Some(b) = v.first_mut() {
            *b = kind;
        }
        v
    }

    #[test]
    fn wireguard_messages_are_classified_with_their_receiver() {
        assert_eq!(classify(&msg(1, 148)), Ok(Message::HandshakeInit));
        let mut resp = msg(2, 92);
        resp[8..12].copy_from_slice(&0x0012_3401u32.to_le_bytes());
        let m = classify(&resp).unwrap();
        assert_eq!(
            m,
            Message::HandshakeResponse {
                receiver: 0x0012_3401
            }
        );
        assert_eq!(m.peer_index(), Some(0x1234));
        let mut cookie = msg(3, 64);
        cookie[4..8].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(classify(&cookie), Ok(Message::CookieReply { receiver: 7 }));
        let mut data = msg(4, 32);
        data[4..8].copy_from_slice(&0xffff_ffffu32.to_le_bytes());
        let m = classify(&data).unwrap();
        assert_eq!(m.peer_index(), Some(0x00ff_ffff));
        assert_eq!(classify(&msg(4, 1500)).map(|m| m.receiver()), Ok(Some(0)));
    }

    #[test]
    fn hostile_datagrams_are_refused() {
        assert_eq!(classify(&[]), Err(PacketError::Short(0)));
        assert_eq!(classify(&[4, 0, 0]), Err(PacketError::Short(3)));
        assert!(matches!(
            classify(&msg(1, 147)),
            Err(PacketError::Length { .. })
        ));
        assert!(matches!(
            classify(&msg(1, 149)),
            Err(PacketError::Length { .. })
        ));
        assert!(matches!(
            classify(&msg(2, 148)),
            Err(PacketError::Length { .. })
        ));
        assert!(matches!(
            classify(&msg(3, 65)),
            Err(PacketError::Length { .. })
        ));
        assert!(matches!(
            classify(&msg(4, 31)),
            Err(PacketError::Length { .. })
        ));
        assert!(matches!(classify(&msg(0, 100)), Err(PacketError::Type(0))));
        assert!(matches!(classify(&msg(5, 100)), Err(PacketError::Type(5))));
        // reserved bytes must be zero
        let mut d = msg(4, 64);
        d[1] = 1;
        assert!(matches!(classify(&d), Err(PacketError::Type(0x104))));
    }

    fn ipv4(src: [u8; 4], dst: [u8; 4], total: u16, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p
    }

    #[test]
    fn ipv4_addresses_are_read() {
        let p = ipv4([10, 1, 2, 3], [10, 9, 8, 7], 40, 40);
        assert_eq!(
            ipv4_addrs(&p),
            Some(Ipv4Addrs {
                src: Ipv4Addr::new(10, 1, 2, 3),
                dst: Ipv4Addr::new(10, 9, 8, 7)
            })
        );
        // trailing bytes beyond the total length (padding) are tolerated
        assert!(ipv4_addrs(&ipv4([1; 4], [2; 4], 20, 64)).is_some());
    }

    #[test]
    fn hostile_ip_headers_are_refused() {
        assert_eq!(ipv4_addrs(&[]), None);
        assert_eq!(ipv4_addrs(&[0x45]), None);
        assert_eq!(ipv4_addrs(&ipv4([1; 4], [2; 4], 20, 20)[..19]), None);
        let mut v6 = ipv4([1; 4], [2; 4], 40, 40);
        v6[0] = 0x60;
        assert_eq!(ipv4_addrs(&v6), None);
        let mut short_ihl = ipv4([1; 4], [2; 4], 40, 40);
        short_ihl[0] = 0x44;
        assert_eq!(ipv4_addrs(&short_ihl), None);
        let mut long_ihl = ipv4([1; 4], [2; 4], 40, 40);
        long_ihl[0] = 0x4f; // 60-byte header in a 40-byte packet
        assert_eq!(ipv4_addrs(&long_ihl), None);
        assert_eq!(ipv4_addrs(&ipv4([1; 4], [2; 4], 41, 40)), None);
        assert_eq!(ipv4_addrs(&ipv4([1; 4], [2; 4], 19, 40)), None);
    }
}
