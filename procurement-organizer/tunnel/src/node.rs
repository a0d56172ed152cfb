//! [`Node`]: a WireGuard endpoint on its own thread, steered through a [`NodeHandle`].
//!
//! Does IO: binds the UDP socket (in the calling thread's network namespace) and spawns the
//! thread. The handle's calls are blocking but short (a round trip to the node's thread), except
//! [`NodeHandle::wait_handshake`], which waits up to its timeout.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::core::{Core, NodeStats};
use crate::error::NodeError;
use crate::event_loop::{Command, EventLoop, Gro, RealIo, Waker};
use crate::handshakes::Handshakes;
use crate::keys::{PrivateKey, PublicKey};
use crate::peer::{PeerConfig, PeerStats};
use crate::tun::Tun;
use crate::udp::{Batch, Udp};

/// Socket buffer size asked for (SO_RCVBUFFORCE/SO_SNDBUFFORCE as root, else capped by
/// net.core.rmem_max/wmem_max): bursts of a fast TCP flow must not overflow them.
const SOCKET_BUFFER: libc::c_int = 4 << 20;

/// What a node needs: its key, where to listen, its (configured) TUN device, and its peers.
#[derive(Debug)]
pub struct NodeConfig {
    pub private_key: PrivateKey,
    /// Local UDP address; port 0 lets the kernel choose (see [`NodeHandle::local_addr`]).
    pub listen: SocketAddr,
    /// The TUN device, created and configured (address, MTU, up, routes) by the caller.
    pub tun: Tun,
    pub peers: Vec<PeerConfig>,
}

/// Starts nodes.
#[derive(Debug)]
pub struct Node;

impl Node {
    /// Binds the socket, adds the peers (starting handshakes with those that have an
    /// endpoint) and starts the node's thread.
    pub fn spawn(config: NodeConfig) -> Result<NodeHandle, NodeError> {
        let NodeConfig {
            private_key,
            listen,
            tun,
            peers,
        } = config;
        let udp = UdpSocket::bind(listen).map_err(|source| NodeError::Bind {
            addr: listen,
            source,
        })?;
        udp.set_nonblocking(true)
            .map_err(|source| NodeError::Setup {
                what: "making the UDP socket non-blocking",
                source,
            })?;
        grow_buffers(&udp);
        let local_addr = udp.local_addr().map_err(|source| NodeError::Setup {
            what: "reading the UDP socket's address",
            source,
        })?;
        let waker = Arc::new(Waker::new().map_err(|source| NodeError::Setup {
            what: "creating an eventfd",
            source,
        })?);
        let mut core = Core::new(&private_key, Core::os_rng());
        let mut udp = Udp::new(udp);
        let mut batch = Batch::new();
        let mut gro = Gro::default();
        for peer in peers {
            let mut io = RealIo {
                udp: &mut udp,
                batch: &mut batch,
                tun: &tun,
                gro: &mut gro,
            };
            core.add_peer(&mut io, peer)?;
        }
        batch.flush(&mut udp);
        let public_key = private_key.public_key();
        drop(private_key);
        let tun_name = tun.name().to_owned();
        let (tx, rx) = mpsc::channel();
        let handshakes = core.handshakes();
        let event_loop = EventLoop {
            core,
            udp,
            batch,
            tun,
            gro,
            segment: vec![0u8; crate::core::MAX_PACKET].into_boxed_slice(),
            tun_invalid: 0,
            waker: Arc::clone(&waker),
            commands: rx,
        };
        let thread = std::thread::Builder::new()
            .name(format!("wg-{tun_name}"))
            .spawn({
                let handshakes = Arc::clone(&handshakes);
                move || {
                    // waiters are released however the thread ends, a panic included
                    let _release = StopGuard(handshakes);
                    let r = event_loop.run();
                    if let Err(e) = &r {
                        tracing::error!("WireGuard node stopped: {e}");
                    }
                    r
                }
            })
            .map_err(|source| NodeError::Setup {
                what: "spawning the node's thread",
                source,
            })?;
        tracing::info!(%local_addr, tun = %tun_name, public_key = %public_key, "WireGuard node running");
        Ok(NodeHandle {
            commands: tx,
            waker,
            thread: Some(thread),
            local_addr,
            public_key,
            tun_name,
            handshakes,
        })
    }
}

/// Tells the handshake board that the node's thread has ended.
struct StopGuard(Arc<Handshakes>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.0.stopped();
    }
}

fn grow_buffers(udp: &UdpSocket) {
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        let size: libc::c_int = SOCKET_BUFFER;
        let set = |opt| {
            // SAFETY: setsockopt with a pointer to a live c_int and its size.
            unsafe {
                libc::setsockopt(
                    udp.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&raw const size).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            }
        };
        if set(force) != 0 {
            set(plain);
        }
    }
}

/// The running node. Dropping it stops the node (like [`NodeHandle::shutdown`], ignoring how
/// the thread ended); the TUN device goes with it.
#[derive(Debug)]
pub struct NodeHandle {
    commands: mpsc::Sender<Command>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<Result<(), NodeError>>>,
    local_addr: SocketAddr,
    public_key: PublicKey,
    tun_name: String,
    handshakes: Arc<Handshakes>,
}

impl NodeHandle {
    /// The UDP address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The UDP port actually bound.
    pub fn local_port(&self) -> u16 {
        self.local_addr.port()
    }

    /// This node's public key.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// The TUN device's name.
    pub fn tun_name(&self) -> &str {
        &self.tun_name
    }

    fn ask<T>(&self, make: impl FnOnce(mpsc::Sender<T>) -> Command) -> Result<T, NodeError> {
        let (tx, rx) = mpsc::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| NodeError::Stopped)?;
        self.waker.wake();
        rx.recv().map_err(|_| NodeError::Stopped)
    }

    /// Adds a peer (a handshake starts at once if it has an endpoint). Refused if the key is
    /// configured already or one of its networks is exactly another peer's.
    pub fn add_peer(&self, peer: PeerConfig) -> Result<(), NodeError> {
        self.ask(|tx| Command::AddPeer(peer, tx))?
    }

    /// Removes a peer and its sessions: its packets are dropped from now on.
    pub fn remove_peer(&self, key: &PublicKey) -> Result<(), NodeError> {
        self.ask(|tx| Command::RemovePeer(*key, tx))?
    }

    /// Every peer's endpoint, last handshake and counters, ordered by key.
    pub fn peers(&self) -> Result<Vec<PeerStats>, NodeError> {
        self.ask(Command::Peers)
    }

    /// Counters of packets that belong to no peer.
    pub fn stats(&self) -> Result<NodeStats, NodeError> {
        self.ask(Command::Stats)
    }

    /// Waits until a handshake with `key` has completed (returns at once if one completed
    /// within the last 180 s). Fails if the peer is unknown or removed meanwhile, or on timeout.
    pub fn wait_handshake(&self, key: &PublicKey, timeout: Duration) -> Result<(), NodeError> {
        self.handshakes.wait(key, timeout)
    }

    /// Stops the node's thread and waits for it; the error, if the node had failed.
    pub fn shutdown(mut self) -> Result<(), NodeError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), NodeError> {
        let _ = self.commands.send(Command::Shutdown);
        self.waker.wake();
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| NodeError::Panicked)?,
            None => Ok(()),
        }
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
