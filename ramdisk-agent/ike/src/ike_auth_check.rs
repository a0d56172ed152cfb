//! Checks a decrypted IKE_AUTH response (RFC 7296 1.2, 2.15, 2.21.2): the responder's error
//! notifies as typed refusals, its certificate (pin or CA), IDr against the certificate, its
//! AUTH over ResponderSignedOctets, the assigned inner address in CP(CFG_REPLY) when we asked
//! for one, then the child SA (chosen proposal, narrowed selectors, keys). Pure apart from the
//! wall-clock time passed in for certificate validity.

use std::net::Ipv4Addr;
use std::time::SystemTime;

use crate::cert::{CertError, PeerCert, PeerTrust, check_peer};
use crate::child::{ChildSa, chosen_spi, derive_child_keys, narrowed};
use crate::consts::{cert as ct, cfg, notify as nt};
use crate::error::CryptoError;
use crate::payload::{Config, Identity, Notify, Payload, Proposal, TrafficSelector};
use crate::signature::{SignatureError, verify};
use crate::signed_octets::signed_octets;

/// An error notify the responder sent inside the encrypted IKE_AUTH response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("AUTHENTICATION_FAILED: the responder did not accept our certificate or AUTH")]
    AuthenticationFailed,
    #[error("NO_PROPOSAL_CHOSEN: the responder accepts none of our ESP proposals")]
    NoProposalChosen,
    #[error("TS_UNACCEPTABLE: the responder accepts none of our traffic selectors")]
    TsUnacceptable,
    #[error("SINGLE_PAIR_REQUIRED: the responder wants one address pair only")]
    SinglePairRequired,
    #[error("INTERNAL_ADDRESS_FAILURE: the responder could not assign an address")]
    InternalAddressFailure,
    #[error("FAILED_CP_REQUIRED: the responder requires a configuration payload")]
    FailedCpRequired,
    #[error("INVALID_SYNTAX: the responder could not parse our request")]
    InvalidSyntax,
    #[error("UNSUPPORTED_CRITICAL_PAYLOAD")]
    UnsupportedCriticalPayload,
    #[error("TEMPORARY_FAILURE: try again later")]
    TemporaryFailure,
    #[error("error notify {0}")]
    Other(u16),
}

impl Refusal {
    pub fn from_kind(kind: u16) -> Refusal {
        match kind {
            nt::AUTHENTICATION_FAILED => Refusal::AuthenticationFailed,
            nt::NO_PROPOSAL_CHOSEN => Refusal::NoProposalChosen,
            nt::TS_UNACCEPTABLE => Refusal::TsUnacceptable,
            nt::SINGLE_PAIR_REQUIRED => Refusal::SinglePairRequired,
            nt::INTERNAL_ADDRESS_FAILURE => Refusal::InternalAddressFailure,
            nt::FAILED_CP_REQUIRED => Refusal::FailedCpRequired,
            nt::INVALID_SYNTAX => Refusal::InvalidSyntax,
            nt::UNSUPPORTED_CRITICAL_PAYLOAD => Refusal::UnsupportedCriticalPayload,
            nt::TEMPORARY_FAILURE => Refusal::TemporaryFailure,
            other => Refusal::Other(other),
        }
    }
}

