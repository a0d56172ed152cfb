//! The decisions between the IKE layer and the ESP layer, without IO: whether the tunnel can
//! run UDP-encapsulated after IKE_SA_INIT (RFC 7296 2.23, RFC 3948), which routes the
//! responder's narrowed TSr needs, whether the narrowed TSi still holds our inner address, and
//! the ESP SA pair built from the child SA's SPIs and keys; the TSi to offer and the inner
//! address to use (fixed, or assigned by the responder's CP(CFG_REPLY)). Pure: time comes in as `now`.

use std::net::Ipv4Addr;
use std::time::Instant;

use agent_esp::{InboundSa, LifetimeLimits, OutboundSa, SaError, SaKey};
use agent_ike::consts::ts;
use agent_ike::{ChildSa, NatDetection, SkKey, TrafficSelector};
use wg_tunnel::Ipv4Net;
use zeroize::Zeroizing;

use crate::establish::InnerAddress;

/// Why the negotiated result cannot become a tunnel this agent runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "the responder sent no NAT_DETECTION notifies (no NAT traversal): it would expect plain \
         ESP (IP protocol 50), which this agent does not send; enable NAT-T on the responder"
    )]
    PeerWithoutNatT,
    #[error(
        "no NAT between us and the responder, so it would expect plain ESP (IP protocol 50); \
         this agent only sends ESP in UDP/4500: set encap = yes on the responder (strongSwan \
         with kernel-libipsec does this by itself)"
    )]
    NoNat,
    #[error(
        "traffic selector #{index} is not an IPv4 address range (type {ts_type}); only IPv4 is routed"
    )]
    NotIpv4 { index: usize, ts_type: u8 },
    #[error("traffic selector #{index} has a start address above its end")]
    EmptyRange { index: usize },
    #[error("the responder returned no {which} traffic selector")]
    NoSelectors { which: &'static str },
    #[error(
        "the responder narrowed TSi to exclude our inner address {inner}: ask for that address or change it"
    )]
    InnerOutsideTsi { inner: Ipv4Addr },
    #[error(
        "we asked the responder for an inner address and it assigned none; give the agent a \
         fixed one or configure a pool for it on the responder"
    )]
    NoAssignedAddress,
    #[error("the child SA's ESP SPIs or keys: {0}")]
    Sa(#[from] SaError),
}

/// How IKE and ESP travel once IKE_SA_INIT is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterSaInit {
    /// The port IKE_AUTH and everything after use on both sides (behind the non-ESP marker).
    pub ike_port: u16,
    /// ESP is UDP-encapsulated on that port (RFC 3948).
    pub udp_encapsulated_esp: bool,
}

/// The initiator always floats to 4500 after IKE_SA_INIT (RFC 7296 2.23 allows it whether or
/// not a NAT was seen); ESP must be UDP-encapsulated, so a NAT (real or faked by the
/// responder, as strongSwan does for `encap = yes` and kernel-libipsec) has to be detected.
pub fn after_sa_init(nat: &NatDetection) -> Result<AfterSaInit, PlanError> {
    if !nat.peer_supports {
        return Err(PlanError::PeerWithoutNatT);
    }
    if !nat.detected() {
        return Err(PlanError::NoNat);
    }
    Ok(AfterSaInit {
        ike_port: agent_esp::udp_encap::NAT_T_PORT,
        udp_encapsulated_esp: true,
    })
}

fn v4_range(index: usize, t: &TrafficSelector) -> Result<(u32, u32), PlanError> {
    let addr = |b: &[u8]| <[u8; 4]>::try_from(b).map(u32::from_be_bytes);
    let (Ok(start), Ok(end), ts::IPV4_ADDR_RANGE) = (addr(&t.start), addr(&t.end), t.ts_type)
    else {
        return Err(PlanError::NotIpv4 {
            index,
            ts_type: t.ts_type,
        });
    };
    if start > end {
        return Err(PlanError::EmptyRange { index });
    }
    Ok((start, end))
}

