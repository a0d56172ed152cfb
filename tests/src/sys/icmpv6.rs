//! Raw ICMPv6 sockets for neighbour discovery: open one bound to an interface with hop limit
//! 255, join a multicast group, receive with the packet's hop limit, send to a scoped address.
//!
//! Does IO (syscalls).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{bind_to_device, cvt, cvt_size, setsockopt};

/// Opens a raw ICMPv6 socket bound to interface `iface` (index `ifindex`): multicast goes out
/// of that interface, unicast and multicast hop limits are 255 (RFC 4861 requires it), own
/// multicast is not looped back, the hop limit of received packets is reported, and each group
/// in `groups` is joined on the interface.
pub(crate) fn icmpv6_socket(iface: &str, ifindex: u32, groups: &[Ipv6Addr]) -> io::Result<OwnedFd> {
    // SAFETY: socket() has no memory preconditions; the fd is owned right away.
    let fd = unsafe {
        OwnedFd::from_raw_fd(cvt(libc::socket(
            libc::AF_INET6,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMPV6,
        ))?)
    };
    let raw = fd.as_raw_fd();
    bind_to_device(raw, iface)?;
    let hops: libc::c_int = 255;
    setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &hops)?;
    setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &hops)?;
    let index = ifindex as libc::c_int;
    setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, &index)?;
    let off: libc::c_int = 0;
    setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, &off)?;
    let on: libc::c_int = 1;
    setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, &on)?;
    for group in groups {
        let mreq = libc::ipv6_mreq {
            ipv6mr_multiaddr: libc::in6_addr {
                s6_addr: group.octets(),
            },
            ipv6mr_interface: ifindex,
        };
        setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP, &mreq)?;
    }
    Ok(fd)
}

/// One received ICMPv6 message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received6 {
    pub(crate) len: usize,
    pub(crate) src: Ipv6Addr,
    pub(crate) hop_limit: Option<u8>,
}

/// Receives one ICMPv6 message (without the IPv6 header) into `buf`, without blocking.
pub(crate) fn recv_icmpv6(fd: RawFd, buf: &mut [u8]) -> io::Result<Received6> {
    // SAFETY: plain old data; all-zero is valid.
    let mut src: libc::sockaddr_in6 = unsafe { zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16]; // 128 bytes, aligned for cmsghdr
    // SAFETY: plain old data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&mut src as *mut libc::sockaddr_in6).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 16]>();
    // SAFETY: every pointer in `msg` refers to live buffers of the lengths given.
    let len = cvt_size(unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) })?;
    let mut hop_limit = None;
    // SAFETY: the CMSG_* helpers walk the control buffer the kernel filled, bounded by
    // msg_controllen; data is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::IPPROTO_IPV6 && (*cmsg).cmsg_type == libc::IPV6_HOPLIMIT
            {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                hop_limit = u8::try_from(v).ok();
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Received6 {
        len: len.min(buf.len()),
        src: Ipv6Addr::from(src.sin6_addr.s6_addr),
        hop_limit,
    })
}

/// Sends one ICMPv6 message to `dst` on interface `scope_id`; the kernel fills the checksum.
pub(crate) fn send_icmpv6(fd: RawFd, msg: &[u8], dst: Ipv6Addr, scope_id: u32) -> io::Result<()> {
    // SAFETY: plain old data; all-zero is valid.
    let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_addr = libc::in6_addr {
        s6_addr: dst.octets(),
    };
    sa.sin6_scope_id = scope_id;
    // SAFETY: `msg` and `sa` are live for the call; sizes passed match.
    let n = cvt_size(unsafe {
        libc::sendto(
            fd,
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&sa as *const libc::sockaddr_in6).cast(),
            size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    })?;
    if n != msg.len() {
        return Err(io::Error::other(format!(
            "short send: {n} of {}",
            msg.len()
        )));
    }
    Ok(())
}
