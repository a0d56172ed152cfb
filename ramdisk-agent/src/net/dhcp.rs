//! The DHCP client's IO shell: an AF_PACKET socket on the boot NIC that moves the frames of
//! [`agent_core::dhcp_client`], then the interface configuration from the lease.
//!
//! Does IO (raw socket, poll, ioctls, /etc/resolv.conf). The socket is `SOCK_RAW` bound to the
//! interface with protocol ETH_P_IP, so it sends and receives whole Ethernet frames before the
//! interface has an address; our own outgoing frames, which the packet socket also sees, are
//! skipped by their packet type. PACKET_AUXDATA tells which received frames carry a UDP checksum
//! that was never computed (checksum offload on veth/virtio peers: dnsmasq's OFFER over a veth
//! arrives like that), so the parser skips only those.

use std::fmt::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use agent_core::dhcp_client::{DhcpClient, Handled, Ignored, Lease};
use agent_core::frame::{FrameError, UdpChecksum};
use anyhow::{Context, Result, bail};

use super::ifconfig;
use super::link::Iface;
use crate::sys;

/// From <linux/if_packet.h>: a frame this host sent (`sll_pkttype`).
const PACKET_OUTGOING: u8 = 4;
/// From <linux/if_packet.h>: the socket option and control message with `tpacket_auxdata`.
const PACKET_AUXDATA: libc::c_int = 8;
/// From <linux/if_packet.h>: `tp_status` bit "checksum not computed yet".
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;

/// `struct tpacket_auxdata` of <linux/if_packet.h>.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct AuxData {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

/// A received frame: its length in the buffer and how to treat its UDP checksum.
struct Received {
    len: usize,
    csum: UdpChecksum,
}
const ETH_P_IP_BE: u16 = (libc::ETH_P_IP as u16).to_be();

struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
}

impl PacketSocket {
    fn open(iface: &Iface) -> Result<Self> {
        // SAFETY: plain socket(2) call.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_IP_BE),
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("opening an AF_PACKET socket");
        }
        // SAFETY: a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let sll = Self::address(iface.index);
        // SAFETY: `sll` is a valid sockaddr_ll and the length says so.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("binding the packet socket to {}", iface.name));
        }
        let one: libc::c_int = 1;
        // SAFETY: the option value is a valid c_int of the given size.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_AUXDATA,
                (&raw const one).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error()).context("enabling PACKET_AUXDATA");
        }
        Ok(Self {
            fd,
            ifindex: iface.index,
        })
    }

    fn address(ifindex: i32) -> libc::sockaddr_ll {
        // SAFETY: sockaddr_ll is plain data; zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_IP_BE;
        sll.sll_ifindex = ifindex;
        sll.sll_halen = 6;
        sll.sll_addr = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0];
        sll
    }

    fn send(&self, frame: &[u8]) -> Result<()> {
        let to = Self::address(self.ifindex);
        // SAFETY: the buffer and address are valid for the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const to).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context("sending a DHCP frame");
        }
        Ok(())
    }

    /// Waits up to `timeout` for a frame; `Ok(None)` on timeout or when the frame is our own.
    fn recv(&self, buf: &mut [u8], timeout: Duration) -> Result<Option<Received>> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(None);
            }
            return Err(e).context("polling the packet socket");
        }
        if rc == 0 {
            return Ok(None);
        }
        // SAFETY (all below): zeroed sockaddr_ll/msghdr are valid; the iovec, name and control
        // buffers outlive the recvmsg call and their lengths are stated.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut control = [0u64; 16]; // 128 bytes, aligned for cmsghdr
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&raw mut from).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_TRUNC) };
        if n < 0 {
            return Err(std::io::Error::last_os_error())
                .context("receiving from the packet socket");
        }
        let len = usize::try_from(n).unwrap_or(0);
        if from.sll_pkttype == PACKET_OUTGOING || len > buf.len() {
            return Ok(None); // our own frame, or one larger than any DHCP reply we accept
        }
        let mut csum = UdpChecksum::Verify;
        // SAFETY: walking the control buffer the kernel filled, with the libc CMSG helpers.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_PACKET && (*cmsg).cmsg_type == PACKET_AUXDATA {
                    let aux: AuxData = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    if aux.tp_status & TP_STATUS_CSUMNOTREADY != 0 {
                        csum = UdpChecksum::NotReady;
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        Ok(Some(Received { len, csum }))
    }
}

