//! DHCPv4 for network boot: a pure engine and the UDP shell around it.
//!
//! ```text
//!  datagram --wire::decode--> v4::Message --Engine::handle(msg, ctx, gate, table, now)--> Decision
//!                                                     |                                 |
//!              BootDirectory::lookup(mac) -> Gate ----+     Reply{msg, to} + changes / Update / Silent
//!
//!  server shell, per batch: decide all -> send OFFER/NAK -> LeaseStore put/remove, flush once -> send ACKs
//! ```
//!
//! - Pure (no IO): [`wire`] (guarded decoding), [`Engine`] with its helpers (classification,
//!   address pools, replies), [`LeaseTable`], the config ([`DhcpSection`] -> [`DhcpConfig`]).
//! - Persistence contract: [`LeaseStore`] (the LM implements it on sled), [`MemoryLeaseStore`].
//! - IO: [`DhcpServer`] (tokio UDP socket, group commit, events) and [`LeaseLookup`].
//!
//! References: RFC 2131 (protocol), RFC 2132 (options), RFC 4578 (PXE options 93/94/97),
//! RFC 3046 (relay agent information, echoed), RFC 6842 (client identifier, echoed).

mod batch;
mod checks;
mod classify;
mod config;
mod decision;
mod engine;
mod lease;
mod net;
mod pool;
mod reply;
mod request;
mod server;
mod table;
mod validate;
pub mod wire;

#[cfg(test)]
mod props;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod testutil;

pub use batch::PRUNE_INTERVAL_SECS;
pub use classify::{Classification, ClientClass, PXE_VENDOR_CLASS, classify};
pub use config::{
    BootSection, DEFAULT_AGENT_VENDOR_CLASS, DEFAULT_BATCH_LIMIT, DEFAULT_BIOS_FILE,
    DEFAULT_CLIENT_PORT, DEFAULT_DECLINE_QUARANTINE_SECS, DEFAULT_IPXE_SCRIPT_URL,
    DEFAULT_LEASE_TIME_SECS, DEFAULT_LISTEN_PORT, DEFAULT_OFFER_HOLD_SECS, DEFAULT_RELAY_PORT,
    DEFAULT_UEFI_FILE, DhcpSection, PoolSection, ReservationSection, SubnetSection,
};
pub use decision::{Action, Decision, Reply, ReplyKind, RequestContext, Silence};
pub use engine::Engine;
pub use lease::{
    InjectedFailure, Lease, LeaseState, LeaseStore, MemoryLeaseStore, StoreError, StoreOp,
};
pub use net::{Ipv4Net, NetParseError};
pub use server::{DhcpServer, LeaseLookup, ServerError};
pub use table::{LeaseChange, LeaseTable, OfferHold};
pub use validate::{AddrRange, BootConfig, ConfigError, DhcpConfig, Subnet, UrlTemplate};
pub use wire::Malformed;
