//! Contract between the ramdisk agent and the tenant's gateway (the procurement organizer's
//! `gateway run`): WireGuard peer registration, image key requests, the image store's paths
//! and the error body. Serde types only; no IO.
//!
//! ```text
//!  agent (lease server)                       tenant gateway
//!  ---- data-centre segment, mutual TLS (agent certificate of the LM CA,
//!       gateway certificate pinned by GatewaySpec.tls_cert_sha256) ----
//!  POST /v1/peers     RegisterPeer  ───────►  checks the lease, adds the WireGuard peer
//!                     PeerRegistered ◄──────  tunnel address, gateway key and endpoint, routes,
//!                                             image store and key service URLs, the
//!                                             tenant's image-signing key
//!  ---- through the WireGuard tunnel only ----
//!  GET  /v1/images/<id>.manifest, <id>.chunks (Range)  ───►  image store (plain HTTP)
//!  POST /v1/keys      KeyRequest    ───────►  key service (mutual TLS, same certificates)
//!                     KeyAnswer     ◄──────   the image key, base64 (zeroized, never printed)
//! ```
//!
//! Every request body is read with [`parse_body`]: at most [`MAX_BODY`] bytes, one JSON value,
//! unknown fields refused, errors naming the field. A change to any type shows up in the
//! golden-JSON tests of its module.

mod body;
mod error;
mod key;
mod net;
pub mod paths;
mod register;

pub use body::{BodyError, MAX_BODY, parse_body};
pub use error::{ErrorBody, ErrorCode};
pub use key::{
    IMAGE_KEY_LEN, ImageKeyB64, ImageRef, ImageRefError, ImageSigningKey, KeyAnswer, KeyRequest,
};
pub use net::{Ipv4Net, NetError, WgPublicKey, WgPublicKeyError};
pub use paths::{ImageFile, parse_image_path};
pub use register::{HostRoot, PeerRegistered, RegisterPeer};
