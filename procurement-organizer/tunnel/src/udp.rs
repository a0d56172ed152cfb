//! The node's UDP socket with Linux's UDP segmentation offloads: datagrams of one size for one
//! destination leave in a single sendmsg(2) (UDP_SEGMENT, "GSO"), and the kernel may hand over
//! several datagrams from one sender in a single recvmsg(2) (UDP_GRO), which saves most of the
//! per-packet cost of the socket layer for a bulk flow. Either falls back to one datagram per
//! call when the kernel or the device does not support it.
//!
//! Does IO. The sending side is [`Batch`]: the core's datagrams are appended to it and it is
//! flushed by the event loop after each round of work.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

/// At most this many segments in one GSO send (the kernel's UDP_MAX_SEGMENTS is 64 or more).
const MAX_SEGMENTS: usize = 64;
/// At most this many payload bytes in one GSO send (an IPv4 datagram's 65,507 with margin).
const MAX_GSO_BYTES: usize = 65_000;

fn cmsg_space(len: usize) -> usize {
    // SAFETY: CMSG_SPACE is pure arithmetic.
    unsafe { libc::CMSG_SPACE(len as u32) as usize }
}

/// A cmsg buffer aligned for `cmsghdr`, big enough for one `int` option.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

/// The socket and what the kernel supports on it.
#[derive(Debug)]
pub(crate) struct Udp {
    sock: UdpSocket,
    /// An IPv6 (dual-stack) socket: IPv4 destinations are sent as v4-mapped addresses.
    v6: bool,
    gso: bool,
    gro: bool,
}

fn to_sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is valid.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&raw mut ss).cast::<libc::sockaddr_in>(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&raw mut ss).cast::<libc::sockaddr_in6>(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn from_sockaddr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family says so) into the storage.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                u32::from_be(sin.sin_addr.s_addr).into(),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 (family says so) into the storage.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(canonical(SocketAddr::V6(SocketAddrV6::new(
                sin6.sin6_addr.s6_addr.into(),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            ))))
        }
        _ => None,
    }
}

/// A v4-mapped IPv6 address (what a dual-stack socket reports for IPv4 senders) as IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, a.port())),
            None => addr,
        },
        v4 => v4,
    }
}