/// The fewest CIDR prefixes that cover `start..=end` exactly.
pub fn range_to_prefixes(start: u32, end: u32) -> Vec<Ipv4Net> {
    let mut out = Vec::new();
    let mut cur = u64::from(start);
    let end = u64::from(end);
    while cur <= end {
        // The largest block aligned at `cur` that does not pass `end`.
        let mut size: u64 = if cur == 0 {
            1 << 32
        } else {
            1 << cur.trailing_zeros().min(32)
        };
        while cur + size - 1 > end {
            size >>= 1;
        }
        let len = 32 - size.trailing_zeros() as u8;
        // cur < 2^32 and len <= 32: Ipv4Net::new cannot refuse these.
        if let Ok(net) = Ipv4Net::new(Ipv4Addr::from(cur as u32), len) {
            out.push(net);
        }
        cur += size;
    }
    out
}

/// The routes into the tunnel for the responder's narrowed TSr (protocol and port limits are
/// the responder's business; the route takes the whole address range), deduplicated.
pub fn routes(remote_ts: &[TrafficSelector]) -> Result<Vec<Ipv4Net>, PlanError> {
    if remote_ts.is_empty() {
        return Err(PlanError::NoSelectors { which: "TSr" });
    }
    let mut out = Vec::new();
    for (i, t) in remote_ts.iter().enumerate() {
        let (s, e) = v4_range(i, t)?;
        for n in range_to_prefixes(s, e) {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    Ok(out)
}

/// Checks that the narrowed TSi still covers our inner address.
pub fn check_inner(local_ts: &[TrafficSelector], inner: Ipv4Addr) -> Result<(), PlanError> {
    if local_ts.is_empty() {
        return Err(PlanError::NoSelectors { which: "TSi" });
    }
    let ip = u32::from(inner);
    for (i, t) in local_ts.iter().enumerate() {
        let (s, e) = v4_range(i, t)?;
        if (s..=e).contains(&ip) {
            return Ok(());
        }
    }
    Err(PlanError::InnerOutsideTsi { inner })
}

/// The TSi we ask for: exactly our inner address, any protocol and port.
pub fn inner_selector(inner: Ipv4Addr) -> TrafficSelector {
    TrafficSelector::v4(inner.octets(), inner.octets())
}

/// The TSi we offer: our fixed inner address, or any IPv4 address when the responder assigns
/// it (it narrows TSi to the address it picked).
pub fn local_selector(inner: InnerAddress) -> TrafficSelector {
    match inner {
        InnerAddress::Fixed(a) => inner_selector(a),
        InnerAddress::FromResponder => TrafficSelector::v4([0; 4], [255; 4]),
    }
}

/// The inner address to use after IKE_AUTH: the fixed one, or the responder's assignment
/// (agent-ike already refused a child SA without a usable one when we asked).
pub fn inner_address(
    inner: InnerAddress,
    assigned: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, PlanError> {
    match (inner, assigned) {
        (InnerAddress::Fixed(a), _) => Ok(a),
        (InnerAddress::FromResponder, Some(a)) => Ok(a),
        (InnerAddress::FromResponder, None) => Err(PlanError::NoAssignedAddress),
    }
}

fn sa_key(k: &SkKey) -> Result<SaKey, SaError> {
    let mut keymat = Zeroizing::new([0u8; agent_esp::KEYMAT_LEN]);
    keymat[..agent_esp::KEY_LEN].copy_from_slice(&k.key);
    keymat[agent_esp::KEY_LEN..].copy_from_slice(&k.salt);
    SaKey::from_keymat(&keymat[..])
}

/// The initiator's ESP SA pair for `child`: outbound with the responder's SPI and the
/// initiator-to-responder key, inbound with our SPI and the responder-to-initiator key.
pub fn esp_sas(
    child: &ChildSa,
    limits: LifetimeLimits,
    now: Instant,
) -> Result<(OutboundSa, InboundSa), PlanError> {
    let out_key = sa_key(&child.keys.initiator_to_responder)?;
    let in_key = sa_key(&child.keys.responder_to_initiator)?;
    Ok((
        OutboundSa::new(child.spi_out, &out_key, limits, now)?,
        InboundSa::new(child.spi_in, &in_key, limits, now)?,
    ))
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
