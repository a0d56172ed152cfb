//! Interface configuration through the classic socket ioctls: flags (up), index, IPv4 address
//! and netmask, MTU, and IPv4 routes. Used for the TUN device here and by the ramdisk agent for
//! its NIC (the agent has no `ip` binary).
//!
//! Does IO (ioctl on an AF_INET datagram socket). Chosen over rtnetlink to keep the static agent
//! small and free of a netlink codec; everything needed here has an ioctl since Linux 2.2.
//! An [`Ifconfig`] acts in the network namespace its socket was opened in, whichever thread
//! uses it later; the free functions open a socket in the caller's namespace per call.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::allowed_ips::Ipv4Net;

/// A failed interface operation: which, on which interface, and the kernel's answer.
#[derive(Debug, thiserror::Error)]
pub enum IfconfigError {
    #[error(
        "{0:?} is not an interface name (1 to {max} bytes, no NUL)",
        max = libc::IFNAMSIZ - 1
    )]
    Name(String),
    // The OS error is part of the message (not a `source`), so that `{e}` alone says it all.
    #[error("opening an AF_INET control socket for interface ioctls: {0}")]
    Socket(std::io::Error),
    #[error("{what}: {os}")]
    Ioctl { what: String, os: std::io::Error },
}

impl IfconfigError {
    /// The errno of a failed ioctl (for callers that accept, say, EEXIST).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            IfconfigError::Ioctl { os, .. } | IfconfigError::Socket(os) => os.raw_os_error(),
            IfconfigError::Name(_) => None,
        }
    }
}

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

/// An AF_INET control socket for interface ioctls, bound to the namespace it was opened in.
#[derive(Debug)]
pub struct Ifconfig {
    sock: OwnedFd,
}

pub(crate) fn ifreq(name: &str) -> Result<libc::ifreq, IfconfigError> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(IfconfigError::Name(name.to_owned()));
    }
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
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

/// The netmask of a prefix length (0..=32; longer lengths saturate at /32).
pub fn netmask(prefix_len: u8) -> Ipv4Addr {
    match prefix_len {
        0 => Ipv4Addr::UNSPECIFIED,
        l => Ipv4Addr::from(u32::MAX << (32 - u32::from(l.min(32)))),
    }
}