/// Why the IKE SA did not come up (authenticated by the SK keys, so final).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("the responder refused: {0}")]
    Refused(Refusal),
    #[error("we refuse the responder's certificate: {0}")]
    PeerCert(CertError),
    #[error("the responder's AUTH is refused: {0}")]
    PeerAuth(SignatureError),
    #[error("the responder's identity is refused: {0}")]
    PeerIdentity(&'static str),
    #[error("the IKE_AUTH response lacks {0}")]
    Missing(&'static str),
    #[error("the IKE_AUTH response is unexpected: {0}")]
    Unexpected(&'static str),
}

/// Why the IKE SA came up without its child SA.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChildFailure {
    #[error("the responder refused the child SA: {0}")]
    Refused(Refusal),
    #[error("the child SA response lacks {0}")]
    Missing(&'static str),
    #[error("the chosen ESP proposal was not offered: {0}")]
    NotOffered(&'static str),
    #[error("the responder's {0} are not within ours")]
    NotNarrowed(&'static str),
    #[error(
        "we asked for an inner address (CP CFG_REQUEST) but the responder's CP(CFG_REPLY) {0}; \
         configure an address pool for this peer on the responder"
    )]
    NoAddress(&'static str),
    #[error("child keys: {0}")]
    Crypto(CryptoError),
}

/// What the check needs of the exchange so far.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub response1: &'a [u8],
    pub nonce_i: &'a [u8],
    pub nonce_r: &'a [u8],
    pub sk_pr: &'a [u8],
    pub sk_d: &'a [u8],
    pub trust: &'a PeerTrust,
    pub peer_id: Option<&'a Identity>,
    pub offered: &'a Proposal,
    pub local_ts: &'a [TrafficSelector],
    pub remote_ts: &'a [TrafficSelector],
    pub request_address: bool,
    pub wall: SystemTime,
}

/// The authenticated responder and the child SA (or why there is none).
#[derive(Debug)]
pub(crate) struct Checked {
    pub peer_id: Identity,
    pub peer_cert: PeerCert,
    pub auth_method: u8,
    pub internal_address: Option<Ipv4Addr>,
    pub child: Result<ChildSa, ChildFailure>,
}

#[derive(Default)]
struct Parts<'a> {
    idr: Option<&'a Identity>,
    cert: Option<&'a [u8]>,
    auth: Option<(u8, &'a [u8])>,
    sa: Option<&'a [Proposal]>,
    tsi: Option<&'a [TrafficSelector]>,
    tsr: Option<&'a [TrafficSelector]>,
    cp: Option<&'a Config>,
    errors: Vec<&'a Notify>,
}

fn collect(inner: &[Payload]) -> Result<Parts<'_>, AuthFailure> {
    let mut p = Parts::default();
    let twice = |what| AuthFailure::Unexpected(what);
    for pl in inner {
        match pl {
            Payload::IdR(id) if p.idr.is_none() => p.idr = Some(id),
            Payload::IdR(_) => return Err(twice("two IDr payloads")),
            // The first X.509 certificate is the end entity; others are intermediates.
            Payload::Cert { encoding, data } if *encoding == ct::X509_SIGNATURE => {
                p.cert.get_or_insert(data.as_slice());
            }
            Payload::Auth { method, data } if p.auth.is_none() => p.auth = Some((*method, data)),
            Payload::Auth { .. } => return Err(twice("two AUTH payloads")),
            Payload::Sa(s) if p.sa.is_none() => p.sa = Some(s),
            Payload::Sa(_) => return Err(twice("two SA payloads")),
            Payload::TsI(t) if p.tsi.is_none() => p.tsi = Some(t),
            Payload::TsR(t) if p.tsr.is_none() => p.tsr = Some(t),
            Payload::TsI(_) | Payload::TsR(_) => return Err(twice("two TSi or TSr payloads")),
            Payload::Cp(c) if p.cp.is_none() => p.cp = Some(c),
            Payload::Cp(_) => return Err(twice("two CP payloads")),
            Payload::Notify(n) if n.is_error() => p.errors.push(n),
            _ => {}
        }
    }
    Ok(p)
}

pub(crate) fn check(inner: &[Payload], cx: &Context<'_>) -> Result<Checked, AuthFailure> {
    let p = collect(inner)?;
    if p.errors.iter().any(|n| n.kind == nt::AUTHENTICATION_FAILED) {
        return Err(AuthFailure::Refused(Refusal::AuthenticationFailed));
    }
    let (Some(idr), Some((method, auth_data))) = (p.idr, p.auth) else {
        // Without IDr and AUTH the IKE SA failed; an error notify says why.
        return Err(match p.errors.first() {
            Some(n) => AuthFailure::Refused(Refusal::from_kind(n.kind)),
            None if p.idr.is_none() => AuthFailure::Missing("IDr"),
            None => AuthFailure::Missing("AUTH"),
        });
    };
    let cert = p.cert.ok_or(AuthFailure::Missing("an X.509 CERT"))?;
    let peer_cert = check_peer(cert, cx.trust, cx.wall).map_err(AuthFailure::PeerCert)?;
    if !peer_cert.matches(idr) {
        return Err(AuthFailure::PeerIdentity(
            "IDr names neither the certificate's subject nor one of its alt names",
        ));
    }
    if cx.peer_id.is_some_and(|want| want != idr) {
        return Err(AuthFailure::PeerIdentity(
            "IDr is not the expected identity",
        ));
    }
    let octets = signed_octets(cx.response1, cx.nonce_i, cx.sk_pr, idr);
    verify(method, auth_data, &peer_cert.key, &octets).map_err(AuthFailure::PeerAuth)?;
    let address = if cx.request_address {
        Some(assigned_address(p.cp))
    } else {
        None
    };
    let internal_address = address.and_then(Result::ok);
    let child = match address {
        Some(Err(why)) => child(&p, cx).and(Err(ChildFailure::NoAddress(why))),
        _ => child(&p, cx),
    };
    Ok(Checked {
        peer_id: idr.clone(),
        peer_cert,
        auth_method: method,
        internal_address,
        child,
    })
}

/// The INTERNAL_IP4_ADDRESS of the responder's CP(CFG_REPLY) (RFC 7296 3.15.1): exactly one,
/// 4 bytes, a unicast address (not 0.0.0.0, broadcast, multicast or loopback). Netmask and DNS
/// attributes are ignored: the inner address is a /32 and the agent names no resolver.
pub fn assigned_address(cp: Option<&Config>) -> Result<Ipv4Addr, &'static str> {
    let cp = cp.ok_or("is missing")?;
    if cp.cfg_type != cfg::CFG_REPLY {
        return Err("is not a CFG_REPLY");
    }
    let mut found = cp
        .attributes
        .iter()
        .filter(|a| a.kind == cfg::INTERNAL_IP4_ADDRESS);
    let first = found.next().ok_or("has no INTERNAL_IP4_ADDRESS")?;
    if found.next().is_some() {
        return Err("has several INTERNAL_IP4_ADDRESS attributes where we asked for one");
    }
    let addr = <[u8; 4]>::try_from(first.value.as_slice())
        .map(Ipv4Addr::from)
        .map_err(|_| "has an INTERNAL_IP4_ADDRESS that is not 4 bytes")?;
    if addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() || addr.is_loopback() {
        return Err("has an INTERNAL_IP4_ADDRESS that is not a unicast host address");
    }
    Ok(addr)
}