impl Udp {
    /// Takes a non-blocking socket and turns on UDP_GRO where the kernel has it.
    pub fn new(sock: UdpSocket) -> Self {
        let v6 = sock.local_addr().is_ok_and(|a| a.is_ipv6());
        let one: libc::c_int = 1;
        // SAFETY: setsockopt with a pointer to a live c_int and its size.
        let gro = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_UDP,
                libc::UDP_GRO,
                (&raw const one).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        } == 0;
        Self {
            sock,
            v6,
            gso: true,
            gro,
        }
    }

    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }

    /// Receives into `buf`: the total length, the sender, and the segment size (the datagrams
    /// are `seg` bytes each, the last one possibly shorter; `seg == len` for a single one).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, usize)> {
        if !self.gro {
            let (n, from) = self.sock.recv_from(buf)?;
            return Ok((n, canonical(from), n));
        }
        // SAFETY: all-zero is a valid value of these plain-data types.
        let mut name: libc::sockaddr_storage = unsafe { zeroed() };
        let mut cmsg = CmsgBuf([0; 64]);
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = (&raw mut name).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.0.as_mut_ptr().cast();
        msg.msg_controllen = cmsg_space(size_of::<libc::c_int>()) as _;
        // SAFETY: msg points at live buffers of the sizes it states.
        let n = unsafe { libc::recvmsg(self.sock.as_raw_fd(), &raw mut msg, 0) };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        let from =
            from_sockaddr(&name).ok_or_else(|| io::Error::other("unknown address family"))?;
        let mut seg = n;
        // SAFETY: walking the control messages the kernel wrote, with the libc macros.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                    let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                    if let Ok(v) = usize::try_from(v)
                        && v > 0
                    {
                        seg = v;
                    }
                }
                c = libc::CMSG_NXTHDR(&raw const msg, c);
            }
        }
        Ok((n, from, seg))
    }

    /// `to` as this socket can send to it.
    fn target(&self, to: SocketAddr) -> SocketAddr {
        match to {
            SocketAddr::V4(a) if self.v6 => {
                SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0))
            }
            other => other,
        }
    }

    fn send_one(&self, datagram: &[u8], to: SocketAddr) -> io::Result<()> {
        let to = self.target(to);
        match self.sock.send_to(datagram, to) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // socket buffer full: wait a little for room rather than drop at once
                self.wait_writable();
                self.sock.send_to(datagram, to).map(drop)
            }
            Err(e) => Err(e),
        }
    }

    fn wait_writable(&self) {
        let mut p = libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        unsafe { libc::poll(&raw mut p, 1, 20) };
    }

    /// Sends `data`, datagrams of `seg` bytes (the last possibly shorter), in one call.
    fn send_segments(&mut self, data: &[u8], seg: usize, to: SocketAddr) -> io::Result<()> {
        if data.len() <= seg {
            return self.send_one(data, to);
        }
        if self.gso {
            match self.sendmsg_gso(data, seg, to) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait_writable();
                    if self.sendmsg_gso(data, seg, to).is_ok() {
                        return Ok(());
                    }
                }
                Err(e) => {
                    // EIO/EINVAL: no checksum offload on the route's device, or an old kernel
                    tracing::debug!(
                        "UDP segmentation offload unavailable ({e}); sending one by one"
                    );
                    self.gso = false;
                }
            }
        }
        let mut result = Ok(());
        for d in data.chunks(seg) {
            if let Err(e) = self.send_one(d, to) {
                result = Err(e);
            }
        }
        result
    }

    fn sendmsg_gso(&self, data: &[u8], seg: usize, to: SocketAddr) -> io::Result<()> {
        let (mut name, namelen) = to_sockaddr(self.target(to));
        let mut iov = libc::iovec {
            iov_base: data.as_ptr().cast_mut().cast(),
            iov_len: data.len(),
        };
        let mut cmsg = CmsgBuf([0; 64]);
        // SAFETY: all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = (&raw mut name).cast();
        msg.msg_namelen = namelen;
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.0.as_mut_ptr().cast();
        msg.msg_controllen = cmsg_space(size_of::<u16>()) as _;
        let seg = u16::try_from(seg).map_err(|_| io::Error::other("segment too large"))?;
        // SAFETY: the control buffer is aligned and large enough for one u16 option; the
        // kernel only reads the iovec (sendmsg does not write to it).
        let n = unsafe {
            let c = libc::CMSG_FIRSTHDR(&raw const msg);
            (*c).cmsg_level = libc::SOL_UDP;
            (*c).cmsg_type = libc::UDP_SEGMENT;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg);
            libc::sendmsg(self.sock.as_raw_fd(), &raw const msg, 0)
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Datagrams waiting to be sent: consecutive ones of one size to one destination are
/// coalesced into one GSO send.
#[derive(Debug)]
pub(crate) struct Batch {
    buf: Vec<u8>,
    to: Option<SocketAddr>,
    seg: usize,
    count: usize,
    /// The last datagram was shorter than `seg`: nothing may follow it in this send.
    closed: bool,
    /// Sends that failed (the datagrams are counted as sent by their peers).
    pub failed: u64,
}

impl Batch {
    pub fn new() -> Self {
        Self {
            buf: Vec::with_capacity(MAX_GSO_BYTES + 2048),
            to: None,
            seg: 0,
            count: 0,
            closed: false,
            failed: 0,
        }
    }

    /// Queues `datagram` for `to`, sending what was queued first if it cannot join it.
    pub fn push(&mut self, udp: &mut Udp, datagram: &[u8], to: SocketAddr) {
        let fits = self.to == Some(to)
            && !self.closed
            && datagram.len() <= self.seg
            && self.count < MAX_SEGMENTS
            && self.buf.len() + datagram.len() <= MAX_GSO_BYTES;
        if !fits {
            self.flush(udp);
            self.to = Some(to);
            self.seg = datagram.len();
        }
        self.buf.extend_from_slice(datagram);
        self.count += 1;
        self.closed = datagram.len() < self.seg;
    }

    pub fn flush(&mut self, udp: &mut Udp) {
        if let Some(to) = self.to.take()
            && !self.buf.is_empty()
            && let Err(e) = udp.send_segments(&self.buf, self.seg.max(1), to)
        {
            self.failed += 1;
            tracing::trace!(%to, "UDP send failed: {e}");
        }
        self.buf.clear();
        self.count = 0;
        self.closed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_survive_the_sockaddr_round_trip() {
        for a in ["10.1.2.3:51820", "[fd00::1]:7", "[fe80::1%3]:9"] {
            let a: SocketAddr = a.parse().unwrap();
            let (ss, _) = to_sockaddr(a);
            assert_eq!(from_sockaddr(&ss), Some(a));
        }
    }

    #[test]
    fn v4_mapped_senders_are_shown_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.61.0.1]:4000".parse().unwrap();
        assert_eq!(canonical(mapped), "10.61.0.1:4000".parse().unwrap());
        let plain: SocketAddr = "[fd00::1]:4000".parse().unwrap();
        assert_eq!(canonical(plain), plain);
    }

    #[test]
    fn a_dual_stack_socket_talks_to_ipv4_peers() {
        let Ok(v6) = UdpSocket::bind("[::]:0") else {
            return; // no IPv6 on this host
        };
        let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
        v4.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let mut udp = Udp::new(v6);
        let mut batch = Batch::new();
        let to = v4.local_addr().unwrap();
        for _ in 0..3 {
            batch.push(&mut udp, &[7u8; 100], to);
        }
        batch.flush(&mut udp);
        assert_eq!(batch.failed, 0);
        let mut buf = [0u8; 2048];
        let (n, from) = v4.recv_from(&mut buf).unwrap();
        assert_eq!(n, 100, "GSO segments arrive as separate datagrams");
        v4.send_to(b"back", from).unwrap();
        udp.sock.set_nonblocking(false).unwrap();
        udp.sock
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let (n, sender, seg) = udp.recv(&mut buf).unwrap();
        assert_eq!((n, seg), (4, 4));
        assert_eq!(sender, to, "the IPv4 sender is reported as IPv4");
    }

    #[test]
    fn a_batch_leaves_as_segments_and_arrives_whole_or_coalesced() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let to = rx.local_addr().unwrap();
        let rx = Udp::new(rx);
        let mut tx = Udp::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let mut batch = Batch::new();
        // five full datagrams and a short last one coalesce; a different size starts anew
        for i in 0..5u8 {
            batch.push(&mut tx, &[i; 1000], to);
        }
        batch.push(&mut tx, &[5; 300], to);
        batch.push(&mut tx, &[6; 1000], to);
        batch.flush(&mut tx);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65_536];
        while got.len() < 7 {
            let (n, _, seg) = rx.recv(&mut buf).unwrap();
            got.extend(buf[..n].chunks(seg).map(|d| (d.len(), d[0])));
        }
        assert_eq!(
            got,
            [
                (1000, 0),
                (1000, 1),
                (1000, 2),
                (1000, 3),
                (1000, 4),
                (300, 5),
                (1000, 6)
            ]
        );
    }
}
