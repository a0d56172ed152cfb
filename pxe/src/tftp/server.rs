//! [`TftpService`]: binds the TFTP socket and runs async-tftp with the [`ReadOnlyHandler`].
//! Owns the UDP socket (IO). async-tftp runs on smol's async-io reactor, which works inside a
//! tokio runtime: spawn [`TftpService::serve`] as a tokio task.
//!
//! Options (RFC 2347): `blksize` (RFC 2348) is capped at [`TftpOptions::block_size_limit`],
//! `windowsize` (RFC 7440) at [`TftpOptions::window_size_limit`], and `tsize` (RFC 2349) is
//! answered with the file length. The defaults allow 1468-byte blocks (a 1500-byte MTU minus
//! IP, UDP and TFTP headers) and windows of 16 blocks; iPXE asks for 1432.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_tftp::server::{TftpServer, TftpServerBuilder};

use super::handler::{ClientMac, ReadOnlyHandler};
use crate::gate::EventSink;

/// Smallest and largest `blksize` RFC 2348 allows.
pub const BLOCK_SIZE_RANGE: std::ops::RangeInclusive<u16> = 8..=65464;

/// Limits applied to what clients ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TftpOptions {
    /// Largest `blksize` granted. Default 1468.
    pub block_size_limit: u16,
    /// Largest `windowsize` granted (1 = lock-step). Default 16.
    pub window_size_limit: u16,
    /// Retransmission timeout when the client does not ask for one. Default 3 s.
    pub timeout: Duration,
}

impl Default for TftpOptions {
    fn default() -> Self {
        Self {
            block_size_limit: 1468,
            window_size_limit: 16,
            timeout: Duration::from_secs(3),
        }
    }
}

impl TftpOptions {
    /// Checks the limits; the error names the bad field.
    pub fn validate(&self) -> Result<(), TftpError> {
        let bad = |reason: String| Err(TftpError::Options { reason });
        if !BLOCK_SIZE_RANGE.contains(&self.block_size_limit) {
            return bad(format!(
                "block_size_limit {} is outside 8..=65464 (RFC 2348)",
                self.block_size_limit
            ));
        }
        if self.window_size_limit == 0 {
            return bad("window_size_limit must be at least 1 (RFC 7440)".into());
        }
        if self.timeout.is_zero() {
            return bad("timeout must be more than zero".into());
        }
        Ok(())
    }
}

/// Failures of the TFTP service.
#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    /// The root cannot be resolved.
    #[error("TFTP root {}: {source}", path.display())]
    Root {
        /// The configured root.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The root is not a directory.
    #[error("TFTP root {} is not a directory", path.display())]
    RootNotDir {
        /// The configured root.
        path: PathBuf,
    },
    /// The options are out of range.
    #[error("TFTP options: {reason}")]
    Options {
        /// What is wrong.
        reason: String,
    },
    /// The socket could not be bound or read.
    #[error("TFTP server on {addr}: {source}")]
    Server {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: async_tftp::Error,
    },
}

/// A bound, read-only TFTP server.
pub struct TftpService {
    server: TftpServer<ReadOnlyHandler>,
    local_addr: SocketAddr,
    root: PathBuf,
}

impl std::fmt::Debug for TftpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TftpService")
            .field("local_addr", &self.local_addr)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl TftpService {
    /// Canonicalizes `root`, checks the options and binds `addr` (port 0 picks a free port).
    pub async fn bind(
        addr: SocketAddr,
        root: &Path,
        options: TftpOptions,
        sink: Arc<dyn EventSink>,
        client_mac: ClientMac,
    ) -> Result<Self, TftpError> {
        options.validate()?;
        let canonical = std::fs::canonicalize(root).map_err(|source| TftpError::Root {
            path: root.to_path_buf(),
            source,
        })?;
        if !canonical.is_dir() {
            return Err(TftpError::RootNotDir {
                path: root.to_path_buf(),
            });
        }
        let handler = ReadOnlyHandler::new(canonical.clone(), sink, client_mac);
        let server = TftpServerBuilder::with_handler(handler)
            .bind(addr)
            .timeout(options.timeout)
            .block_size_limit(options.block_size_limit)
            .window_size_limit(options.window_size_limit)
            .build()
            .await
            .map_err(|source| TftpError::Server { addr, source })?;
        let local_addr = server
            .listen_addr()
            .map_err(|source| TftpError::Server { addr, source })?;
        tracing::info!(addr = %local_addr, root = %canonical.display(),
            blksize_max = options.block_size_limit, windowsize_max = options.window_size_limit,
            "TFTP server bound");
        Ok(Self {
            server,
            local_addr,
            root: canonical,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The canonical root being served.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Serves on a thread of its own that also runs async-io's reactor (`async_io::block_on`),
    /// so each packet is handled where its readiness arrives. Polled from a tokio task instead,
    /// every block would cross from async-io's reactor thread to a tokio worker and back, which
    /// halves the lock-step rate.
    pub fn serve_on_thread(
        self,
    ) -> std::io::Result<std::thread::JoinHandle<Result<(), TftpError>>> {
        std::thread::Builder::new()
            .name("tftp".into())
            .spawn(move || async_io::block_on(self.serve()))
    }

    /// Serves until the socket fails; returns only with that error.
    pub async fn serve(self) -> Result<(), TftpError> {
        let addr = self.local_addr;
        self.server
            .serve()
            .await
            .map_err(|source| TftpError::Server { addr, source })
    }
}

#[cfg(test)]
#[path = "transfer_tests.rs"]
mod transfer_tests;

#[cfg(test)]
#[path = "test_client.rs"]
mod test_client;
