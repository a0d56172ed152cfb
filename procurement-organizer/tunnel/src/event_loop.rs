//! The node's thread: poll(2) on the UDP socket, the TUN fd and an eventfd that the handle
//! writes after queueing a command; read each until EAGAIN (in bounded batches, so commands and
//! timers still run under load); tick the timers every [`TICK`].
//!
//! Does IO. Buffers are allocated once per node.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use crate::core::{Core, Io, MAX_PACKET, NodeStats};
use crate::error::NodeError;
use crate::keys::PublicKey;
use crate::offload::{self, Coalescer};
use crate::peer::{PeerConfig, PeerStats};
use crate::tun::Tun;
use crate::udp::{Batch, Udp};

/// How often the peers' timers run.
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// Packets taken from one source before looking at the other, the commands and the timers.
const BATCH: usize = 64;

/// Requests from the [`crate::NodeHandle`].
pub(crate) enum Command {
    AddPeer(PeerConfig, mpsc::Sender<Result<(), NodeError>>),
    RemovePeer(PublicKey, mpsc::Sender<Result<(), NodeError>>),
    Peers(mpsc::Sender<Vec<PeerStats>>),
    Stats(mpsc::Sender<NodeStats>),
    Shutdown,
}

/// An eventfd that wakes the node's poll.
#[derive(Debug)]
pub(crate) struct Waker(OwnedFd);