fn child(p: &Parts<'_>, cx: &Context<'_>) -> Result<ChildSa, ChildFailure> {
    if let Some(n) = p.errors.first() {
        return Err(ChildFailure::Refused(Refusal::from_kind(n.kind)));
    }
    let sa = p.sa.ok_or(ChildFailure::Missing("SA"))?;
    let spi_out = chosen_spi(sa, cx.offered).map_err(ChildFailure::NotOffered)?;
    let tsi = p.tsi.ok_or(ChildFailure::Missing("TSi"))?;
    let tsr = p.tsr.ok_or(ChildFailure::Missing("TSr"))?;
    if !narrowed(tsi, cx.local_ts) {
        return Err(ChildFailure::NotNarrowed("TSi"));
    }
    if !narrowed(tsr, cx.remote_ts) {
        return Err(ChildFailure::NotNarrowed("TSr"));
    }
    let spi_in = <[u8; 4]>::try_from(cx.offered.spi.as_slice())
        .map(u32::from_be_bytes)
        .map_err(|_| ChildFailure::NotOffered("our SPI"))?;
    let keys = derive_child_keys(cx.sk_d, cx.nonce_i, cx.nonce_r).map_err(ChildFailure::Crypto)?;
    Ok(ChildSa {
        spi_in,
        spi_out,
        keys,
        local_ts: tsi.to_vec(),
        remote_ts: tsr.to_vec(),
        esn: false,
    })
}
