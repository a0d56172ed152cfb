//! [`TftpService`]: the read-only TFTP server (RFC 1350 with options: RFC 2347 negotiation,
//! RFC 2348 blksize, RFC 2349 timeout and tsize, RFC 7440 windowsize). Owns the sockets (IO).
//!
//! One thread receives requests on the bound port. A read request gets a thread of its own with
//! a new socket (the transfer's TID) connected to the client: it opens the file through the
//! [`ReadOnlyHandler`], then [`session`](super::session) drives the pure
//! [`ReadTransfer`](super::transfer::ReadTransfer) with blocking `send`/`recv` and a receive
//! timeout, so a lock-step block costs two system calls and no hand-off between threads. At
//! most [`TftpOptions::max_transfers`] run at once; a retransmitted request of a running
//! transfer (same address and port) is ignored. Write requests are refused from the request
//! port. Malformed datagrams get no answer.
//!
//! This replaced async-tftp (0.4.2), whose per-block timer and executor round trip made
//! lock-step reads 0.7x the speed of tftpd-hpa (docs/benchmarks.md). Limits: see [`TftpOptions`].

use std::collections::HashSet;
use std::ffi::OsStr;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::handler::{ClientMac, ReadOnlyHandler, Refusal};
use super::options::TftpOptions;
use super::packet::{Direction, ErrorCode, Mode, RequestedOptions, parse_request};
use super::session::{run_read, send_refusal};
use crate::gate::EventSink;

/// Largest request datagram read (longer ones are cut and then fail to parse).
const REQUEST_MAX: usize = 4096;
/// Stack of a transfer thread (the transfer's buffers are on the heap).
const TRANSFER_STACK: usize = 256 * 1024;

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
        source: std::io::Error,
    },
}

/// A bound, read-only TFTP server.
#[derive(Debug)]
pub struct TftpService {
    socket: UdpSocket,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

/// What the request thread shares with the transfer threads.
#[derive(Debug)]
struct Shared {
    handler: ReadOnlyHandler,
    options: TftpOptions,
    /// Clients with a transfer running.
    active: Mutex<HashSet<SocketAddr>>,
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
        let server = |source| TftpError::Server { addr, source };
        let socket = UdpSocket::bind(addr).map_err(server)?;
        let local_addr = socket.local_addr().map_err(server)?;
        tracing::info!(addr = %local_addr, root = %canonical.display(),
            blksize_max = options.block_size_limit, windowsize_max = options.window_size_limit,
            "TFTP server bound");
        let handler = ReadOnlyHandler::new(canonical, sink, client_mac);
        Ok(Self {
            socket,
            local_addr,
            shared: Arc::new(Shared {
                handler,
                options,
                active: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The canonical root being served.
    pub fn root(&self) -> &Path {
        self.shared.handler.root()
    }

    /// Serves on a thread of its own; the thread ends only when the socket fails, with that
    /// error.
    pub fn serve_on_thread(
        self,
    ) -> std::io::Result<std::thread::JoinHandle<Result<(), TftpError>>> {
        std::thread::Builder::new()
            .name("tftp".into())
            .spawn(move || self.serve_blocking())
    }

    /// Receives requests until the socket fails (blocks the calling thread).
    pub fn serve_blocking(self) -> Result<(), TftpError> {
        let mut buf = vec![0u8; REQUEST_MAX];
        loop {
            match self.socket.recv_from(&mut buf) {
                Ok((n, peer)) => self.on_datagram(peer, &buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(TftpError::Server {
                        addr: self.local_addr,
                        source,
                    });
                }
            }
        }
    }

    fn on_datagram(&self, peer: SocketAddr, datagram: &[u8]) {
        let request = match parse_request(datagram) {
            Ok(r) => r,
            Err(reason) => {
                tracing::debug!(%peer, %reason, "TFTP datagram ignored");
                return;
            }
        };
        let path = Path::new(OsStr::from_bytes(request.file));
        if request.direction == Direction::Write {
            let refusal = self.shared.handler.refuse_write(&peer, path);
            return send_refusal(&self.socket, peer, refusal);
        }
        if request.mode == Mode::Mail {
            tracing::warn!(%peer, "TFTP read refused: mode \"mail\" is for writes");
            let refusal = Refusal {
                code: ErrorCode::IllegalOperation,
                message: "Mail mode is for writes",
            };
            return send_refusal(&self.socket, peer, refusal);
        }
        let slot = match Slot::take(&self.shared, peer) {
            Ok(slot) => slot,
            Err(Taken::Running) => return,
            Err(Taken::Full) => {
                let busy = Refusal {
                    code: ErrorCode::NotDefined,
                    message: "Server busy, try again",
                };
                return send_refusal(&self.socket, peer, busy);
            }
        };
        let shared = self.shared.clone();
        let (file, asked) = (request.file.to_vec(), request.options);
        let local_ip = self.local_addr.ip();
        let spawned = std::thread::Builder::new()
            .name("tftp-transfer".into())
            .stack_size(TRANSFER_STACK)
            .spawn(move || {
                let _slot = slot;
                transfer(&shared, local_ip, peer, &file, &asked);
            });
        if let Err(e) = spawned {
            tracing::warn!(%peer, error = %e, "TFTP transfer thread not started");
        }
    }
}

/// Why no [`Slot`] was given.
enum Taken {
    /// The client has a transfer running (its request was retransmitted).
    Running,
    /// [`TftpOptions::max_transfers`] are running.
    Full,
}

/// A client's place among the running transfers, released on drop.
struct Slot {
    shared: Arc<Shared>,
    peer: SocketAddr,
}

impl Slot {
    /// Takes a place for `peer`.
    fn take(shared: &Arc<Shared>, peer: SocketAddr) -> Result<Self, Taken> {
        let mut active = shared.active.lock().unwrap_or_else(|p| p.into_inner());
        if active.contains(&peer) {
            tracing::debug!(%peer, "TFTP request of a running transfer ignored");
            return Err(Taken::Running);
        }
        if active.len() >= shared.options.max_transfers {
            drop(active);
            tracing::warn!(%peer, max = shared.options.max_transfers,
                "TFTP read refused: too many transfers");
            return Err(Taken::Full);
        }
        active.insert(peer);
        Ok(Self {
            shared: shared.clone(),
            peer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut active = self.shared.active.lock().unwrap_or_else(|p| p.into_inner());
        active.remove(&self.peer);
    }
}

/// One read request, on its own thread and socket.
fn transfer(
    shared: &Shared,
    local_ip: IpAddr,
    peer: SocketAddr,
    file: &[u8],
    asked: &RequestedOptions,
) {
    let socket = match UdpSocket::bind(SocketAddr::new(local_ip, 0))
        .and_then(|s| s.connect(peer).map(|()| s))
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "TFTP transfer socket not opened");
            return;
        }
    };
    match shared
        .handler
        .open_read(&peer, Path::new(OsStr::from_bytes(file)))
    {
        Ok(opened) => run_read(&socket, peer, opened, asked, &shared.options),
        Err(refusal) => send_refusal(&socket, peer, refusal),
    }
}

#[cfg(test)]
#[path = "transfer_tests.rs"]
mod transfer_tests;

#[cfg(test)]
#[path = "hostile_client_tests.rs"]
mod hostile_client_tests;

#[cfg(test)]
#[path = "test_client.rs"]
mod test_client;
