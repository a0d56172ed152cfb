//! Read-only TFTP for the first stage of a network boot (the iPXE binary or script a PXE ROM
//! fetches), on async-tftp. Large files go over HTTP (see [`crate::http_boot`]).
//!
//! - [`path`]: the strict name -> file mapping (pure), and the one function that opens a
//!   mapped name under the canonical root (IO).
//! - [`handler`]: the async-tftp handler: read-only, logs refusals, reports each transfer as
//!   `EventKind::TftpFetch` through the [`EventSink`](crate::gate::EventSink).
//! - [`fetch_reader`]: the byte-counting reader behind those reports.
//! - [`server`]: [`TftpService`], which owns the UDP socket (IO).

pub mod fetch_reader;
pub mod handler;
pub mod path;
pub mod server;

pub use fetch_reader::{FetchReader, FetchReport};
pub use handler::{ClientMac, ReadOnlyHandler};
pub use path::{
    MAX_NAME_BYTES, OpenedFile, PathRefused, RelPath, ResolveError, map_path, map_request,
    open_in_root,
};
pub use server::{TftpError, TftpOptions, TftpService};
