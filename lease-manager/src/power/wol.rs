//! The Wake-on-LAN driver: a UDP broadcast to 255.255.255.255:9 bound to the provisioning
//! interface (SO_BINDTODEVICE; a limited broadcast has no route otherwise) and a raw Ethernet
//! frame with EtherType 0x0842 on the same interface (AF_PACKET). IO: sockets.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use lm_api::{MacAddr, WakeMethod};

use super::wol_packet::{ETHERTYPE_WOL, ethernet_frame, magic_payload};
use super::{PowerDriver, PowerError, PowerTarget};

/// Wake-on-LAN on one interface.
#[derive(Debug, Clone)]
pub struct WakeOnLan {
    interface: String,
    methods: Vec<WakeMethod>,
}

impl WakeOnLan {
    /// A driver sending by `methods` on `interface`.
    pub fn new(interface: impl Into<String>, methods: Vec<WakeMethod>) -> Self {
        Self {
            interface: interface.into(),
            methods,
        }
    }

    fn send_udp(&self, payload: &[u8]) -> io::Result<()> {
        let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
        sock.set_broadcast(true)?;
        bind_to_device(&sock, &self.interface)?;
        sock.send_to(payload, SocketAddrV4::new(Ipv4Addr::BROADCAST, 9))?;
        Ok(())
    }

    fn send_raw(&self, target: &PowerTarget) -> io::Result<()> {
        let ifindex = if_index(&self.interface)?;
        let source = if_mac(&self.interface)?;
        let frame = ethernet_frame(source, target.mac, target.wol_password);
        // SAFETY: plain socket(2) call; the result is checked and owned immediately.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                (ETHERTYPE_WOL as libc::c_int).to_be(),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETHERTYPE_WOL.to_be();
        addr.sll_ifindex = ifindex;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        // SAFETY: frame and addr outlive the call; lengths are their real sizes.
        let n = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl PowerDriver for WakeOnLan {
    fn power_on(&self, target: &PowerTarget) -> Result<Vec<WakeMethod>, PowerError> {
        let payload = magic_payload(target.mac, target.wol_password);
        let mut sent = Vec::new();
        let mut last_err = None;
        for m in &self.methods {
            let r = match m {
                WakeMethod::UdpBroadcast => self.send_udp(&payload),
                WakeMethod::Ethertype0842 => self.send_raw(target),
            };
            match r {
                Ok(()) => sent.push(*m),
                Err(source) => {
                    tracing::warn!(mac = %target.mac, method = ?m, error = %source, "wake-on-lan send failed");
                    last_err = Some((*m, source));
                }
            }
        }
        match (sent.is_empty(), last_err) {
            (true, Some((method, source))) => Err(PowerError::Send {
                mac: target.mac,
                interface: self.interface.clone(),
                method,
                source,
            }),
            _ => Ok(sent),
        }
    }
}

fn bind_to_device(sock: &UdpSocket, ifname: &str) -> io::Result<()> {
    let name = ifname.as_bytes();
    // SAFETY: name points to ifname's bytes for the given length during the call.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if r != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn if_index(ifname: &str) -> io::Result<i32> {
    let c = std::ffi::CString::new(ifname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    // SAFETY: c is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx as i32)
    }
}

fn if_mac(ifname: &str) -> io::Result<MacAddr> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{ifname}/address"))?;
    text.trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Opens the interface check early, so a wrong config fails at start, not at the first wake.
pub fn check_interface(ifname: &str) -> Result<(), PowerError> {
    if_index(ifname)
        .and_then(|_| if_mac(ifname).map(|_| ()))
        .map_err(|source| PowerError::Interface {
            interface: ifname.into(),
            source,
        })
}
