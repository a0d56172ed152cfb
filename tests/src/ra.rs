//! IPv6 neighbour-discovery messages the lab needs (RFC 4861): building and parsing Router
//! Advertisements and Router Solicitations, the ICMPv6 checksum (RFC 4443 section 2.3) and the
//! EUI-64 link-local address of a MAC (RFC 4291 appendix A).
//!
//! Pure: bytes in, bytes out. The responder that sends them is in [`crate::ra_responder`].
//!
//! ```text
//! Router Advertisement (type 134)          Prefix Information option (type 3, length 4 = 32 bytes)
//!  0      1      2      3                   0      1      2      3
//! +------+------+-------------+            +------+------+------+------+
//! | 134  |  0   |  checksum   |            |  3   |  4   |prefix| L A  |
//! +------+------+-------------+            |      |      | len  | flags|
//! |hoplim| M O  |router lifet.|            +------+------+------+------+
//! +------+------+-------------+            | valid lifetime (s)        |
//! | reachable time (ms)       |            | preferred lifetime (s)    |
//! | retrans timer (ms)        |            | reserved                  |
//! | options ...               |            | prefix (16 bytes)         |
//! ```
//! Router Solicitation (type 133): type, code 0, checksum, 4 reserved bytes, options. Source
//! link-layer address option: type 1, length 1 (8 bytes), the MAC.

use std::net::Ipv6Addr;

use lm_api::MacAddr;

/// ICMPv6 type of a Router Solicitation.
pub const ROUTER_SOLICIT: u8 = 133;
/// ICMPv6 type of a Router Advertisement.
pub const ROUTER_ADVERT: u8 = 134;
/// All-nodes multicast address: where RAs go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// All-routers multicast address: where RSs go.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

const OPT_SOURCE_LL: u8 = 1;
const OPT_PREFIX: u8 = 3;
const OPT_MTU: u8 = 5;

/// A message that is not a well-formed RS/RA.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NdError {
    /// Shorter than the fixed part of the message.
    #[error("message of {got} bytes, the fixed part needs {need}")]
    Truncated { need: usize, got: usize },
    /// Another ICMPv6 type.
    #[error("ICMPv6 type {found}, expected {expected}")]
    WrongType { found: u8, expected: u8 },
    /// RFC 4861 requires code 0.
    #[error("ICMPv6 code {0}, must be 0")]
    BadCode(u8),
    /// An option with length 0, one that runs past the end, or a malformed known option.
    #[error("bad option at byte {offset}: {reason}")]
    BadOption { offset: usize, reason: &'static str },
}

/// A Prefix Information option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixInfo {
    /// The prefix (bits past `len` are zero when built by [`RouterAdvert::to_bytes`]).
    pub prefix: Ipv6Addr,
    /// Prefix length in bits, at most 128.
    pub len: u8,
    /// L flag: the prefix is on this link.
    pub on_link: bool,
    /// A flag: hosts may form addresses from it (SLAAC).
    pub autonomous: bool,
    /// Valid lifetime in seconds.
    pub valid_lifetime: u32,
    /// Preferred lifetime in seconds.
    pub preferred_lifetime: u32,
}

/// A Router Advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterAdvert {
    /// Hop limit hosts should use (0: unspecified).
    pub cur_hop_limit: u8,
    /// M flag: addresses via DHCPv6.
    pub managed: bool,
    /// O flag: other configuration via DHCPv6.
    pub other_config: bool,
    /// Seconds this router is a default router; 0: not a default router.
    pub router_lifetime: u16,
    /// Milliseconds, 0: unspecified.
    pub reachable_time: u32,
    /// Milliseconds, 0: unspecified.
    pub retrans_timer: u32,
    /// Source link-layer address option.
    pub source_mac: Option<MacAddr>,
    /// MTU option.
    pub mtu: Option<u32>,
    /// Prefix Information options.
    pub prefixes: Vec<PrefixInfo>,
}

impl RouterAdvert {
    /// What the lab sends: not a default router (we route nothing), one on-link autonomous
    /// prefix, the bridge's MAC, no DHCPv6 (so iPXE finishes autoconfiguration at once).
    pub fn for_lab(router_mac: MacAddr, prefix: Ipv6Addr, len: u8) -> Self {
        RouterAdvert {
            cur_hop_limit: 64,
            managed: false,
            other_config: false,
            router_lifetime: 0,
            reachable_time: 0,
            retrans_timer: 0,
            source_mac: Some(router_mac),
            mtu: None,
            prefixes: vec![PrefixInfo {
                prefix,
                len,
                on_link: true,
                autonomous: true,
                valid_lifetime: 86_400,
                preferred_lifetime: 14_400,
            }],
        }
    }

    /// The ICMPv6 message with its checksum for `src` -> `dst`.
    pub fn to_bytes(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut m = vec![ROUTER_ADVERT, 0, 0, 0, self.cur_hop_limit];
        m.push(u8::from(self.managed) << 7 | u8::from(self.other_config) << 6);
        m.extend_from_slice(&self.router_lifetime.to_be_bytes());
        m.extend_from_slice(&self.reachable_time.to_be_bytes());
        m.extend_from_slice(&self.retrans_timer.to_be_bytes());
        if let Some(mac) = self.source_mac {
            push_source_ll(&mut m, mac);
        }
        if let Some(mtu) = self.mtu {
            m.extend_from_slice(&[OPT_MTU, 1, 0, 0]);
            m.extend_from_slice(&mtu.to_be_bytes());
        }
        for p in &self.prefixes {
            let len = p.len.min(128);
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            let prefix = u128::from(p.prefix) & mask;
            m.extend_from_slice(&[OPT_PREFIX, 4, len]);
            m.push(u8::from(p.on_link) << 7 | u8::from(p.autonomous) << 6);
            m.extend_from_slice(&p.valid_lifetime.to_be_bytes());
            m.extend_from_slice(&p.preferred_lifetime.to_be_bytes());
            m.extend_from_slice(&[0; 4]);
            m.extend_from_slice(&prefix.to_be_bytes());
        }
        set_checksum(&mut m, src, dst);
        m
    }

