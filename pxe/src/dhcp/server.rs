//! The DHCP server shell: a tokio UDP socket on `0.0.0.0:67` (SO_REUSEADDR, SO_BROADCAST,
//! SO_BINDTODEVICE to the provisioning interface when configured) that drains every queued
//! datagram into one batch (up to `batch_limit`), has the group-commit [`Batcher`] decide it,
//! sends the replies that need no flush, runs the batch's store writes and single flush on a
//! blocking thread (the flush is an fsync), and sends the ACKs once it returns.
//! Does network IO and reads the clock. Also [`LeaseLookup`], the cheap handle TFTP and HTTP
//! use to ask which MAC holds a client address.
//!
//! The receiving interface's address is taken to be `server_address` (one provisioning
//! interface); relayed subnets are told apart by `giaddr`.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use lm_api::MacAddr;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::task::{JoinError, JoinHandle};

use crate::gate::{BootDirectory, EventSink};

use super::batch::{Batcher, Commit, Outgoing};
use super::decision::RequestContext;
use super::engine::Engine;
use super::lease::{Lease, LeaseStore, StoreError};
use super::table::LeaseTable;
use super::validate::DhcpConfig;
use super::wire::MAX_MESSAGE_LEN;

/// Batches' worth of ACKs that may wait for the store before the loop stops reading.
const MAX_QUEUED_BATCHES: usize = 16;

/// Receive buffer asked of the kernel, so a burst survives one store flush.
const SOCKET_RECV_BUFFER: usize = 4 << 20;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The socket could not be set up.
    #[error("cannot open the DHCP socket on {addr}{}: {source} (port 67 needs root or CAP_NET_BIND_SERVICE; SO_BINDTODEVICE needs CAP_NET_RAW)", .interface.as_ref().map(|i| format!(" bound to {i}")).unwrap_or_default())]
    Socket {
        /// Address being bound.
        addr: SocketAddrV4,
        /// Interface being bound to.
        interface: Option<String>,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The leases could not be loaded.
    #[error("cannot load DHCP leases: {0}")]
    Load(#[source] StoreError),
    /// The batch worker thread died.
    #[error("the DHCP batch worker failed: {0}")]
    Worker(String),
}

/// Which MAC holds a client address, for TFTP and HTTP. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LeaseLookup {
    table: Arc<RwLock<LeaseTable>>,
}

impl LeaseLookup {
    /// The MAC bound to `ip` now, if any.
    pub fn mac_for(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        self.mac_for_at(ip, unix_now())
    }

    /// The MAC bound to `ip` at `now` (unix seconds).
    pub fn mac_for_at(&self, ip: Ipv4Addr, now: u64) -> Option<MacAddr> {
        self.table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .mac_for(ip, now)
    }

    /// The bound lease of `mac`, if any (expired or not).
    pub fn lease_of(&self, mac: MacAddr) -> Option<Lease> {
        self.table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .lease_of(mac)
            .cloned()
    }
}

/// The DHCP server.
pub struct DhcpServer {
    socket: UdpSocket,
    batcher: Batcher,
    batch_limit: usize,
}

impl std::fmt::Debug for DhcpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhcpServer")
            .field("socket", &self.socket)
            .field("batch_limit", &self.batch_limit)
            .finish_non_exhaustive()
    }
}

/// Unix seconds from the system clock.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn open_socket(cfg: &DhcpConfig) -> io::Result<std::net::UdpSocket> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_reuse_address(true)?;
    sock.set_broadcast(true)?;
    if let Some(ifname) = cfg.interface() {
        sock.bind_device(Some(ifname.as_bytes()))?;
    }
    if let Err(e) = sock.set_recv_buffer_size(SOCKET_RECV_BUFFER) {
        tracing::debug!(error = %e, "could not enlarge the DHCP receive buffer");
    }
    sock.set_nonblocking(true)?;
    sock.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, cfg.listen_port()).into())?;
    Ok(sock.into())
}

/// Removes from the store the leases the table did not keep (a second bound lease of one MAC:
/// the one expiring last wins), so they do not linger there forever. Failure is only logged:
/// the table is right either way and the next start tries again.
fn drop_shadowed(store: &dyn LeaseStore, table: &LeaseTable, loaded: &[Lease]) {
    let shadowed: Vec<&Lease> = loaded
        .iter()
        .filter(|l| table.lease_at(l.address) != Some(*l))
        .collect();
    if shadowed.is_empty() {
        return;
    }
    let removed = shadowed
        .iter()
        .try_for_each(|l| store.remove(l.address))
        .and_then(|()| store.flush());
    for l in &shadowed {
        tracing::warn!(mac = %l.mac, address = %l.address, "stored lease shadowed by a later lease of the same MAC: removed");
    }
    if let Err(e) = removed {
        tracing::warn!(error = %e, "could not remove shadowed leases from the store");
    }
}

