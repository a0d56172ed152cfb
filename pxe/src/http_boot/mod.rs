//! HTTP boot for iPXE, framework-free: the LM's HTTP listener hands each request to
//! [`BootHttp::respond`] and performs the IO of the [`BootReply`] (it streams file slices).
//!
//! - [`range`]: the `Range` header for one byte range (pure).
//! - [`ipxe`]: the per-host iPXE script and its input validation (pure).
//! - [`routes`]: `/boot/...` paths -> routes (pure).
//! - [`reply`]: [`BootReply`], [`BootBody`] and the [`PendingFetch`] of a streamed file.
//! - [`service`]: [`BootHttp`], gate + route + range -> reply; one `stat` per file reply.

pub mod ipxe;
pub mod range;
pub mod reply;
pub mod routes;
pub mod service;

pub use ipxe::{DEFAULT_CMDLINE_BASE, ScriptError, ScriptField, ScriptTemplate};
pub use range::{ByteRange, parse_range};
pub use reply::{BootBody, BootReply, PendingFetch};
pub use routes::{Artifact, BootRoute, RouteError, route};
pub use service::{BootHttp, BootHttpConfig, BootHttpError};

#[cfg(test)]
mod service_tests;
