//! The ramdisk agent's IKEv2 initiator (RFC 7296), first slice: the message codec (our encoder,
//! a decoder on `ipsec-parser` into a typed view), the SK payload with AES-GCM-16-256
//! (RFC 5282), the key schedule with PRF_HMAC_SHA2_256, DH groups 31 and 19 through ring, and
//! the initiator's IKE_SA_INIT exchange as a state machine; second slice: IKE_AUTH with X.509
//! certificates (RFC 7427 signatures: ECDSA P-256 ours, ECDSA P-256, RSA or Ed25519 (RFC 8420,
//! hash Identity announced) the responder's, its certificate pinned or CA-signed with any of
//! these) and the first child SA's SPIs and keys; the Configuration payload (RFC 7296 3.15) to
//! ask the responder for the inner address (a "virtual IP"); third: the established IKE SA
//! ([`IkeSa`]): INFORMATIONAL liveness checks and deletes, CREATE_CHILD_SA rekeying of the
//! child SA and of the IKE SA itself both ways (ours on a lifetime), rekey collisions decided
//! by the nonce rule (RFC 7296 2.8.1, 2.8.2).
//!
//! Not here yet: PFS on child rekeys, more than one child SA, IKE fragmentation (RFC 7383),
//! an Ed25519 credential of our own (the LM signs P-256 agent certificates).
//!
//! No IO: no sockets, files or clocks. Time comes in as `Instant`, randomness through
//! [`Entropy`]; the caller sends what the state machine returns.

pub mod cert;
pub mod child;
pub mod consts;
pub mod decode;
pub mod dh;
pub mod encode;
pub mod entropy;
pub mod error;
pub mod ike_auth;
pub mod ike_auth_check;
pub mod ike_sa;
pub mod keys;
pub mod nat;
pub mod payload;
pub mod retransmit;
pub mod sa_init;
pub mod sa_init_check;
pub mod signature;
pub mod signed_octets;
pub mod sk;

pub use decode::{Message, SkLocation, decode};
pub use dh::{DhGroup, DhPrivate};
pub use encode::{Header, encode_message};
pub use entropy::{Entropy, SeededEntropy, SystemEntropy};
pub use error::{CryptoError, DecodeError, EncodeError};
pub use keys::{IkeKeys, derive, derive_rekeyed, prf, prf_plus};
pub use payload::{
    Config, ConfigAttribute, Identity, Notify, Payload, Proposal, TrafficSelector, Transform,
};
pub use retransmit::RetransmitPolicy;
pub use sa_init::{Action, InitiatorConfig, Resend, SaInitDone, SaInitiator, StartError, Timeout};
pub use sa_init_check::DropReason;
pub use sk::SkKey;

pub use cert::{CertError, LocalCredential, PeerCert, PeerTrust};
pub use child::{ChildKeys, ChildSa, derive_child_keys};
pub use ike_auth::{AuthAction, AuthConfig, AuthDone, AuthDrop, AuthInitiator, AuthStartError};
pub use ike_auth_check::{AuthFailure, ChildFailure, Refusal};
pub use ike_sa::{ChildIds, IkeSa, IkeSaConfig, SaDrop, SaEvent};
pub use nat::NatDetection;
pub use signature::{PublicKey, SignatureError, SigningKey};
pub use signed_octets::signed_octets;
