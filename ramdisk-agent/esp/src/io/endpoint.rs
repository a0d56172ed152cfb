//! One userspace ESP endpoint: a UDP socket (port 4500) and a [`PacketDevice`], one outbound
//! SA and a small set of inbound SAs looked up by SPI (a rekey installs the successor pair
//! through [`Command`] and the old inbound SA accepts until removed), single-threaded with
//! poll(2). Packets from the device are sealed and
//! sent to the peer; datagrams are classified (RFC 3948): IKE messages go to a channel for the
//! IKE layer, keepalives are ignored, ESP is opened and written to the device.
//!
//! Does IO. Every drop is counted in [`Counters`] (shared, readable from other threads) and
//! logged at debug level with its typed reason.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::tun::PacketDevice;
use crate::error::DecapError;
use crate::udp_encap::{self, Datagram};
use crate::{Decapsulated, InboundSa, OutboundSa};

/// Packets taken from one source before looking at the other.
const BATCH: usize = 64;
const BUF: usize = 65_536;
/// The ESP socket's receive buffer: the kernel default (about 200 KiB, some 90 datagrams of
/// 1.4 KiB) overflows while the loop seals a batch or waits for a core, and each datagram lost
/// there is a TCP retransmission inside the tunnel.
pub const RECV_BUFFER: usize = 4 << 20;

/// Sets the socket's receive buffer to `bytes`: `SO_RCVBUFFORCE` (root, above
/// `net.core.rmem_max`), else `SO_RCVBUF` (capped by the kernel). Best effort: the endpoint
/// works with the default buffer, only with more loss under load.
fn grow_receive_buffer(sock: &UdpSocket, bytes: usize) {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setsockopt with a pointer to a live c_int and its size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&raw const value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
    tracing::debug!(
        "cannot grow the ESP socket's receive buffer: {}",
        io::Error::last_os_error()
    );
}

/// What the endpoint has done; each field counts packets.
#[derive(Debug, Default)]
pub struct Counters {
    /// Read from the device and sent as ESP.
    pub sent: AtomicU64,
    /// Opened and written to the device.
    pub received: AtomicU64,
    /// Dummy packets (next header 59) received and dropped.
    pub dummies: AtomicU64,
    /// IKE messages handed to the channel.
    pub ike: AtomicU64,
    pub keepalives: AtomicU64,
    /// Device packets that are not IPv4 (dropped).
    pub not_ipv4: AtomicU64,
    /// Device packets the outbound SA refused (exhausted, expired, too long).
    pub encap_refused: AtomicU64,
    /// Datagrams that are neither IKE, keepalive nor ESP, or ESP for an unknown SPI.
    pub unclassified: AtomicU64,
    /// Replayed, too old or sequence number 0.
    pub replayed: AtomicU64,
    /// Integrity check failed.
    pub integrity: AtomicU64,
    /// Any other inbound drop (length, padding, next header, inner packet, expired).
    pub malformed: AtomicU64,
    /// sendto or device write failures.
    pub io_errors: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// An IKE message that arrived on the port behind the non-ESP marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeDatagram {
    pub from: SocketAddr,
    pub message: Vec<u8>,
}

/// The SA pair and the peer's address.
#[derive(Debug)]
pub struct EndpointConfig {
    pub peer: SocketAddr,
    pub outbound: OutboundSa,
    pub inbound: InboundSa,
}

/// Inbound SAs kept at once (the current one and predecessors during a rekey overlap); a
/// further install drops the oldest.
pub const MAX_INBOUND: usize = 4;

/// A change to the SAs, sent by the IKE layer while the endpoint runs (between two polls, so
/// no packet is dropped half-way).
#[derive(Debug)]
pub enum Command {
    /// A rekeyed pair: the outbound SA replaces the current one; the inbound SA is added (the
    /// old inbound SAs keep accepting until removed).
    Install {
        outbound: Box<OutboundSa>,
        inbound: Box<InboundSa>,
    },
    /// Remove the inbound SA with this SPI (the IKE layer deleted the old child SA).
    RemoveInbound(u32),
}

/// The SAs in use, published after each poll (for the IKE layer's rekey decision and logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaStatus {
    pub outbound_spi: u32,
    pub outbound_packets: u64,
    /// The outbound or the newest inbound SA reached a soft limit.
    pub needs_rekey: bool,
    /// The outbound SA reached a hard limit.
    pub expired: bool,
    /// (SPI, packets opened) of each inbound SA, oldest first.
    pub inbound: Vec<(u32, u64)>,
}