impl Waker {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain eventfd(2) call.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor owned by nobody else.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn wake(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live array to our eventfd.
        unsafe { libc::write(self.0.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }

    fn drain(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live array from our eventfd.
        unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    }

    fn raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// The real effects: datagrams go to the send batch, packets to the TUN device (through the
/// coalescer when the device takes super-packets).
pub(crate) struct RealIo<'a> {
    pub udp: &'a mut Udp,
    pub batch: &'a mut Batch,
    pub tun: &'a Tun,
    pub gro: &'a mut Gro,
}

/// The TUN device's write side: the coalescer and its failed writes.
#[derive(Debug, Default)]
pub(crate) struct Gro {
    coalescer: Coalescer,
    pub failed: u64,
}

impl Gro {
    pub fn flush(&mut self, tun: &Tun) {
        let failed = &mut self.failed;
        self.coalescer.flush(|bytes| {
            if tun.write(bytes).is_err() {
                *failed += 1;
            }
        });
    }
}

impl Io for RealIo<'_> {
    fn send_to(&mut self, datagram: &[u8], to: SocketAddr) -> io::Result<()> {
        self.batch.push(self.udp, datagram, to);
        Ok(())
    }

    fn write_tun(&mut self, packet: &[u8]) -> io::Result<()> {
        if !self.tun.vnet() {
            return self.tun.write(packet).map(drop);
        }
        let (tun, failed) = (self.tun, &mut self.gro.failed);
        self.gro.coalescer.push(packet, |bytes| {
            if tun.write(bytes).is_err() {
                *failed += 1;
            }
        });
        Ok(())
    }
}

pub(crate) struct EventLoop {
    pub core: Core,
    pub udp: Udp,
    pub batch: Batch,
    pub tun: Tun,
    pub gro: Gro,
    /// One segment of a TCP super-packet from the TUN device.
    pub segment: Box<[u8]>,
    /// TUN reads that could not be prepared (bad virtio header or super-packet).
    pub tun_invalid: u64,
    pub waker: std::sync::Arc<Waker>,
    pub commands: mpsc::Receiver<Command>,
}

enum Flow {
    Continue,
    Stop,
}

impl EventLoop {
    pub fn run(mut self) -> Result<(), NodeError> {
        // a TUN read may be a 64 KiB super-packet after its virtio header
        let mut buf = vec![0u8; MAX_PACKET + 64].into_boxed_slice();
        let mut next_tick = Instant::now() + TICK;
        let mut fds = [
            pollfd(self.udp.socket().as_raw_fd()),
            pollfd(self.tun.raw_fd()),
            pollfd(self.waker.raw_fd()),
        ];
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX).max(1);
            for f in &mut fds {
                f.revents = 0;
            }
            // SAFETY: `fds` is a live array of three pollfds.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(NodeError::Setup {
                        what: "poll(2) on the socket and the TUN device",
                        source: e,
                    });
                }
            }
            if fds[2].revents != 0 {
                self.waker.drain();
            }
            let mut udp_ready = fds[0].revents != 0;
            let mut tun_ready = fds[1].revents != 0;
            loop {
                if let Flow::Stop = self.commands() {
                    return Ok(());
                }
                if Instant::now() >= next_tick {
                    let mut io = RealIo {
                        udp: &mut self.udp,
                        batch: &mut self.batch,
                        tun: &self.tun,
                        gro: &mut self.gro,
                    };
                    self.core.tick(&mut io);
                    next_tick = Instant::now() + TICK;
                }
                self.batch.flush(&mut self.udp);
                if !udp_ready && !tun_ready {
                    break;
                }
                if udp_ready {
                    udp_ready = self.drain_udp(&mut buf);
                    self.gro.flush(&self.tun);
                }
                if tun_ready {
                    tun_ready = self.drain_tun(&mut buf)?;
                }
                self.batch.flush(&mut self.udp);
            }
        }
    }

    /// Handles waiting commands.
    fn commands(&mut self) -> Flow {
        loop {
            let cmd = match self.commands.try_recv() {
                Ok(cmd) => cmd,
                Err(mpsc::TryRecvError::Empty) => return Flow::Continue,
                Err(mpsc::TryRecvError::Disconnected) => return Flow::Stop,
            };
            let mut io = RealIo {
                udp: &mut self.udp,
                batch: &mut self.batch,
                tun: &self.tun,
                gro: &mut self.gro,
            };
            match cmd {
                Command::AddPeer(cfg, reply) => {
                    let _ = reply.send(self.core.add_peer(&mut io, cfg));
                }
                Command::RemovePeer(key, reply) => {
                    let _ = reply.send(self.core.remove_peer(&key));
                }
                Command::Peers(reply) => {
                    let _ = reply.send(self.core.peer_stats());
                }
                Command::Stats(reply) => {
                    let mut stats = self.core.stats();
                    stats.send_failed = self.batch.failed;
                    stats.tun_write_failed = self.gro.failed;
                    stats.no_route += self.tun_invalid;
                    let _ = reply.send(stats);
                }
                Command::Shutdown => return Flow::Stop,
            }
        }
    }

    /// Up to [`BATCH`] receives (each may hold several datagrams); true if more may be waiting.
    fn drain_udp(&mut self, buf: &mut [u8]) -> bool {
        let now = SystemTime::now();
        for _ in 0..BATCH {
            let (n, from, seg) = match self.udp.recv(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP errors reported on the socket and the like: not fatal
                    tracing::trace!("UDP receive: {e}");
                    return true;
                }
            };
            let mut io = RealIo {
                udp: &mut self.udp,
                batch: &mut self.batch,
                tun: &self.tun,
                gro: &mut self.gro,
            };
            if let Some(data) = buf.get(..n) {
                for datagram in data.chunks(seg.max(1)) {
                    self.core.on_datagram(&mut io, from, datagram, now);
                }
            }
        }
        true
    }

    /// Up to [`BATCH`] reads from the TUN device (each one packet or a TCP super-packet);
    /// true if more may be waiting.
    fn drain_tun(&mut self, buf: &mut [u8]) -> Result<bool, NodeError> {
        for _ in 0..BATCH {
            let n = match self.tun.read(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NodeError::TunIo(e)),
            };
            let mut io = RealIo {
                udp: &mut self.udp,
                batch: &mut self.batch,
                tun: &self.tun,
                gro: &mut self.gro,
            };
            let Some(read) = buf.get_mut(..n) else {
                continue;
            };
            if self.tun.vnet() {
                let core = &mut self.core;
                if let Err(e) = offload::split(read, &mut self.segment, |packet| {
                    core.on_tun_packet(&mut io, packet);
                }) {
                    self.tun_invalid += 1;
                    tracing::trace!("TUN read of {n} bytes: {e}");
                }
            } else {
                self.core.on_tun_packet(&mut io, read);
            }
        }
        Ok(true)
    }
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}
