//! Wake-on-LAN magic packets, pure: 6 x 0xFF, 16 x the target MAC, and an optional 6-byte
//! SecureOn password. The same payload goes in a UDP datagram (port 9) or directly after an
//! Ethernet header with EtherType 0x0842.

use lm_api::MacAddr;

/// EtherType of raw Wake-on-LAN frames.
pub const ETHERTYPE_WOL: u16 = 0x0842;

/// The magic payload (102 bytes, or 108 with a SecureOn password).
pub fn magic_payload(target: MacAddr, password: Option<MacAddr>) -> Vec<u8> {
    let mut out = Vec::with_capacity(108);
    out.extend_from_slice(&[0xff; 6]);
    for _ in 0..16 {
        out.extend_from_slice(&target.octets());
    }
    if let Some(p) = password {
        out.extend_from_slice(&p.octets());
    }
    out
}

/// A complete Ethernet frame (broadcast destination) carrying the magic payload.
pub fn ethernet_frame(source: MacAddr, target: MacAddr, password: Option<MacAddr>) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 108);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&source.octets());
    f.extend_from_slice(&ETHERTYPE_WOL.to_be_bytes());
    f.extend_from_slice(&magic_payload(target, password));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_layout() {
        let mac = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        let p = magic_payload(mac, None);
        assert_eq!(p.len(), 102);
        assert_eq!(&p[..6], &[0xff; 6]);
        for i in 0..16 {
            assert_eq!(&p[6 + i * 6..12 + i * 6], &mac.octets());
        }
        let pw = MacAddr([1, 2, 3, 4, 5, 6]);
        let p = magic_payload(mac, Some(pw));
        assert_eq!(p.len(), 108);
        assert_eq!(&p[102..], &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn frame_layout() {
        let f = ethernet_frame(
            MacAddr([2, 0, 0, 0, 0, 1]),
            MacAddr([0x52, 0x54, 0, 0, 0, 9]),
            None,
        );
        assert_eq!(&f[..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&f[12..14], &[0x08, 0x42]);
        assert_eq!(f.len(), 14 + 102);
    }
}