/// What stopped the loop.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("cannot make the ESP socket non-blocking")]
    Socket(#[source] io::Error),
    #[error("poll(2) on the ESP socket and the TUN device failed")]
    Poll(#[source] io::Error),
    #[error("reading the TUN device failed")]
    DeviceRead(#[source] io::Error),
    #[error("receiving on the ESP socket failed")]
    SocketRecv(#[source] io::Error),
}

/// The endpoint; [`Endpoint::run`] loops until the stop flag is set.
#[derive(Debug)]
pub struct Endpoint<D: PacketDevice> {
    sock: UdpSocket,
    device: D,
    peer: SocketAddr,
    outbound: OutboundSa,
    inbound: Vec<InboundSa>,
    commands: mpsc::Receiver<Command>,
    command_tx: mpsc::Sender<Command>,
    status: Arc<Mutex<SaStatus>>,
    ike: Option<mpsc::Sender<IkeDatagram>>,
    counters: Arc<Counters>,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl<D: PacketDevice> Endpoint<D> {
    /// `sock` is bound (usually to port 4500) in the right namespace; `ike` receives IKE
    /// messages (dropped and counted as unclassified when `None`).
    pub fn new(
        sock: UdpSocket,
        device: D,
        config: EndpointConfig,
        ike: Option<mpsc::Sender<IkeDatagram>>,
    ) -> Result<Self, EndpointError> {
        sock.set_nonblocking(true).map_err(EndpointError::Socket)?;
        grow_receive_buffer(&sock, RECV_BUFFER);
        let (command_tx, commands) = mpsc::channel();
        Ok(Self {
            sock,
            device,
            peer: config.peer,
            outbound: config.outbound,
            inbound: vec![config.inbound],
            commands,
            command_tx,
            status: Arc::default(),
            ike,
            counters: Arc::default(),
            buf: vec![0; BUF],
            out: Vec::with_capacity(BUF),
        })
    }

    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Where to send [`Command`]s (taken between polls).
    pub fn control(&self) -> mpsc::Sender<Command> {
        self.command_tx.clone()
    }

    /// The SAs in use, updated after every poll.
    pub fn status(&self) -> Arc<Mutex<SaStatus>> {
        Arc::clone(&self.status)
    }

    fn apply(&mut self, c: Command) {
        match c {
            Command::Install { outbound, inbound } => {
                tracing::debug!(
                    spi_out = format_args!("{:08x}", outbound.spi()),
                    spi_in = format_args!("{:08x}", inbound.spi()),
                    "ESP SA pair installed"
                );
                self.outbound = *outbound;
                self.inbound.retain(|sa| sa.spi() != inbound.spi());
                if self.inbound.len() >= MAX_INBOUND {
                    self.inbound.remove(0);
                }
                self.inbound.push(*inbound);
            }
            Command::RemoveInbound(spi) => {
                // The newest inbound SA stays: it is the only one the peer can still use.
                if self.inbound.len() > 1 || self.inbound.first().is_some_and(|s| s.spi() != spi) {
                    self.inbound.retain(|sa| sa.spi() != spi);
                }
            }
        }
    }

    fn publish(&self) {
        let now = Instant::now();
        let st = SaStatus {
            outbound_spi: self.outbound.spi(),
            outbound_packets: self.outbound.lifetime().packets(),
            needs_rekey: self.outbound.needs_rekey(now)
                || self.inbound.last().is_some_and(|sa| sa.needs_rekey(now)),
            expired: self.outbound.expired(now),
            inbound: self
                .inbound
                .iter()
                .map(|sa| (sa.spi(), sa.lifetime().packets()))
                .collect(),
        };
        if let Ok(mut g) = self.status.lock() {
            *g = st;
        }
    }

    /// Sends an IKE message to `to` behind the non-ESP marker.
    pub fn send_ike(&mut self, message: &[u8], to: SocketAddr) -> io::Result<()> {
        udp_encap::ike_datagram(message, &mut self.out);
        self.sock.send_to(&self.out, to).map(|_| ())
    }

    /// Polls until `stop` is set (checked at least every 100 ms).
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), EndpointError> {
        while !stop.load(Ordering::Relaxed) {
            self.poll_once(Duration::from_millis(100))?;
        }
        Ok(())
    }

    /// Waits up to `timeout` for work and does what is ready.
    pub fn poll_once(&mut self, timeout: Duration) -> Result<(), EndpointError> {
        let mut fds = [
            libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.device.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fds` is a live array of two pollfd for the duration of the call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(EndpointError::Poll(e));
        }
        if fds[1].revents != 0 {
            self.drain_device()?;
        }
        if fds[0].revents != 0 {
            self.drain_socket()?;
        }
        while let Ok(c) = self.commands.try_recv() {
            self.apply(c);
        }
        self.publish();
        Ok(())
    }

    fn drain_device(&mut self) -> Result<(), EndpointError> {
        for _ in 0..BATCH {
            let n = match self.device.read_packet(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(EndpointError::DeviceRead(e)),
            };
            let packet = &self.buf[..n];
            if packet.first().map(|b| b >> 4) != Some(4) {
                bump(&self.counters.not_ipv4);
                continue;
            }
            match self
                .outbound
                .encapsulate(packet, &mut self.out, Instant::now())
            {
                Ok(_) => match self.sock.send_to(&self.out, self.peer) {
                    Ok(_) => bump(&self.counters.sent),
                    Err(e) => {
                        tracing::debug!(peer = %self.peer, "ESP send: {e}");
                        bump(&self.counters.io_errors);
                    }
                },
                Err(e) => {
                    tracing::debug!("outbound packet dropped: {e}");
                    bump(&self.counters.encap_refused);
                }
            }
        }
        Ok(())
    }

    fn drain_socket(&mut self) -> Result<(), EndpointError> {
        for _ in 0..BATCH {
            let (n, from) = match self.sock.recv_from(&mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors from an earlier send surface here; they end nothing.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(EndpointError::SocketRecv(e)),
            };
            self.datagram(n, from);
        }
        Ok(())
    }

    fn datagram(&mut self, n: usize, from: SocketAddr) {
        let c = &self.counters;
        let spi = match udp_encap::classify(&self.buf[..n]) {
            Ok(Datagram::Esp { spi, .. }) => spi,
            Ok(Datagram::NatKeepalive) => return bump(&c.keepalives),
            Ok(Datagram::Ike(message)) => {
                let sent = self.ike.as_ref().is_some_and(|tx| {
                    tx.send(IkeDatagram {
                        from,
                        message: message.to_vec(),
                    })
                    .is_ok()
                });
                return bump(if sent { &c.ike } else { &c.unclassified });
            }
            Err(e) => {
                tracing::debug!(%from, "UDP/4500 datagram dropped: {e}");
                return bump(&c.unclassified);
            }
        };
        let Some(sa) = self.inbound.iter_mut().find(|sa| sa.spi() == spi) else {
            tracing::debug!(%from, spi, "ESP for an unknown SPI dropped");
            return bump(&c.unclassified);
        };
        match sa.decapsulate(&mut self.buf[..n], Instant::now()) {
            Ok(Decapsulated::Ipv4(inner)) => match self.device.write_packet(inner) {
                Ok(_) => bump(&c.received),
                Err(e) => {
                    tracing::debug!("TUN write: {e}");
                    bump(&c.io_errors);
                }
            },
            Ok(Decapsulated::Dummy) => bump(&c.dummies),
            Err(e) => {
                tracing::debug!(%from, "ESP dropped: {e}");
                bump(match e {
                    DecapError::Replayed { .. }
                    | DecapError::TooOld { .. }
                    | DecapError::ZeroSequence { .. } => &c.replayed,
                    DecapError::Integrity { .. } => &c.integrity,
                    _ => &c.malformed,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive_buffer(sock: &UdpSocket) -> libc::c_int {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt into a live c_int with its size.
        let rc = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&raw mut value).cast(),
                &raw mut len,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        value
    }

    #[test]
    fn the_receive_buffer_grows_as_far_as_allowed() {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let before = receive_buffer(&sock);
        grow_receive_buffer(&sock, RECV_BUFFER);
        let after = receive_buffer(&sock);
        assert!(after >= before, "{before} -> {after}");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // SO_RCVBUFFORCE: the kernel doubles the value for its bookkeeping
            assert!(after as usize >= RECV_BUFFER, "{after}");
        }
        // a hostile size is clamped, not an error
        grow_receive_buffer(&sock, usize::MAX);
        assert!(receive_buffer(&sock) > 0);
    }
}
