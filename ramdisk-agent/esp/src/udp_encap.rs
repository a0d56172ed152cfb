//! UDP encapsulation of ESP (RFC 3948): on port 4500 one socket carries IKE messages (after a
//! 4-byte non-ESP marker of zeros, 2.2), NAT-keepalives (a single 0xFF byte, 2.3) and ESP
//! packets (whose SPI is never zero, 2.1). Pure.
//!
//! ```text
//!   IKE:        | 00 00 00 00 | IKE header ...     |
//!   keepalive:  | FF |
//!   ESP:        | SPI (non-zero) | sequence | ...  |
//! ```

use crate::error::ClassifyError;
use crate::packet::HEADER_LEN;

/// The non-ESP marker in front of IKE messages on port 4500.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// The NAT-keepalive datagram.
pub const NAT_KEEPALIVE: [u8; 1] = [0xff];
/// The NAT-T port.
pub const NAT_T_PORT: u16 = 4500;

/// What a UDP/4500 datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// An IKE message (the marker removed): for the IKE layer.
    Ike(&'a [u8]),
    /// A NAT-keepalive: ignore.
    NatKeepalive,
    /// An ESP packet (the whole datagram), for the inbound SA named by `spi`.
    Esp { spi: u32, packet: &'a [u8] },
}

/// Tells the three kinds apart (RFC 3948 2.1-2.3).
pub fn classify(datagram: &[u8]) -> Result<Datagram<'_>, ClassifyError> {
    match datagram {
        [] => Err(ClassifyError::Empty),
        [0xff] => Ok(Datagram::NatKeepalive),
        [0, 0, 0, 0] => Err(ClassifyError::EmptyIke),
        [0, 0, 0, 0, ike @ ..] => Ok(Datagram::Ike(ike)),
        d if d.len() < HEADER_LEN => Err(ClassifyError::TooShortForEsp { len: d.len() }),
        [a, b, c, d, ..] => {
            let spi = u32::from_be_bytes([*a, *b, *c, *d]);
            if spi < 256 {
                return Err(ClassifyError::ReservedSpi { spi });
            }
            Ok(Datagram::Esp {
                spi,
                packet: datagram,
            })
        }
        // A slice shorter than 4 bytes was refused above as too short for ESP.
        d => Err(ClassifyError::TooShortForEsp { len: d.len() }),
    }
}

/// Writes `ike_message` behind the non-ESP marker into `out` (cleared first).
pub fn ike_datagram(ike_message: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(NON_ESP_MARKER.len() + ike_message.len());
    out.extend_from_slice(&NON_ESP_MARKER);
    out.extend_from_slice(ike_message);
}

/// The NAT-keepalive datagram (send every 20 s or so when behind a NAT, RFC 3948 4).
pub fn nat_keepalive() -> [u8; 1] {
    NAT_KEEPALIVE
}

/// An ESP packet from [`crate::OutboundSa`] is sent as it is: no marker, the SPI is first.
pub fn esp_datagram(esp_packet: &[u8]) -> &[u8] {
    esp_packet
}
