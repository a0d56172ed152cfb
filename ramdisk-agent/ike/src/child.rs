//! The first child SA (RFC 7296 1.2, 2.17): the ESP proposal we offer (AES-GCM-16-256, no
//! ESN), the check of the responder's choice and narrowed traffic selectors, and the keys
//! an ESP layer needs. Pure.
//!
//! ```text
//!  KEYMAT = prf+(SK_d, Ni | Nr)
//!         = key i->r (32) | salt i->r (4) | key r->i (32) | salt r->i (4)   (RFC 5282: no SK_a)
//! ```

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::consts::{protocol, transform as tf};
use crate::error::CryptoError;
use crate::keys::prf_plus;
use crate::payload::{Proposal, TrafficSelector, Transform};
use crate::sk::{KEY_LEN, SALT_LEN, SkKey};

/// Bytes of KEYMAT for one AES-GCM-16-256 child SA: both directions' key and salt.
pub const CHILD_KEYMAT_LEN: usize = 2 * (KEY_LEN + SALT_LEN);

/// The ESN transform we offer: extended sequence numbers off.
pub const ESN_NONE: Transform = Transform {
    kind: tf::ESN,
    id: tf::ESN_NONE,
    key_bits: None,
};

/// Our child SA proposal: ESP with our inbound SPI, AES-GCM-16-256, ESN none.
pub fn offer(spi_in: u32) -> Proposal {
    Proposal {
        num: 1,
        protocol: protocol::ESP,
        spi: spi_in.to_be_bytes().to_vec(),
        transforms: vec![Transform::AES256_GCM16, ESN_NONE],
    }
}

/// The two directions' keys of a child SA.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ChildKeys {
    /// Initiator to responder: what we seal with.
    pub initiator_to_responder: SkKey,
    /// Responder to initiator: what we open with.
    pub responder_to_initiator: SkKey,
}

impl std::fmt::Debug for ChildKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChildKeys(redacted)")
    }
}

/// KEYMAT = prf+(SK_d, Ni | Nr) split initiator->responder first (RFC 7296 2.17).
pub fn derive_child_keys(sk_d: &[u8], ni: &[u8], nr: &[u8]) -> Result<ChildKeys, CryptoError> {
    let seed = [ni, nr].concat();
    let km = prf_plus(sk_d, &seed, CHILD_KEYMAT_LEN)?;
    let mut part = [0u8; KEY_LEN + SALT_LEN];
    part.copy_from_slice(&km[..KEY_LEN + SALT_LEN]);
    let initiator_to_responder = SkKey::from_bytes(&part);
    part.copy_from_slice(&km[KEY_LEN + SALT_LEN..]);
    let responder_to_initiator = SkKey::from_bytes(&part);
    part.zeroize();
    Ok(ChildKeys {
        initiator_to_responder,
        responder_to_initiator,
    })
}

/// An established ESP SA pair in tunnel mode, as an ESP layer uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSa {
    /// Our SPI: the responder sends to us with it; we open with `keys.responder_to_initiator`.
    pub spi_in: u32,
    /// The responder's SPI: we send with it, sealed with `keys.initiator_to_responder`.
    pub spi_out: u32,
    pub keys: ChildKeys,
    /// The selectors the responder agreed to (narrowed from ours): our side, its side.
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    /// Always false: we offer no extended sequence numbers.
    pub esn: bool,
}

/// Checks the responder's SA payload against our offer and returns its SPI.
pub fn chosen_spi(sa: &[Proposal], offered: &Proposal) -> Result<u32, &'static str> {
    let [prop] = sa else {
        return Err("the SA must carry exactly one proposal");
    };
    if prop.num != offered.num || prop.protocol != protocol::ESP {
        return Err("proposal number or protocol differ from our ESP proposal");
    }
    let spi = <[u8; 4]>::try_from(prop.spi.as_slice())
        .map(u32::from_be_bytes)
        .map_err(|_| "ESP SPI is not 4 bytes")?;
    if spi < 256 {
        return Err("ESP SPI 0..=255 is reserved (RFC 4303 2.1)");
    }
    let mut encr = false;
    let mut esn = false;
    for t in &prop.transforms {
        if !offered.transforms.contains(t) {
            return Err("a transform we did not offer");
        }
        let seen = if t.kind == tf::ENCR {
            &mut encr
        } else {
            &mut esn
        };
        if *seen {
            return Err("two transforms of one type");
        }
        *seen = true;
    }
    if !encr {
        return Err("no encryption transform");
    }
    Ok(spi)
}

/// Every selector the responder returned lies inside one we offered (RFC 7296 2.9).
pub fn narrowed(got: &[TrafficSelector], offered: &[TrafficSelector]) -> bool {
    !got.is_empty() && got.iter().all(|g| offered.iter().any(|o| within(g, o)))
}

fn within(g: &TrafficSelector, o: &TrafficSelector) -> bool {
    let addr_len = match g.ts_type {
        crate::consts::ts::IPV4_ADDR_RANGE => 4,
        crate::consts::ts::IPV6_ADDR_RANGE => 16,
        _ => return false,
    };
    g.ts_type == o.ts_type
        && [&g.start, &g.end, &o.start, &o.end]
            .iter()
            .all(|a| a.len() == addr_len)
        && g.start <= g.end
        && g.start >= o.start
        && g.end <= o.end
        && (o.ip_protocol == 0 || g.ip_protocol == o.ip_protocol)
        && g.start_port <= g.end_port
        && g.start_port >= o.start_port
        && g.end_port <= o.end_port
}
