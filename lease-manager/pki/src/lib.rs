//! The Lease Manager's X.509 core: the one home of rcgen and x509-parser.
//!
//! - [`Authority`]: the LM CA (ECDSA P-256). Issues the LM's TLS server certificate, client
//!   certificates for tenants and operators (with a key generated here), agent certificates
//!   for the key of a verified CSR, and CRLs.
//! - [`verify_csr`]: parses a CSR from the network and proves possession of its key.
//!   [`make_csr`] / [`generate_key`] are the agent's side.
//! - [`peer_cert`]: the caller named by a client certificate rustls has verified.
//! - [`Identity`]: who a client certificate speaks for.
//! - [`check_crl`]: the relying side of the CRL (the tenant gateway): issuer, signature and
//!   the revoked serials. [`self_signed_server`]: the gateway's pinned TLS certificate.
//!
//! IO: none. Time, expiry and serial numbers are arguments; key generation uses ring's system
//! RNG (rcgen takes no RNG). The caller stores the CA key and records serials.
//!
//! # Identity scheme
//!
//! Every client certificate carries exactly one URI subject alternative name:
//!
//! ```text
//! urn:lease-appliance:tenant:<name>
//! urn:lease-appliance:operator:<name>
//! urn:lease-appliance:agent:<lease-id>:<server-name>
//! ```
//!
//! `<name>` and `<server-name>` are [`lm_api::Name`]s, `<lease-id>` is an [`lm_api::LeaseId`]
//! (`l-` + 16 lowercase hex). The subject CN is for humans only ("tenant acme", "agent vm1 for
//! l-..."). Client certificates have EKU clientAuth, key usage digitalSignature, an authority
//! key identifier, a random serial from the caller (at most 20 bytes, written as lowercase hex
//! without leading zeros), `not_before` five minutes before issuance and the `not_after` the
//! caller chose (whole seconds, never beyond the CA's own expiry).

mod authority;
mod crl;
mod crl_check;
mod csr;
mod gateway_cert;
mod identity;
mod peer;
mod serial;

pub use authority::{
    Authority, AuthorityError, CA_LIFETIME, CLIENT_BACKDATE, ClientCredential, IssuedCert, Leaf,
    SERVER_LIFETIME,
};
pub use crl::RevokedCert;
pub use crl_check::{CheckedCrl, CrlCheckError, MAX_CRL_LEN, check_crl};
pub use csr::{
    CsrError, KeyAlgorithm, MAX_CSR_LEN, VerifiedCsr, generate_key, make_csr, private_key_der,
    verify_csr,
};
pub use gateway_cert::{SelfSignedCert, self_signed_server};
pub use identity::{Identity, IdentityError, Role, URI_PREFIX};
pub use peer::{PeerCert, PeerError, peer_cert};
/// The agent's key pair type (from rcgen), so callers need no rcgen dependency.
pub use rcgen::KeyPair;
pub use serial::{Serial, SerialError};

#[cfg(test)]
mod verify_tests;