impl DhcpServer {
    /// Opens the socket and loads the leases. Must be called inside a tokio runtime.
    pub fn bind(
        cfg: DhcpConfig,
        store: Arc<dyn LeaseStore>,
        directory: Arc<dyn BootDirectory>,
        sink: Arc<dyn EventSink>,
    ) -> Result<Self, ServerError> {
        let addr = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, cfg.listen_port());
        let sock_err = |source| ServerError::Socket {
            addr,
            interface: cfg.interface.clone(),
            source,
        };
        let socket = open_socket(&cfg)
            .and_then(UdpSocket::from_std)
            .map_err(sock_err)?;
        let leases = store.load_all().map_err(ServerError::Load)?;
        let table = LeaseTable::from_leases(leases.iter().cloned());
        drop_shadowed(&*store, &table, &leases);
        tracing::info!(leases = table.len(), %addr, interface = ?cfg.interface(), "DHCP server listening");
        let batch_limit = cfg.batch_limit();
        let ctx = RequestContext {
            interface_addr: cfg.server_address(),
        };
        let batcher = Batcher {
            engine: Engine::new(cfg),
            table: Arc::new(RwLock::new(table)),
            store,
            directory,
            sink,
            ctx,
            next_prune: 0,
        };
        Ok(Self {
            socket,
            batcher,
            batch_limit,
        })
    }

    /// The bound address (the port, when `listen_port` was 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// A handle for IP -> MAC lookups.
    pub fn lookup(&self) -> LeaseLookup {
        LeaseLookup {
            table: Arc::clone(&self.batcher.table),
        }
    }

    /// Serves until `shutdown` completes (the commit in flight and the one queued are
    /// finished and their replies sent first). Receive and send errors are logged, never fatal.
    ///
    /// Pipeline: a batch is decided on this task and its OFFERs/NAKs go out at once; its store
    /// writes and the one flush run on a blocking thread, and its ACKs go out when that
    /// returns. Meanwhile the loop keeps receiving and deciding; batches decided during a flush
    /// are merged into one waiting commit (so a slower store gets bigger groups), until
    /// `MAX_QUEUED_BATCHES` batches' worth of ACKs wait, when it stops reading the socket.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Self {
            socket,
            mut batcher,
            batch_limit,
        } = self;
        let store = batcher.store();
        tokio::pin!(shutdown);
        let mut buf = vec![0u8; MAX_MESSAGE_LEN + 1];
        let mut next: Vec<Vec<u8>> = Vec::with_capacity(batch_limit);
        let mut queued: Option<Commit> = None;
        let mut committing: Option<JoinHandle<Committed>> = None;
        loop {
            let backlog = queued.as_ref().map_or(0, Commit::held);
            if !next.is_empty() && backlog < batch_limit.saturating_mul(MAX_QUEUED_BATCHES) {
                drain(&socket, &mut buf, &mut next, batch_limit);
                let mut commit = batcher.decide(next.iter().map(Vec::as_slice), unix_now());
                next.clear();
                send_all(&socket, commit.take_immediate()).await;
                match (&mut queued, commit.needs_store()) {
                    (_, false) => send_all(&socket, batcher.finish(commit, Ok(()))).await,
                    (Some(q), true) => q.absorb(commit),
                    (None, true) => queued = Some(commit),
                }
            }
            if committing.is_none()
                && let Some(commit) = queued.take()
            {
                committing = Some(persist_later(&store, commit));
            }
            tokio::select! {
                _ = &mut shutdown => {
                    if let Some(w) = committing.take() {
                        let (commit, stored) = w.await.map_err(|e| ServerError::Worker(e.to_string()))?;
                        send_all(&socket, batcher.finish(commit, stored)).await;
                    }
                    if let Some(commit) = queued.take() {
                        let w = persist_later(&store, commit);
                        let (commit, stored) = w.await.map_err(|e| ServerError::Worker(e.to_string()))?;
                        send_all(&socket, batcher.finish(commit, stored)).await;
                    }
                    return Ok(());
                }
                done = finished(&mut committing) => {
                    committing = None;
                    let (commit, stored) = done.map_err(|e| ServerError::Worker(e.to_string()))?;
                    send_all(&socket, batcher.finish(commit, stored)).await;
                }
                r = socket.recv_from(&mut buf), if next.len() < batch_limit => match r {
                    Ok((n, _)) => next.push(buf.get(..n).unwrap_or_default().to_vec()),
                    Err(e) => tracing::warn!(error = %e, "DHCP receive failed"),
                },
            }
        }
    }
}

/// A commit after its store writes: the commit and how the store took it.
type Committed = (Commit, Result<(), StoreError>);

/// Runs a commit's store writes on a blocking thread.
fn persist_later(store: &Arc<dyn LeaseStore>, commit: Commit) -> JoinHandle<Committed> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || {
        let stored = commit.persist(&*store);
        (commit, stored)
    })
}

/// Waits for the commit in flight, or forever when there is none.
async fn finished(worker: &mut Option<JoinHandle<Committed>>) -> Result<Committed, JoinError> {
    match worker {
        Some(w) => w.await,
        None => std::future::pending().await,
    }
}

/// Moves every datagram already queued on the socket into `batch`, up to `limit`.
fn drain(socket: &UdpSocket, buf: &mut [u8], batch: &mut Vec<Vec<u8>>, limit: usize) {
    while batch.len() < limit {
        match socket.try_recv_from(buf) {
            Ok((n, _)) => batch.push(buf.get(..n).unwrap_or_default().to_vec()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => {
                tracing::warn!(error = %e, "DHCP receive failed");
                break;
            }
        }
    }
}

async fn send_all(socket: &UdpSocket, out: Vec<Outgoing>) {
    for o in out {
        if let Err(e) = socket.send_to(&o.bytes, SocketAddr::V4(o.to)).await {
            let reply = o.kind.name();
            tracing::warn!(to = %o.to, reply, error = %e, "DHCP send failed (a broadcast needs the interface bound or a route)");
        }
    }
}

#[cfg(test)]
mod tests;
