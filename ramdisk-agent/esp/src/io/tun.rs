//! A plain layer-3 TUN device (`IFF_TUN | IFF_NO_PI`): one bare IPv4 packet per read and
//! write, non-blocking. Does IO: opens /dev/net/tun in the calling thread's network namespace.
//!
//! `wg_tunnel::Tun` is the workspace's TUN type, but its read/write/fd are crate-private, so
//! this shell has its own minimal opener behind [`PacketDevice`]; address, MTU and routes are
//! left to the caller (`wg_tunnel::ifconfig` or `ip`); its transmit queue is set to
//! [`TX_QUEUE_LEN`]. No virtio-net offloads here.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A device that moves one IP packet per read or write on a pollable, non-blocking fd.
pub trait PacketDevice {
    fn raw_fd(&self) -> RawFd;
    /// Reads one packet; `WouldBlock` when none is waiting.
    fn read_packet(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes one packet.
    fn write_packet(&self, packet: &[u8]) -> io::Result<usize>;
}

/// What went wrong opening the TUN device.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    #[error("TUN device name {name:?} is empty or longer than 15 bytes")]
    Name { name: String },
    #[error("cannot open /dev/net/tun (is the tun driver there, and are we root?)")]
    Open(#[source] io::Error),
    #[error("cannot create TUN device {name:?} (TUNSETIFF)")]
    Create {
        name: String,
        #[source]
        source: io::Error,
    },
}

/// The TUN device's transmit queue (packets the kernel hands over before the endpoint reads
/// them): the default 500 overflows under a TCP burst while the loop is busy with the socket,
/// and each packet dropped there is a TCP retransmission inside the tunnel.
pub const TX_QUEUE_LEN: u32 = 10_000;

/// Sets the transmit queue length of interface `name` (SIOCSIFTXQLEN). Best effort: the device
/// works with the default queue, only with more loss under load.
fn set_tx_queue_len(name: &str, len: u32) {
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    req.ifr_ifru.ifru_metric = libc::c_int::try_from(len).unwrap_or(libc::c_int::MAX);
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        tracing::debug!(
            "no socket for SIOCSIFTXQLEN: {}",
            io::Error::last_os_error()
        );
        return;
    }
    // SAFETY: a fresh descriptor owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // The request's type is c_ulong in glibc's ioctl and c_int in musl's (the agent's target).
    let request = libc::SIOCSIFTXQLEN as _;
    // SAFETY: SIOCSIFTXQLEN reads the ifreq, which lives across the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), request, &raw mut req) } < 0 {
        tracing::debug!(
            "cannot set {name}'s transmit queue to {len}: {}",
            io::Error::last_os_error()
        );
    }
}

/// A TUN device; dropping it deletes the interface.
#[derive(Debug)]
pub struct TunDevice {
    fd: OwnedFd,
    name: String,
}

impl TunDevice {
    /// Creates the TUN device `name` in the calling thread's network namespace.
    pub fn create(name: &str) -> Result<Self, TunError> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
            return Err(TunError::Name { name: name.into() });
        }
        // SAFETY: ifreq is plain data; all-zero is valid.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: open(2) of a NUL-terminated constant path.
        let fd = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(TunError::Open(io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: TUNSETIFF reads and writes the ifreq, which lives across the call.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &raw mut req) } < 0 {
            return Err(TunError::Create {
                name: name.into(),
                source: io::Error::last_os_error(),
            });
        }
        set_tx_queue_len(name, TX_QUEUE_LEN);
        Ok(Self {
            fd,
            name: name.into(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl PacketDevice for TunDevice {
    fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn read_packet(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for writes of its length during the call.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    fn write_packet(&self, packet: &[u8]) -> io::Result<usize> {
        // SAFETY: `packet` is valid for reads of its length during the call.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }
}
