//! Safe wrappers over the few Linux syscalls the lab needs: network namespaces, interface
//! lookups, AF_PACKET and raw ICMPv6 sockets, an eventfd to stop blocking loops, and the
//! process calls (wait without reaping, signals, parent-death signal).
//!
//! Does IO (syscalls) and holds every `unsafe` block of the crate; no policy lives here.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use lm_api::MacAddr;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

/// Moves the calling thread into the network namespace opened as `ns_file` (`/run/netns/NAME`).
pub(crate) fn enter_netns(ns_file: &File) -> io::Result<()> {
    // SAFETY: plain syscall on a valid fd; affects only the calling thread's namespace set.
    cvt(unsafe { libc::setns(ns_file.as_raw_fd(), libc::CLONE_NEWNET) }).map(drop)
}

fn ifname_c(name: &str) -> io::Result<CString> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {name:?} must have 1 to 15 bytes"),
        ));
    }
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
}

/// The index of interface `name` in the calling thread's namespace.
pub(crate) fn ifindex(name: &str) -> io::Result<u32> {
    let c = ifname_c(name)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("interface {name}: {e}")));
    }
    Ok(idx)
}

/// The Ethernet address of interface `name` (SIOCGIFHWADDR).
pub(crate) fn hwaddr(name: &str) -> io::Result<MacAddr> {
    let c = ifname_c(name)?;
    // SAFETY: socket() has no memory preconditions; the fd is owned right away.
    let sock = unsafe {
        OwnedFd::from_raw_fd(cvt(libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
        ))?)
    };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(c.as_bytes_with_nul()) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads ifr_name and fills ifr_hwaddr inside `req`.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) })?;
    // SAFETY: the kernel filled the hwaddr member of the union.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(data.iter()) {
        *dst = *src as u8;
    }
    Ok(MacAddr(mac))
}

/// The first link-local IPv6 address (fe80::/10) on interface `name`, if any.
pub(crate) fn link_local_of(name: &str) -> io::Result<Option<Ipv6Addr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
    cvt(unsafe { libc::getifaddrs(&mut head) })?;
    let mut found = None;
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list returned by getifaddrs, valid until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: non-null, NUL-terminated name from the kernel.
        let ifa_name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        // SAFETY: ifa_addr is non-null and points at a sockaddr.
        let family = unsafe { (*ifa.ifa_addr).sa_family };
        if ifa_name.to_bytes() != name.as_bytes() || i32::from(family) != libc::AF_INET6 {
            continue;
        }
        // SAFETY: family AF_INET6 means the storage is a sockaddr_in6.
        let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
        let addr = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
        if addr.segments()[0] & 0xffc0 == 0xfe80 {
            found = Some(addr);
            break;
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(found)
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points at a live T of the size passed.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// SO_BINDTODEVICE: the socket only sends and receives through interface `name`.
pub(crate) fn bind_to_device(fd: RawFd, name: &str) -> io::Result<()> {
    let c = ifname_c(name)?;
    let bytes = c.as_bytes_with_nul();
    // SAFETY: `bytes` is live for the call and its length is passed.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            bytes.as_ptr().cast(),
            bytes.len() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn sockaddr_ll(ifindex: u32, protocol: u16, dst: Option<MacAddr>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
    let mut sa: libc::sockaddr_ll = unsafe { zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = protocol.to_be();
    sa.sll_ifindex = ifindex as i32;
    if let Some(mac) = dst {
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&mac.0);
    }
    sa
}

/// An AF_PACKET SOCK_RAW socket that sees every frame (ETH_P_ALL) on interface `ifindex`, both
/// directions. Created with protocol 0 and bound afterwards, so nothing from other interfaces is
/// queued in between. `promisc` also asks for frames addressed to other stations.
pub(crate) fn packet_listen_socket(ifindex: u32, promisc: bool) -> io::Result<OwnedFd> {
    // SAFETY: socket() has no memory preconditions; the fd is owned right away.
    let fd = unsafe {
        OwnedFd::from_raw_fd(cvt(libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            0,
        ))?)
    };
    let sa = sockaddr_ll(ifindex, libc::ETH_P_ALL as u16, None);
    // SAFETY: `sa` is a valid sockaddr_ll of the size passed.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })?;
    if promisc {
        // SAFETY: packet_mreq is plain old data; all-zero is valid.
        let mut mreq: libc::packet_mreq = unsafe { zeroed() };
        mreq.mr_ifindex = ifindex as i32;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mreq,
        )?;
    }
    Ok(fd)
}

/// Sends one complete Ethernet frame (header included) out of interface `ifindex`.
pub(crate) fn packet_send(ifindex: u32, frame: &[u8]) -> io::Result<()> {
    if frame.len() < 14 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame < 14 bytes",
        ));
    }
    // SAFETY: socket() has no memory preconditions; the fd is owned right away.
    let fd = unsafe {
        OwnedFd::from_raw_fd(cvt(libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            0,
        ))?)
    };
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let dst = MacAddr::from_slice(frame).unwrap_or_default();
    let sa = sockaddr_ll(ifindex, ethertype, Some(dst));
    // SAFETY: `frame` and `sa` are live for the call; sizes passed match.
    let n = cvt_size(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&sa as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })?;
    if n != frame.len() {
        return Err(io::Error::other(format!(
            "short send: {n} of {}",
            frame.len()
        )));
    }
    Ok(())
}

/// Reads one datagram/frame into `buf`.
pub(crate) fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    cvt_size(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) })
}

/// An eventfd used to wake a thread blocked in [`wait_readable`].
#[derive(Debug)]
pub(crate) struct StopSignal(OwnedFd);

impl StopSignal {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: eventfd() has no memory preconditions; the fd is owned right away.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) })?;
        // SAFETY: `fd` is a fresh descriptor owned by nobody else.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Wakes every waiter, now and later (the counter stays non-zero).
    pub(crate) fn raise(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd.
        let _ = unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

/// What [`wait_readable`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    Readable,
    Stopped,
    TimedOut,
}

/// Blocks until `fd` is readable, `stop` is raised or `timeout` passes (None: no timeout).
pub(crate) fn wait_readable(
    fd: RawFd,
    stop: &StopSignal,
    timeout: Option<Duration>,
) -> io::Result<Ready> {
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as libc::c_int);
    let mut fds = [
        libc::pollfd {
            fd: stop.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `fds` is a live array of 2 pollfd.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            return Ok(Ready::TimedOut);
        }
        if fds[0].revents != 0 {
            return Ok(Ready::Stopped);
        }
        if fds[1].revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            return Err(io::Error::other("socket error while polling"));
        }
        return Ok(Ready::Readable);
    }
}

mod icmpv6;
pub(crate) use icmpv6::{icmpv6_socket, recv_icmpv6, send_icmpv6};

mod child;
pub(crate) use child::{kill_group, prepare_child, reap, wait_exit_nowait};
