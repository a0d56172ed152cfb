//! The typed view of IKEv2 payloads (RFC 7296 section 3), shared by the encoder and the decoder.
//! Owned values: messages are small, and an owned view outlives the datagram buffer.

use crate::consts::{payload as pt, transform as tf};

/// One payload of a message (its generic header is implied by the chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Sa(Vec<Proposal>),
    Ke {
        group: u16,
        data: Vec<u8>,
    },
    Nonce(Vec<u8>),
    Notify(Notify),
    IdI(Identity),
    IdR(Identity),
    Cert {
        encoding: u8,
        data: Vec<u8>,
    },
    CertReq {
        encoding: u8,
        data: Vec<u8>,
    },
    Auth {
        method: u8,
        data: Vec<u8>,
    },
    TsI(Vec<TrafficSelector>),
    TsR(Vec<TrafficSelector>),
    VendorId(Vec<u8>),
    /// A Configuration payload (RFC 7296 3.15): CFG_REQUEST/REPLY/SET/ACK and its attributes.
    Cp(Config),
    /// A payload type this crate does not interpret (not critical, else decoding fails).
    Unknown {
        kind: u8,
        body: Vec<u8>,
    },
}

impl Payload {
    /// The payload type number (RFC 7296 3.2).
    pub fn kind(&self) -> u8 {
        match self {
            Payload::Sa(_) => pt::SA,
            Payload::Ke { .. } => pt::KE,
            Payload::Nonce(_) => pt::NONCE,
            Payload::Notify(_) => pt::NOTIFY,
            Payload::IdI(_) => pt::IDI,
            Payload::IdR(_) => pt::IDR,
            Payload::Cert { .. } => pt::CERT,
            Payload::CertReq { .. } => pt::CERTREQ,
            Payload::Auth { .. } => pt::AUTH,
            Payload::TsI(_) => pt::TSI,
            Payload::TsR(_) => pt::TSR,
            Payload::VendorId(_) => pt::VENDOR_ID,
            Payload::Cp(_) => pt::CP,
            Payload::Unknown { kind, .. } => *kind,
        }
    }
}

/// An SA proposal (RFC 7296 3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub num: u8,
    pub protocol: u8,
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

/// A transform with its only attribute in use, the key length (RFC 7296 3.3.2, 3.3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transform {
    pub kind: u8,
    pub id: u16,
    pub key_bits: Option<u16>,
}

impl Transform {
    pub const AES256_GCM16: Transform = Transform {
        kind: tf::ENCR,
        id: tf::ENCR_AES_GCM_16,
        key_bits: Some(256),
    };
    pub const PRF_SHA256: Transform = Transform {
        kind: tf::PRF,
        id: tf::PRF_HMAC_SHA2_256,
        key_bits: None,
    };
    pub fn dh(group: u16) -> Transform {
        Transform {
            kind: tf::DH,
            id: group,
            key_bits: None,
        }
    }
}

/// A Notify payload (RFC 7296 3.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub protocol: u8,
    pub spi: Vec<u8>,
    pub kind: u16,
    pub data: Vec<u8>,
}

impl Notify {
    /// A notify about the IKE SA itself (protocol 0, no SPI).
    pub fn ike(kind: u16, data: Vec<u8>) -> Notify {
        Notify {
            protocol: 0,
            spi: Vec::new(),
            kind,
            data,
        }
    }
    /// Error types are below 16384 (RFC 7296 3.10.1).
    pub fn is_error(&self) -> bool {
        self.kind < crate::consts::notify::FIRST_STATUS
    }
}

/// The body of a Configuration payload (RFC 7296 3.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// CFG_REQUEST (1), CFG_REPLY (2), CFG_SET (3), CFG_ACK (4).
    pub cfg_type: u8,
    pub attributes: Vec<ConfigAttribute>,
}

/// One configuration attribute (RFC 7296 3.15.1): a 15-bit type and its value (empty in a
/// request that asks for one to be assigned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigAttribute {
    pub kind: u16,
    pub value: Vec<u8>,
}

impl Config {
    /// CFG_REQUEST for an IPv4 address (INTERNAL_IP4_ADDRESS, empty: any the responder picks).
    pub fn request_ipv4_address() -> Config {
        Config {
            cfg_type: crate::consts::cfg::CFG_REQUEST,
            attributes: vec![ConfigAttribute {
                kind: crate::consts::cfg::INTERNAL_IP4_ADDRESS,
                value: Vec::new(),
            }],
        }
    }
}

/// An IDi/IDr payload (RFC 7296 3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id_type: u8,
    pub data: Vec<u8>,
}

/// One traffic selector (RFC 7296 3.13.1); addresses are 4 or 16 bytes per `ts_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficSelector {
    pub ts_type: u8,
    pub ip_protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub start: Vec<u8>,
    pub end: Vec<u8>,
}

impl TrafficSelector {
    /// An IPv4 range, all protocols and ports.
    pub fn v4(start: [u8; 4], end: [u8; 4]) -> TrafficSelector {
        TrafficSelector {
            ts_type: crate::consts::ts::IPV4_ADDR_RANGE,
            ip_protocol: 0,
            start_port: 0,
            end_port: 0xffff,
            start: start.to_vec(),
            end: end.to_vec(),
        }
    }
}
