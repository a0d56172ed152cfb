//! ESP tunnel mode in userspace for the ramdisk agent's IPsec path (issue 6): RFC 4303 ESP with
//! AES-GCM-16 and a 256-bit key (RFC 4106), ESN off, UDP-encapsulated on port 4500 (RFC 3948)
//! because the kernels here have no ESP and strongSwan's kernel-libipsec always uses NAT-T.
//!
//! The core does no IO (like boringtun's `Tunn`): the caller owns the socket, the TUN device
//! and the clock.
//! - [`OutboundSa`]: sequence numbers (refuses to wrap past 2^32-1: rekey), sealing of an inner
//!   IPv4 packet into an ESP packet ([`packet`] has the layout).
//! - [`InboundSa`]: length, SPI, anti-replay ([`ReplayWindow`], 1024 packets, checked before
//!   and updated after the integrity check), AES-GCM opening, padding, next header (4 or the
//!   dummy 59) and inner IPv4 checks; one [`DecapError`] variant per drop reason.
//! - [`Lifetime`]: byte/packet/age counters with soft (`needs_rekey(now)`) and hard
//!   (`expired(now)`) limits.
//! - [`udp_encap`]: the RFC 3948 classifier (IKE behind the non-ESP marker, NAT-keepalive, ESP)
//!   and builders.
//!
//! [`io`] is the thin shell (does IO): one SA pair over a UDP/4500 socket and a TUN device,
//! single-threaded with poll(2); IKE datagrams go to a channel for the IKE layer.
//!
//! Keys come from the IKE layer (`agent-ike`, CHILD_SA KEYMAT: 32 key bytes + 4 salt bytes per
//! direction, [`SaKey::from_keymat`]); until it negotiates child SAs, tests use hand-made keys.

mod error;
mod inbound;
pub mod inner;
pub mod io;
mod keys;
mod lifetime;
mod outbound;
pub mod packet;
mod replay;
pub mod udp_encap;

pub use error::{ClassifyError, DecapError, EncapError};
pub use inbound::{Decapsulated, InboundSa};
pub use keys::{KEY_LEN, KEYMAT_LEN, SALT_LEN, SaError, SaKey};
pub use lifetime::{Lifetime, LifetimeLimits};
pub use outbound::{OutboundSa, SEQUENCE_SOFT_LIMIT};
pub use replay::{ReplayCheck, ReplayWindow, WINDOW};