impl Ifconfig {
    /// Opens the control socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, IfconfigError> {
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(IfconfigError::Socket(std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor owned by nobody else.
        Ok(Self {
            sock: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn ioctl(
        &self,
        request: libc::c_ulong,
        arg: *mut libc::c_void,
        what: impl FnOnce() -> String,
    ) -> Result<(), IfconfigError> {
        // SAFETY: callers pass a pointer to the structure `request` expects, alive across the call.
        let rc = unsafe { libc::ioctl(self.sock.as_raw_fd(), request as _, arg) };
        if rc < 0 {
            return Err(IfconfigError::Ioctl {
                what: what(),
                os: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Sets IFF_UP on `name` (a no-op when it is up already).
    pub fn set_up(&self, name: &str) -> Result<(), IfconfigError> {
        let mut req = ifreq(name)?;
        self.ioctl(libc::SIOCGIFFLAGS, (&raw mut req).cast(), || {
            format!("reading the flags of {name}")
        })?;
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        if flags & libc::IFF_UP as libc::c_short != 0 {
            return Ok(());
        }
        req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        self.ioctl(libc::SIOCSIFFLAGS, (&raw mut req).cast(), || {
            format!("bringing {name} up")
        })
    }

    /// The kernel's index of `name`.
    pub fn index(&self, name: &str) -> Result<i32, IfconfigError> {
        let mut req = ifreq(name)?;
        self.ioctl(libc::SIOCGIFINDEX, (&raw mut req).cast(), || {
            format!("finding the index of {name}")
        })?;
        // SAFETY: SIOCGIFINDEX filled the ifindex member of the union.
        Ok(unsafe { req.ifr_ifru.ifru_ifindex })
    }

    /// Sets the IPv4 address and netmask of `name` (the kernel adds the subnet route).
    pub fn set_ipv4(
        &self,
        name: &str,
        address: Ipv4Addr,
        netmask: Ipv4Addr,
    ) -> Result<(), IfconfigError> {
        let mut req = ifreq(name)?;
        req.ifr_ifru.ifru_addr = sockaddr(address);
        self.ioctl(libc::SIOCSIFADDR, (&raw mut req).cast(), || {
            format!("setting {address} on {name}")
        })?;
        let mut req = ifreq(name)?;
        req.ifr_ifru.ifru_netmask = sockaddr(netmask);
        self.ioctl(libc::SIOCSIFNETMASK, (&raw mut req).cast(), || {
            format!("setting netmask {netmask} on {name}")
        })
    }

    /// Sets the MTU of `name`.
    pub fn set_mtu(&self, name: &str, mtu: u16) -> Result<(), IfconfigError> {
        let mut req = ifreq(name)?;
        req.ifr_ifru.ifru_mtu = libc::c_int::from(mtu);
        self.ioctl(libc::SIOCSIFMTU, (&raw mut req).cast(), || {
            format!("setting MTU {mtu} on {name}")
        })
    }

    /// Adds a route to `dest` out of `name`, via `gateway` when given; an identical existing
    /// route is fine.
    pub fn add_route(
        &self,
        name: &str,
        dest: Ipv4Net,
        gateway: Option<Ipv4Addr>,
    ) -> Result<(), IfconfigError> {
        ifreq(name)?;
        let mut dev: Vec<libc::c_char> = name.bytes().map(|b| b as libc::c_char).collect();
        dev.push(0);
        let mut flags = libc::RTF_UP;
        if gateway.is_some() {
            flags |= libc::RTF_GATEWAY;
        }
        if dest.prefix_len() == 32 {
            flags |= libc::RTF_HOST;
        }
        let mut rt = RtEntry {
            rt_pad1: 0,
            rt_dst: sockaddr(dest.addr()),
            rt_gateway: sockaddr(gateway.unwrap_or(Ipv4Addr::UNSPECIFIED)),
            rt_genmask: sockaddr(netmask(dest.prefix_len())),
            rt_flags: flags,
            rt_pad2: 0,
            rt_pad3: 0,
            rt_pad4: std::ptr::null_mut(),
            rt_metric: 0,
            rt_dev: dev.as_mut_ptr(),
            rt_mtu: 0,
            rt_window: 0,
            rt_irtt: 0,
        };
        let via = gateway.map(|g| format!(" via {g}")).unwrap_or_default();
        match self.ioctl(libc::SIOCADDRT, (&raw mut rt).cast(), || {
            format!("adding the route {dest}{via} dev {name}")
        }) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other,
        }
    }
}

/// Sets IFF_UP on `name` (a no-op when it is up already).
pub fn set_up(name: &str) -> Result<(), IfconfigError> {
    Ifconfig::open()?.set_up(name)
}

/// The kernel's index of `name`.
pub fn index(name: &str) -> Result<i32, IfconfigError> {
    Ifconfig::open()?.index(name)
}

/// Sets the IPv4 address and netmask of `name` (the kernel adds the subnet route).
pub fn set_ipv4(name: &str, address: Ipv4Addr, netmask: Ipv4Addr) -> Result<(), IfconfigError> {
    Ifconfig::open()?.set_ipv4(name, address, netmask)
}

/// Adds `default via <gateway> dev <name>`; an existing identical route is fine.
pub fn add_default_route(name: &str, gateway: Ipv4Addr) -> Result<(), IfconfigError> {
    Ifconfig::open()?.add_route(name, Ipv4Net::DEFAULT, Some(gateway))
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
        let e = Ifconfig::open()
            .unwrap()
            .set_mtu("x-too-long-name-0", 1400)
            .unwrap_err();
        assert!(e.to_string().contains("not an interface name"), "{e}");
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

    #[test]
    fn netmasks_of_prefix_lengths() {
        assert_eq!(netmask(0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(32), Ipv4Addr::BROADCAST);
        assert_eq!(netmask(40), Ipv4Addr::BROADCAST);
    }

    #[test]
    fn a_missing_interface_is_named_in_the_error() {
        let e = index("wgt-missing0").unwrap_err();
        assert!(e.to_string().contains("wgt-missing0"), "{e}");
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
    }
}
