//! The octets each side signs in IKE_AUTH (RFC 7296 2.15). Pure.
//!
//! ```text
//!  InitiatorSignedOctets = RealMessage1 | NonceRData | prf(SK_pi, RestOfInitIDPayload)
//!  ResponderSignedOctets = RealMessage2 | NonceIData | prf(SK_pr, RestOfRespIDPayload)
//!  RestOfIDPayload       = ID type (1) | reserved (3, zero) | identification data
//! ```

use crate::keys::prf;
use crate::payload::Identity;

/// The ID payload body after its generic header, as `prf` sees it.
pub fn rest_of_id_payload(id: &Identity) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + id.data.len());
    b.extend_from_slice(&[id.id_type, 0, 0, 0]);
    b.extend_from_slice(&id.data);
    b
}

/// `message` is the sender's whole IKE_SA_INIT message as sent (RealMessage1 or 2),
/// `peer_nonce` the other side's nonce data, `sk_p` the sender's SK_pi or SK_pr.
pub fn signed_octets(message: &[u8], peer_nonce: &[u8], sk_p: &[u8], id: &Identity) -> Vec<u8> {
    let maced = prf(sk_p, &[&rest_of_id_payload(id)]);
    let mut out = Vec::with_capacity(message.len() + peer_nonce.len() + maced.len());
    out.extend_from_slice(message);
    out.extend_from_slice(peer_nonce);
    out.extend_from_slice(&maced);
    out
}