/// Whether an ignored frame looked like DHCP for us (worth counting), rather than other traffic.
fn dhcp_related(why: &Ignored) -> bool {
    !matches!(
        why,
        Ignored::NotDhcp { .. }
            | Ignored::NotForUs(_)
            | Ignored::Frame(FrameError::NotUdp(_) | FrameError::NotIpv4(_))
    )
}

/// Runs the DHCP client on `iface` until it binds or `budget` runs out.
pub fn acquire(iface: &Iface, budget: Duration) -> Result<Lease> {
    let sock = PacketSocket::open(iface)?;
    let start = sys::now();
    let until = start + budget;
    let mut client = DhcpClient::new(iface.mac, start);
    let mut buf = vec![0u8; 2048];
    let (mut sent, mut ignored) = (0u32, 0u32);
    let mut last_ignored = String::new();
    loop {
        let now = sys::now();
        if now >= until {
            let mut msg = format!(
                "no DHCP lease on {} after {} s ({sent} messages sent",
                iface.name,
                budget.as_secs()
            );
            if ignored > 0 {
                let _ = write!(
                    msg,
                    ", {ignored} replies ignored, the last because: {last_ignored}"
                );
            }
            msg.push(')');
            bail!(msg);
        }
        if let Some(frame) = client.poll(now, sys::random_u64())? {
            sock.send(&frame)?;
            sent += 1;
        }
        let wake = client.next_wakeup().unwrap_or(until).min(until);
        let Some(rx) = sock.recv(&mut buf, wake.saturating_sub(sys::now()))? else {
            continue;
        };
        let Some(frame) = buf.get(..rx.len) else {
            continue;
        };
        match client.handle_received(frame, rx.csum, sys::now(), sys::random_u64())? {
            Handled::Send(req) => {
                sock.send(&req)?;
                sent += 1;
            }
            Handled::Bound(lease) => return Ok(lease),
            Handled::Restarted => tracing::info!("DHCP server sent NAK; starting over"),
            Handled::Ignored(why) => {
                // Most frames on a busy segment are other traffic: only DHCP-looking ones count.
                tracing::trace!("frame ignored: {why}");
                if dhcp_related(&why) {
                    tracing::debug!("DHCP reply ignored: {why}");
                    ignored += 1;
                    last_ignored = why.to_string();
                }
            }
        }
    }
}

/// Puts the lease on the interface: address, netmask, default route.
pub fn configure(iface: &Iface, lease: &Lease) -> Result<()> {
    ifconfig::set_ipv4(&iface.name, lease.address, lease.netmask)?;
    if let Some(router) = lease.router {
        // A router outside the subnet cannot be reached: log it, the LM may still be on-link.
        if let Err(e) = ifconfig::add_default_route(&iface.name, router) {
            tracing::warn!("no default route: {e:#}");
        }
    }
    Ok(())
}

/// Writes /etc/resolv.conf from the lease's name servers (PID 1 only: the initramfs owns /etc).
pub fn write_resolv_conf(lease: &Lease) -> Result<()> {
    if lease.dns.is_empty() {
        return Ok(());
    }
    let text: String = lease
        .dns
        .iter()
        .map(|d| format!("nameserver {d}\n"))
        .collect();
    std::fs::create_dir_all("/etc").context("creating /etc")?;
    std::fs::write("/etc/resolv.conf", text).context("writing /etc/resolv.conf")
}

/// One-line summary of a lease for the phase marker.
pub fn describe(iface: &Iface, lease: &Lease) -> String {
    let router = lease
        .router
        .map_or_else(|| "none".to_string(), |r| r.to_string());
    format!(
        "iface={} address={}/{} router={router} server={} lease_secs={}",
        iface.name,
        lease.address,
        lease.prefix_len(),
        lease.server_id,
        lease.lease_secs
    )
}
