//! Checks an IKE_SA_INIT response against what we offered (RFC 7296 2.7, 3.3) and derives
//! the keys. Pure; every refusal is a [`DropReason`].

use crate::consts::{protocol, transform as tf};
use crate::decode::Message;
use crate::dh::{DhGroup, DhPrivate};
use crate::error::{CryptoError, DecodeError, EncodeError};
use crate::keys::{IkeKeys, derive};
use crate::payload::{Payload, Proposal};

/// Why a datagram was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error("no IKE_SA_INIT response is expected now")]
    NotExpecting,
    #[error("malformed: {0}")]
    Malformed(#[from] DecodeError),
    #[error("exchange type {0} is not IKE_SA_INIT (34)")]
    WrongExchange(u8),
    #[error("not a response (flags {flags:#04x})")]
    NotAResponse { flags: u8 },
    #[error("initiator SPI {got:#018x} is not ours")]
    WrongSpi { got: u64 },
    #[error("message id {0} is not 0")]
    WrongMessageId(u32),
    #[error("responder SPI is zero in an accepting response")]
    ZeroResponderSpi,
    #[error("unauthenticated error notify {0} (kept for the give-up report, RFC 7296 2.21.1)")]
    ErrorNotify(u16),
    #[error("COOKIE of {len} bytes (must be 1..=64)")]
    BadCookie { len: usize },
    #[error("the responder keeps asking for cookies")]
    TooManyCookies,
    #[error("INVALID_KE_PAYLOAD names group {0}, which we did not offer")]
    GroupNotOffered(u16),
    #[error("INVALID_KE_PAYLOAD names group {0} again (retried at most once per group)")]
    GroupAlreadyTried(u16),
    #[error("the chosen proposal was not offered: {0}")]
    NotOffered(&'static str),
    #[error("KE group {ke} disagrees with the chosen group {chosen} or with our KE")]
    KeGroupMismatch { ke: u16, chosen: u16 },
    #[error("responder nonce of {0} bytes (must be 16..=256)")]
    BadNonce(usize),
    #[error("missing {0} payload")]
    Missing(&'static str),
    #[error("unexpected: {0}")]
    Unexpected(&'static str),
    #[error("crypto: {0}")]
    Crypto(CryptoError),
    #[error("cannot build the next request: {0}")]
    Encode(EncodeError),
}

type Accepted = (DhGroup, Vec<u8>, IkeKeys, bool);

/// Checks the response and derives the keys. The DH key in `dh` is spent (taken) only once
/// every check passed: ring's ephemeral keys agree once, so a bad peer value ends it.
pub(crate) fn accept(
    msg: &Message,
    offered: &Proposal,
    dh: &mut Option<DhPrivate>,
    nonce_i: &[u8],
) -> Result<Accepted, DropReason> {
    let chosen = chosen_group(msg, offered)?;
    let mut ke = None;
    let mut nonce = None;
    let mut cert_requested = false;
    for p in &msg.payloads {
        match p {
            Payload::Ke { group, data } if ke.is_none() => ke = Some((*group, data)),
            Payload::Nonce(n) if nonce.is_none() => nonce = Some(n),
            Payload::CertReq { .. } => cert_requested = true,
            Payload::Ke { .. } | Payload::Nonce(_) => {
                return Err(DropReason::Unexpected("a second KE or Nonce"));
            }
            _ => {}
        }
    }
    let (ke_group, ke_data) = ke.ok_or(DropReason::Missing("KE"))?;
    let nonce_r = nonce.ok_or(DropReason::Missing("Nonce"))?;
    if !(16..=256).contains(&nonce_r.len()) {
        return Err(DropReason::BadNonce(nonce_r.len()));
    }
    let ours = dh
        .as_ref()
        .map(|d| d.group().number())
        .ok_or(DropReason::NotExpecting)?;
    if ke_group != chosen || ke_group != ours {
        return Err(DropReason::KeGroupMismatch {
            ke: ke_group,
            chosen,
        });
    }
    if msg.header.spi_r == 0 {
        return Err(DropReason::ZeroResponderSpi);
    }
    let dh = dh.take().ok_or(DropReason::NotExpecting)?;
    let group = dh.group();
    let shared = dh.agree(ke_data).map_err(DropReason::Crypto)?;
    let keys = derive(
        nonce_i,
        nonce_r,
        &shared,
        msg.header.spi_i,
        msg.header.spi_r,
    )
    .map_err(DropReason::Crypto)?;
    Ok((group, nonce_r.clone(), keys, cert_requested))
}

/// The one proposal in the response must be ours with one transform of each type we offered.
fn chosen_group(msg: &Message, offered: &Proposal) -> Result<u16, DropReason> {
    let mut sas = msg.payloads.iter().filter_map(|p| match p {
        Payload::Sa(s) => Some(s),
        _ => None,
    });
    let sa = sas.next().ok_or(DropReason::Missing("SA"))?;
    if sas.next().is_some() {
        return Err(DropReason::Unexpected("two SA payloads"));
    }
    let [prop] = sa.as_slice() else {
        return Err(DropReason::NotOffered(
            "the response must carry exactly one proposal",
        ));
    };
    if prop.num != offered.num || prop.protocol != protocol::IKE || !prop.spi.is_empty() {
        return Err(DropReason::NotOffered(
            "proposal number, protocol or SPI differ",
        ));
    }
    let mut seen = [false; 6];
    let mut group = None;
    for t in &prop.transforms {
        if !offered.transforms.contains(t) {
            return Err(DropReason::NotOffered("a transform we did not offer"));
        }
        let slot = seen
            .get_mut(usize::from(t.kind))
            .ok_or(DropReason::NotOffered("transform type"))?;
        if *slot {
            return Err(DropReason::NotOffered("two transforms of one type"));
        }
        *slot = true;
        if t.kind == tf::DH {
            group = Some(t.id);
        }
    }
    if !seen[usize::from(tf::ENCR)] || !seen[usize::from(tf::PRF)] {
        return Err(DropReason::NotOffered("no encryption or PRF transform"));
    }
    group.ok_or(DropReason::NotOffered("no DH transform"))
}