    /// Parses an ICMPv6 message (without IPv6 header; the checksum is not checked here, the
    /// kernel did it for raw sockets). Unknown options are skipped.
    pub fn parse(msg: &[u8]) -> Result<Self, NdError> {
        let opts = fixed_part(msg, ROUTER_ADVERT, 16)?;
        let mut ra = RouterAdvert {
            cur_hop_limit: msg[4],
            managed: msg[5] & 0x80 != 0,
            other_config: msg[5] & 0x40 != 0,
            router_lifetime: u16::from_be_bytes([msg[6], msg[7]]),
            reachable_time: be32(&msg[8..12]),
            retrans_timer: be32(&msg[12..16]),
            source_mac: None,
            mtu: None,
            prefixes: Vec::new(),
        };
        for (offset, kind, body) in options(opts, 16)? {
            let bad = |reason| NdError::BadOption { offset, reason };
            match kind {
                OPT_SOURCE_LL => {
                    ra.source_mac = ra.source_mac.or(MacAddr::from_slice(body));
                }
                OPT_MTU if body.len() == 6 => ra.mtu = Some(be32(&body[2..6])),
                OPT_MTU => return Err(bad("MTU option must be 8 bytes")),
                OPT_PREFIX if body.len() == 30 => {
                    if body[0] > 128 {
                        return Err(bad("prefix length over 128"));
                    }
                    let mut prefix = [0u8; 16];
                    prefix.copy_from_slice(&body[14..30]);
                    ra.prefixes.push(PrefixInfo {
                        prefix: Ipv6Addr::from(prefix),
                        len: body[0],
                        on_link: body[1] & 0x80 != 0,
                        autonomous: body[1] & 0x40 != 0,
                        valid_lifetime: be32(&body[2..6]),
                        preferred_lifetime: be32(&body[6..10]),
                    });
                }
                OPT_PREFIX => return Err(bad("prefix option must be 32 bytes")),
                _ => {}
            }
        }
        Ok(ra)
    }
}

/// A Router Solicitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterSolicit {
    /// Source link-layer address option (absent when sent from `::`).
    pub source_mac: Option<MacAddr>,
}

impl RouterSolicit {
    /// The ICMPv6 message with its checksum for `src` -> `dst`.
    pub fn to_bytes(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut m = vec![ROUTER_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
        if let Some(mac) = self.source_mac {
            push_source_ll(&mut m, mac);
        }
        set_checksum(&mut m, src, dst);
        m
    }

    /// Parses an ICMPv6 message (without IPv6 header). Unknown options are skipped.
    pub fn parse(msg: &[u8]) -> Result<Self, NdError> {
        let opts = fixed_part(msg, ROUTER_SOLICIT, 8)?;
        let mut source_mac = None;
        for (_, kind, body) in options(opts, 8)? {
            if kind == OPT_SOURCE_LL {
                source_mac = source_mac.or(MacAddr::from_slice(body));
            }
        }
        Ok(RouterSolicit { source_mac })
    }
}

/// The ICMPv6 checksum of `msg` (its checksum field taken as is) for `src` -> `dst`; a message
/// with a correct checksum sums to 0.
pub fn checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            sum += hi | pair.get(1).copied().map_or(0, u64::from);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(msg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The EUI-64 link-local address of `mac` (fe80::, universal/local bit flipped, ff:fe inserted).
pub fn link_local_from_mac(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 0x02,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

fn push_source_ll(m: &mut Vec<u8>, mac: MacAddr) {
    m.extend_from_slice(&[OPT_SOURCE_LL, 1]);
    m.extend_from_slice(&mac.0);
}

fn set_checksum(m: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
    m[2..4].fill(0);
    let c = checksum(src, dst, m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn fixed_part(msg: &[u8], expected: u8, need: usize) -> Result<&[u8], NdError> {
    match msg.first() {
        None => return Err(NdError::Truncated { need, got: 0 }),
        Some(&found) if found != expected => return Err(NdError::WrongType { found, expected }),
        Some(_) => {}
    }
    if msg.len() < need {
        return Err(NdError::Truncated {
            need,
            got: msg.len(),
        });
    }
    if msg[1] != 0 {
        return Err(NdError::BadCode(msg[1]));
    }
    Ok(&msg[need..])
}

/// One option: offset in the message, type, body after the type and length bytes.
type NdOption<'a> = (usize, u8, &'a [u8]);

/// Splits the options area into options, checking every length.
fn options(mut opts: &[u8], mut offset: usize) -> Result<Vec<NdOption<'_>>, NdError> {
    let mut out = Vec::new();
    while !opts.is_empty() {
        let bad = |reason| NdError::BadOption { offset, reason };
        let [kind, units, ..] = *opts else {
            return Err(bad("option header cut off"));
        };
        let len = usize::from(units) * 8;
        if len == 0 {
            return Err(bad("option length 0"));
        }
        let Some(body) = opts.get(2..len) else {
            return Err(bad("option runs past the end"));
        };
        out.push((offset, kind, body));
        opts = &opts[len..];
        offset += len;
    }
    Ok(out)
}

#[cfg(test)]
#[path = "ra_tests.rs"]
mod tests;
