//! A layer-3 TUN device (`IFF_TUN | IFF_NO_PI`), non-blocking, with its address, MTU, state and
//! routes set by ioctl. Opened with `IFF_VNET_HDR` and `TUN_F_CSUM | TUN_F_TSO4` where the
//! kernel allows (each read or write then starts with a `virtio_net_hdr`, and TCP comes in
//! super-packets: see [`crate::offload`]); otherwise each read or write is one bare IP packet.
//!
//! Does IO: opens /dev/net/tun. The device and its configuration live in the network namespace
//! of the thread that called [`Tun::create`] (the control socket is opened there too), so the
//! other methods may be called from any thread afterwards.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::allowed_ips::{Ipv4Net, PrefixError};
use crate::ifconfig::{self, Ifconfig, IfconfigError};

/// What went wrong with the TUN device.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    #[error("cannot open /dev/net/tun (is the tun module loaded, and are we root?)")]
    Open(#[source] io::Error),
    #[error("cannot create TUN device {name:?} (TUNSETIFF)")]
    Create {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot configure TUN device {name}")]
    Configure {
        name: String,
        #[source]
        source: IfconfigError,
    },
    #[error(transparent)]
    Prefix(#[from] PrefixError),
}

/// A TUN device; closing it (drop) deletes the interface.
#[derive(Debug)]
pub struct Tun {
    fd: OwnedFd,
    name: String,
    ctl: Ifconfig,
    /// Reads and writes carry a `virtio_net_hdr`.
    vnet: bool,
}

impl Tun {
    /// Creates (or attaches to a persistent) TUN device called `name` in the calling thread's
    /// network namespace. The fd is non-blocking and close-on-exec.
    pub fn create(name: &str) -> Result<Self, TunError> {
        match Self::open(name, true) {
            Ok(t) => Ok(t),
            Err(TunError::Create { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(tun = name, "no IFF_VNET_HDR: one packet per read and write");
                Self::open(name, false)
            }
            Err(e) => Err(e),
        }
    }

    /// Like [`Tun::create`] but without `IFF_VNET_HDR`: one bare packet per read and write,
    /// the kernel segments and checksums everything itself (slower for bulk TCP).
    pub fn create_plain(name: &str) -> Result<Self, TunError> {
        Self::open(name, false)
    }

    fn open(name: &str, vnet: bool) -> Result<Self, TunError> {
        let mut req = ifconfig::ifreq(name).map_err(|source| TunError::Configure {
            name: name.to_owned(),
            source,
        })?;
        // SAFETY: a plain open(2) of a NUL-terminated constant path.
        let fd = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(TunError::Open(io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut flags = libc::IFF_TUN | libc::IFF_NO_PI;
        if vnet {
            flags |= libc::IFF_VNET_HDR;
        }
        req.ifr_ifru.ifru_flags = flags as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes the ifreq, which lives across the call.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &raw mut req) };
        if rc < 0 {
            return Err(TunError::Create {
                name: name.to_owned(),
                source: io::Error::last_os_error(),
            });
        }
        if vnet {
            let offloads = libc::TUN_F_CSUM | libc::TUN_F_TSO4;
            // SAFETY: TUNSETOFFLOAD takes the flags by value.
            let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETOFFLOAD, offloads) };
            if rc < 0 {
                // still correct: the kernel then sends only finished, MTU-sized packets
                tracing::debug!(tun = name, "TUNSETOFFLOAD: {}", io::Error::last_os_error());
            }
        }
        let actual: Vec<u8> = req
            .ifr_name
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        let name = String::from_utf8_lossy(&actual).into_owned();
        let ctl = Ifconfig::open().map_err(|source| TunError::Configure {
            name: name.clone(),
            source,
        })?;
        tracing::debug!(tun = %name, "TUN device created");
        Ok(Self {
            fd,
            name,
            ctl,
            vnet,
        })
    }

    /// The interface name the kernel gave the device.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn configure(&self, r: Result<(), IfconfigError>) -> Result<(), TunError> {
        r.map_err(|source| TunError::Configure {
            name: self.name.clone(),
            source,
        })
    }

    /// Sets the device's IPv4 address and prefix (the kernel adds the subnet route once up).
    pub fn set_ipv4(&self, address: Ipv4Addr, prefix_len: u8) -> Result<(), TunError> {
        Ipv4Net::new(address, prefix_len)?;
        self.configure(
            self.ctl
                .set_ipv4(&self.name, address, ifconfig::netmask(prefix_len)),
        )
    }

    /// Sets the MTU (WireGuard's usual 1420 fits a 1500-byte underlay with IPv6 outside).
    pub fn set_mtu(&self, mtu: u16) -> Result<(), TunError> {
        self.configure(self.ctl.set_mtu(&self.name, mtu))
    }

    /// Brings the device up.
    pub fn up(&self) -> Result<(), TunError> {
        self.configure(self.ctl.set_up(&self.name))
    }

    /// Routes `dest/prefix_len` into the device (the device must be up).
    pub fn add_route(&self, dest: Ipv4Addr, prefix_len: u8) -> Result<(), TunError> {
        let net = Ipv4Net::new(dest, prefix_len)?;
        self.configure(self.ctl.add_route(&self.name, net, None))
    }

    /// Whether reads and writes carry a `virtio_net_hdr`.
    pub(crate) fn vnet(&self) -> bool {
        self.vnet
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads one packet; `WouldBlock` when none is waiting.
    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for writes of its length for the duration of the call.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    /// Writes one packet.
    pub(crate) fn write(&self, packet: &[u8]) -> io::Result<usize> {
        // SAFETY: `packet` is valid for reads of its length for the duration of the call.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }
}
