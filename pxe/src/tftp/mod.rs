//! Read-only TFTP for the first stage of a network boot (the iPXE binary a PXE ROM fetches).
//! Large files go over HTTP (see [`crate::http_boot`]).
//!
//! - [`packet`]: the wire format: request and ACK/ERROR parsing, DATA/OACK/ERROR encoding (pure).
//! - [`options`]: the server's limits and the option negotiation (pure).
//! - [`transfer`]: [`ReadTransfer`], the sending side of one read as a state machine (pure).
//! - [`path`]: the strict name -> file mapping (pure), and the one function that opens a
//!   mapped name under the canonical root (IO).
//! - [`handler`]: the policy: read-only, logs refusals, opens files; each read is reported as
//!   `EventKind::TftpFetch` through the [`EventSink`](crate::gate::EventSink) by [`report`].
//! - [`server`]: [`TftpService`], which owns the sockets and threads (IO); `session` is the
//!   IO loop of one transfer.

pub mod handler;
pub mod options;
pub mod packet;
pub mod path;
pub mod report;
pub mod server;
mod session;
pub mod transfer;

pub use handler::{ClientMac, FileData, OpenedRead, ReadOnlyHandler, Refusal};
pub use options::{Negotiated, TftpOptions, negotiate};
pub use path::{
    MAX_NAME_BYTES, OpenedFile, PathRefused, RelPath, ResolveError, map_path, map_request,
    open_in_root,
};
pub use report::FetchReport;
pub use server::{TftpError, TftpService};
pub use transfer::{Failure, Output, ReadTransfer};
