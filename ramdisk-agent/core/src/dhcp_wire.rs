//! Checks on a received DHCP message's bytes before `dhcproto` decodes them, and the reasons a
//! received frame is ignored ([`Ignored`]).
//!
//! Pure, no IO. `dhcproto` 0.15 trusts some option lengths: its decoder has `debug_assert!`s on
//! the lengths of options 80, 81, 94 and 152-155 (a panic in debug and fuzz builds on hostile
//! input), and it does not check the magic cookie. [`prescan`] walks the option list the same
//! way `dhcproto` does (consecutive options with the same code are concatenated, RFC 3396) and
//! refuses such messages first, so no input reaches those asserts.
//!
//! ```text
//!  0                236        240
//!  | fixed BOOTP    | 63825363 | code len value ... | 255 (End) | pad
//! ```

use std::net::Ipv4Addr;

use lm_api::MacAddr;

use crate::frame::FrameError;

/// Why a received frame did not move the machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error("not an IPv4/UDP frame: {0}")]
    Frame(FrameError),
    #[error("UDP {src} -> {dst} is not DHCP server -> client")]
    NotDhcp { src: u16, dst: u16 },
    #[error("frame for {0}, not for us")]
    NotForUs(MacAddr),
    #[error("DHCP message does not decode: {0}")]
    Decode(String),
    #[error("not a BOOTREPLY from an Ethernet server")]
    NotReply,
    #[error("xid {got:#010x} is not ours ({want:#010x})")]
    WrongXid { got: u32, want: u32 },
    #[error("reply for hardware address {0}, not ours")]
    WrongChaddr(String),
    #[error("message type {0} is not expected in state {1}")]
    Unexpected(String, &'static str),
    #[error("offer without a usable address or server identifier")]
    BadOffer,
    #[error("reply from server {got}, but we chose {want}")]
    WrongServer { got: Ipv4Addr, want: Ipv4Addr },
    #[error("ACK unusable: {0}")]
    BadAck(&'static str),
}

/// Length of the fixed BOOTP part before the magic cookie.
pub const FIXED_LEN: usize = 236;
/// The DHCP magic cookie (RFC 2131 section 3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// Why a DHCP message is refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("DHCP message of {0} bytes is shorter than the 240-byte header")]
    Short(usize),
    #[error("DHCP magic cookie is missing (a plain BOOTP message)")]
    NoCookie,
    #[error("option {code} has {len} bytes, which its definition does not allow")]
    OptionLength { code: u8, len: usize },
}

/// The lengths `dhcproto` asserts on, and what they must be.
fn length_ok(code: u8, len: usize) -> bool {
    match code {
        80 => len == 0,        // Rapid Commit
        81 => len >= 3,        // Client FQDN: flags, rcode1, rcode2, name
        94 => len == 3,        // Client Network Interface Identifier
        152..=155 => len == 4, // Bulk Leasequery times
        _ => true,
    }
}

/// Checks the header length, the magic cookie and the asserted option lengths.
pub fn prescan(msg: &[u8]) -> Result<(), WireError> {
    if msg.len() < FIXED_LEN + MAGIC_COOKIE.len() {
        return Err(WireError::Short(msg.len()));
    }
    if msg.get(FIXED_LEN..FIXED_LEN + 4) != Some(&MAGIC_COOKIE[..]) {
        return Err(WireError::NoCookie);
    }
    let mut pos = FIXED_LEN + 4;
    // The run of consecutive options with one code: (code, total length).
    let mut run: Option<(u8, usize)> = None;
    let finish = |run: Option<(u8, usize)>| match run {
        Some((code, len)) if !length_ok(code, len) => Err(WireError::OptionLength { code, len }),
        _ => Ok(()),
    };
    while let Some(&code) = msg.get(pos) {
        if code == 0 || code == 255 {
            finish(run.take())?;
            if code == 255 {
                return Ok(());
            }
            pos += 1;
            continue;
        }
        // A truncated option makes dhcproto stop with an error, which is safe.
        let Some(&len) = msg.get(pos + 1) else { break };
        let len = usize::from(len);
        if msg.get(pos + 2..pos + 2 + len).is_none() {
            break;
        }
        run = match run {
            Some((c, total)) if c == code => Some((c, total + len)),
            other => {
                finish(other)?;
                Some((code, len))
            }
        };
        pos += 2 + len;
    }
    finish(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg(options: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; FIXED_LEN];
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(options);
        m
    }

    #[test]
    fn accepts_ordinary_options() {
        assert_eq!(
            prescan(&msg(&[53, 1, 2, 54, 4, 10, 0, 0, 1, 0, 0, 255, 0, 0])),
            Ok(())
        );
        assert_eq!(
            prescan(&msg(&[
                80, 0, 81, 3, 0, 0, 0, 94, 3, 1, 2, 0, 152, 4, 0, 0, 0, 0
            ])),
            Ok(())
        );
        // Concatenated options (RFC 3396) are judged on their total length.
        assert_eq!(prescan(&msg(&[94, 1, 1, 94, 2, 2, 0])), Ok(()));
        // Truncated options are left to the decoder, which fails cleanly.
        assert_eq!(prescan(&msg(&[53, 9, 1])), Ok(()));
        assert_eq!(prescan(&msg(&[])), Ok(()));
    }

    #[test]
    fn refuses_what_would_trip_dhcproto() {
        assert_eq!(prescan(&[0; 239]), Err(WireError::Short(239)));
        assert_eq!(prescan(&[0; 300]), Err(WireError::NoCookie));
        for (opts, code, len) in [
            (&[80u8, 1, 0][..], 80, 1),
            (&[81, 2, 0, 0, 255][..], 81, 2),
            (&[81, 0][..], 81, 0),
            (&[94, 2, 1, 2, 0][..], 94, 2),
            (&[94, 2, 1, 2, 94, 2, 3, 4][..], 94, 4),
            (&[155, 3, 0, 0, 0][..], 155, 3),
        ] {
            assert_eq!(
                prescan(&msg(opts)),
                Err(WireError::OptionLength { code, len }),
                "{opts:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics(opts in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = prescan(&msg(&opts));
        }
    }
}
