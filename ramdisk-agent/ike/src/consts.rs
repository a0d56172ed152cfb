//! IKEv2 numbers (RFC 7296 section 3, IANA "IKEv2 Parameters") used by this crate.

/// Exchange types (RFC 7296 3.1).
pub mod exchange {
    pub const IKE_SA_INIT: u8 = 34;
    pub const IKE_AUTH: u8 = 35;
    pub const CREATE_CHILD_SA: u8 = 36;
    pub const INFORMATIONAL: u8 = 37;
}

/// Header flags (RFC 7296 3.1).
pub mod flags {
    /// Set by the original initiator of the IKE SA.
    pub const INITIATOR: u8 = 0x08;
    /// The sender can speak a higher major version.
    pub const VERSION: u8 = 0x10;
    /// This message answers a request with the same message id.
    pub const RESPONSE: u8 = 0x20;
}

/// Payload types (RFC 7296 3.2).
pub mod payload {
    pub const NONE: u8 = 0;
    pub const SA: u8 = 33;
    pub const KE: u8 = 34;
    pub const IDI: u8 = 35;
    pub const IDR: u8 = 36;
    pub const CERT: u8 = 37;
    pub const CERTREQ: u8 = 38;
    pub const AUTH: u8 = 39;
    pub const NONCE: u8 = 40;
    pub const NOTIFY: u8 = 41;
    pub const DELETE: u8 = 42;
    pub const VENDOR_ID: u8 = 43;
    pub const TSI: u8 = 44;
    pub const TSR: u8 = 45;
    pub const SK: u8 = 46;
    /// Configuration payload (RFC 7296 3.15).
    pub const CP: u8 = 47;
}

/// Configuration payload types and attributes (RFC 7296 3.15.1).
pub mod cfg {
    pub const CFG_REQUEST: u8 = 1;
    pub const CFG_REPLY: u8 = 2;
    pub const CFG_SET: u8 = 3;
    pub const CFG_ACK: u8 = 4;
    pub const INTERNAL_IP4_ADDRESS: u16 = 1;
    pub const INTERNAL_IP4_NETMASK: u16 = 2;
    pub const INTERNAL_IP4_DNS: u16 = 3;
    /// Attribute types are 15 bits; the top bit is reserved.
    pub const ATTRIBUTE_TYPE_MASK: u16 = 0x7fff;
}

/// Transform types and the ids this crate offers (RFC 7296 3.3.2, RFC 5282, RFC 8031, RFC 5903).
pub mod transform {
    pub const ENCR: u8 = 1;
    pub const PRF: u8 = 2;
    pub const INTEG: u8 = 3;
    pub const DH: u8 = 4;
    pub const ESN: u8 = 5;
    pub const ENCR_AES_GCM_16: u16 = 20;
    pub const PRF_HMAC_SHA2_256: u16 = 5;
    /// Extended sequence numbers: off (the only value this crate offers) and on.
    pub const ESN_NONE: u16 = 0;
    pub const ESN_ON: u16 = 1;
    /// Transform attribute "Key Length" (TV format, RFC 7296 3.3.5).
    pub const ATTR_KEY_LENGTH: u16 = 14;
}

/// Security protocol ids (RFC 7296 3.3.1).
pub mod protocol {
    pub const IKE: u8 = 1;
    pub const AH: u8 = 2;
    pub const ESP: u8 = 3;
}

/// Notify message types (RFC 7296 3.10.1, RFC 7296 2.6, RFC 7296 2.23).
pub mod notify {
    pub const UNSUPPORTED_CRITICAL_PAYLOAD: u16 = 1;
    pub const INVALID_SYNTAX: u16 = 7;
    pub const INVALID_MESSAGE_ID: u16 = 9;
    pub const NO_PROPOSAL_CHOSEN: u16 = 14;
    pub const INVALID_KE_PAYLOAD: u16 = 17;
    pub const AUTHENTICATION_FAILED: u16 = 24;
    pub const SINGLE_PAIR_REQUIRED: u16 = 34;
    pub const NO_ADDITIONAL_SAS: u16 = 35;
    pub const INTERNAL_ADDRESS_FAILURE: u16 = 36;
    pub const FAILED_CP_REQUIRED: u16 = 37;
    pub const TS_UNACCEPTABLE: u16 = 38;
    pub const INVALID_SELECTORS: u16 = 39;
    pub const TEMPORARY_FAILURE: u16 = 43;
    pub const INITIAL_CONTACT: u16 = 16384;
    pub const NAT_DETECTION_SOURCE_IP: u16 = 16388;
    pub const NAT_DETECTION_DESTINATION_IP: u16 = 16389;
    pub const COOKIE: u16 = 16390;
    pub const SIGNATURE_HASH_ALGORITHMS: u16 = 16431;
    /// Types below this are errors (RFC 7296 3.10.1).
    pub const FIRST_STATUS: u16 = 16384;
}

/// Hash algorithm ids in SIGNATURE_HASH_ALGORITHMS (RFC 7427 7, IANA).
pub mod hash {
    pub const SHA1: u16 = 1;
    pub const SHA2_256: u16 = 2;
    pub const SHA2_384: u16 = 3;
    pub const SHA2_512: u16 = 4;
    /// No pre-hash: the signature covers the octets themselves (RFC 8420, Ed25519).
    pub const IDENTITY: u16 = 5;
}

/// Identification types (RFC 7296 3.5).
pub mod id {
    pub const IPV4_ADDR: u8 = 1;
    pub const FQDN: u8 = 2;
    pub const RFC822_ADDR: u8 = 3;
    pub const DER_ASN1_DN: u8 = 9;
    pub const KEY_ID: u8 = 11;
}

/// Certificate encodings (RFC 7296 3.6).
pub mod cert {
    pub const X509_SIGNATURE: u8 = 4;
}

/// Authentication methods (RFC 7296 3.8, RFC 7427).
pub mod auth {
    pub const SHARED_KEY_MIC: u8 = 2;
    pub const ECDSA_SHA256_P256: u8 = 9;
    pub const DIGITAL_SIGNATURE: u8 = 14;
}

/// Traffic selector types (RFC 7296 3.13.1).
pub mod ts {
    pub const IPV4_ADDR_RANGE: u8 = 7;
    pub const IPV6_ADDR_RANGE: u8 = 8;
}

/// Fixed sizes.
pub const HEADER_LEN: usize = 28;
pub const GENERIC_HEADER_LEN: usize = 4;
/// Largest message this crate builds or accepts (RFC 7296 2: at least 1280 must be accepted;
/// certificates make IKE_AUTH larger, fragments are not supported yet).
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
