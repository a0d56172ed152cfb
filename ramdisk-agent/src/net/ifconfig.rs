//! Interface configuration through the classic socket ioctls: flags (up), index, IPv4 address,
//! netmask, and a default route.
//!
//! Does IO (ioctl on an AF_INET datagram socket). Chosen over rtnetlink to keep the static agent
//! small and free of a netlink codec; everything needed here has an ioctl since Linux 2.2.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result, bail};

/// `struct rtentry` of `<linux/route.h>` (libc only defines it for musl, and the agent's tests
/// build against glibc).
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut libc::c_void,
    rt_metric: libc::c_short,
    rt_dev: *mut libc::c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

fn control_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("opening an AF_INET control socket");
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq(name: &str) -> Result<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        bail!("{name:?} is not an interface name");
    }
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

fn ioctl(fd: &OwnedFd, request: libc::c_ulong, arg: *mut libc::c_void, what: &str) -> Result<()> {
    // SAFETY: callers pass a pointer to the structure `request` expects, alive across the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).context(what.to_string());
    }
    Ok(())
}

fn sockaddr(ip: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16 bytes of plain data; this is how the
    // ioctl interface expects an IPv4 address.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// Sets IFF_UP on `name` (a no-op when it is up already).
pub fn set_up(name: &str) -> Result<()> {
    let fd = control_socket()?;
    let mut req = ifreq(name)?;
    ioctl(
        &fd,
        libc::SIOCGIFFLAGS,
        (&raw mut req).cast(),
        &format!("reading the flags of {name}"),
    )?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    if flags & libc::IFF_UP as libc::c_short != 0 {
        return Ok(());
    }
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    ioctl(
        &fd,
        libc::SIOCSIFFLAGS,
        (&raw mut req).cast(),
        &format!("bringing {name} up"),
    )
}

/// The kernel's index of `name`.
pub fn index(name: &str) -> Result<i32> {
    let fd = control_socket()?;
    let mut req = ifreq(name)?;
    ioctl(
        &fd,
        libc::SIOCGIFINDEX,
        (&raw mut req).cast(),
        &format!("finding the index of {name}"),
    )?;
    // SAFETY: SIOCGIFINDEX filled the ifindex member of the union.
    Ok(unsafe { req.ifr_ifru.ifru_ifindex })
}

/// Sets the IPv4 address and netmask of `name` (the kernel adds the subnet route).
pub fn set_ipv4(name: &str, address: Ipv4Addr, netmask: Ipv4Addr) -> Result<()> {
    let fd = control_socket()?;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_addr = sockaddr(address);
    ioctl(
        &fd,
        libc::SIOCSIFADDR,
        (&raw mut req).cast(),
        &format!("setting {address} on {name}"),
    )?;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_netmask = sockaddr(netmask);
    ioctl(
        &fd,
        libc::SIOCSIFNETMASK,
        (&raw mut req).cast(),
        &format!("setting netmask {netmask} on {name}"),
    )
}

/// Adds `default via <gateway> dev <name>`; an existing identical route is fine.
pub fn add_default_route(name: &str, gateway: Ipv4Addr) -> Result<()> {
    let fd = control_socket()?;
    let mut dev: Vec<libc::c_char> = name.bytes().map(|b| b as libc::c_char).collect();
    dev.push(0);
    let mut rt = RtEntry {
        rt_pad1: 0,
        rt_dst: sockaddr(Ipv4Addr::UNSPECIFIED),
        rt_gateway: sockaddr(gateway),
        rt_genmask: sockaddr(Ipv4Addr::UNSPECIFIED),
        rt_flags: libc::RTF_UP | libc::RTF_GATEWAY,
        rt_pad2: 0,
        rt_pad3: 0,
        rt_pad4: std::ptr::null_mut(),
        rt_metric: 0,
        rt_dev: dev.as_mut_ptr(),
        rt_mtu: 0,
        rt_window: 0,
        rt_irtt: 0,
    };
    match ioctl(
        &fd,
        libc::SIOCADDRT,
        (&raw mut rt).cast(),
        &format!("adding default via {gateway} dev {name}"),
    ) {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.raw_os_error())
                == Some(libc::EEXIST) =>
        {
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtentry_matches_the_kernel_layout() {
        // x86_64 <linux/route.h>: 8 + 3*16 + 2 + 2 + 4 (pad) + 8 + 8 + 2 + 6 (pad) + 8 + 8 + 8 + 2 + 6.
        assert_eq!(std::mem::size_of::<RtEntry>(), 120);
        assert_eq!(std::mem::offset_of!(RtEntry, rt_flags), 56);
        assert_eq!(std::mem::offset_of!(RtEntry, rt_dev), 88);
    }

    #[test]
    fn interface_names_are_checked() {
        assert!(ifreq("eth0").is_ok());
        assert!(ifreq("").is_err());
        assert!(ifreq("a-very-long-ifname").is_err());
        assert!(ifreq("a\0b").is_err());
    }

    #[test]
    fn sockaddr_holds_the_address_in_network_order() {
        let sa = sockaddr(Ipv4Addr::new(10, 77, 0, 50));
        assert_eq!(i32::from(sa.sa_family), libc::AF_INET);
        assert_eq!(
            &sa.sa_data[2..6],
            &[10, 77, 0, 50].map(|b: u8| b as libc::c_char)
        );
    }
}
