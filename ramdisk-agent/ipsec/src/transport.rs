//! The IKE sockets: UDP 500 for IKE_SA_INIT, UDP 4500 behind the non-ESP marker for IKE_AUTH
//! and everything after (RFC 7296 2.23, RFC 3948 2.2). The 4500 socket later becomes the ESP
//! endpoint's socket, so IKE and ESP share it as the peer expects. Does IO, except
//! [`ike_message`].

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use agent_esp::udp_encap::{self, Datagram, NAT_T_PORT};

use crate::error::TunnelError;

/// The IKE port.
pub const IKE_PORT: u16 = 500;

/// The IKE message in a datagram received on port 500 (as it is) or 4500 (behind the
/// non-ESP marker; ESP and keepalives are not IKE). Pure.
pub fn ike_message(nat_t: bool, datagram: &[u8]) -> Result<&[u8], &'static str> {
    if !nat_t {
        return Ok(datagram);
    }
    match udp_encap::classify(datagram) {
        Ok(Datagram::Ike(m)) => Ok(m),
        Ok(Datagram::NatKeepalive) => Err("a NAT-keepalive"),
        Ok(Datagram::Esp { .. }) => Err("ESP before the child SA is installed"),
        Err(_) => Err("neither IKE, ESP nor a keepalive"),
    }
}

/// Socket buffer asked for on UDP 4500: it carries ESP at line rate to a single-threaded
/// endpoint, and the default (~208 KiB) overflows under a TCP burst (seen as RcvbufErrors).
pub const NAT_T_SOCKET_BUFFER: libc::c_int = 4 << 20;

/// Raises both buffers of `sock` to `size` (SO_*BUFFORCE as root, else up to the rmem/wmem
/// maximum); failure only costs throughput, so it is logged, not returned.
fn grow_buffers(sock: &UdpSocket, size: libc::c_int) {
    use std::os::fd::AsRawFd;
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        let set = |opt| {
            // SAFETY: setsockopt on a live socket with a live int of the right size.
            unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&raw const size).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            }
        };
        if set(force) != 0 && set(plain) != 0 {
            tracing::debug!(
                "cannot grow the UDP 4500 socket buffer: {}",
                io::Error::last_os_error()
            );
        }
    }
}

/// Both IKE sockets, bound to the agent's underlay address, and the port in use.
#[derive(Debug)]
pub struct IkeTransport {
    s500: UdpSocket,
    s4500: UdpSocket,
    peer: Ipv4Addr,
    port: u16,
    buf: Vec<u8>,
    out: Vec<u8>,
}

fn bind(addr: SocketAddrV4) -> Result<UdpSocket, TunnelError> {
    UdpSocket::bind(addr).map_err(|source| TunnelError::Bind {
        addr: addr.into(),
        source,
    })
}

impl IkeTransport {
    /// Binds `local`:500 and `local`:4500 in the calling thread's network namespace.
    pub fn bind(local: Ipv4Addr, peer: Ipv4Addr) -> Result<IkeTransport, TunnelError> {
        Ok(IkeTransport {
            s500: bind(SocketAddrV4::new(local, IKE_PORT))?,
            s4500: {
                let s = bind(SocketAddrV4::new(local, NAT_T_PORT))?;
                grow_buffers(&s, NAT_T_SOCKET_BUFFER);
                s
            },
            peer,
            port: IKE_PORT,
            buf: vec![0; 65_536],
            out: Vec::new(),
        })
    }

    /// The peer's address on the port in use.
    pub fn peer(&self) -> SocketAddr {
        SocketAddr::from((self.peer, self.port))
    }

    fn socket(&self) -> &UdpSocket {
        if self.port == NAT_T_PORT {
            &self.s4500
        } else {
            &self.s500
        }
    }

    /// Our address on the port in use.
    pub fn local(&self) -> SocketAddr {
        self.socket()
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from((Ipv4Addr::UNSPECIFIED, self.port)))
    }

    /// Moves to UDP 4500 (both sides) for what follows.
    pub fn float_to_nat_t(&mut self) {
        self.port = NAT_T_PORT;
    }

    /// Sends one IKE message (behind the marker on 4500).
    pub fn send(&mut self, message: &[u8]) -> Result<(), TunnelError> {
        let to = self.peer();
        let bytes = if self.port == NAT_T_PORT {
            udp_encap::ike_datagram(message, &mut self.out);
            &self.out[..]
        } else {
            message
        };
        self.socket()
            .send_to(bytes, to)
            .map(|_| ())
            .map_err(|source| TunnelError::Send { to, source })
    }

    /// Waits until `deadline` (by `now()`) for an IKE message from the peer on the port in
    /// use; `None` when the time is up. Anything else that arrives is dropped and logged.
    pub fn recv_until(
        &mut self,
        deadline: Instant,
        now: &dyn Fn() -> Instant,
    ) -> Result<Option<Vec<u8>>, TunnelError> {
        let peer = self.peer();
        let nat_t = self.port == NAT_T_PORT;
        loop {
            let wait = deadline.saturating_duration_since(now());
            if wait.is_zero() {
                return Ok(None);
            }
            let local = self.local();
            let sock = if nat_t { &self.s4500 } else { &self.s500 };
            let recv_err = |source| TunnelError::Recv { local, source };
            sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))))
                .map_err(recv_err)?;
            let (n, from) = match sock.recv_from(&mut self.buf) {
                Ok(r) => r,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionRefused
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(recv_err(e)),
            };
            if from != peer {
                tracing::debug!(%from, %peer, "IKE datagram from another address dropped");
                continue;
            }
            match ike_message(nat_t, &self.buf[..n]) {
                Ok(m) => return Ok(Some(m.to_vec())),
                Err(what) => tracing::debug!(%from, "dropped on the IKE port: {what}"),
            }
        }
    }

    /// The UDP 4500 socket, for the ESP endpoint (the 500 socket closes).
    pub fn into_nat_t_socket(self) -> UdpSocket {
        self.s4500
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_500_takes_datagrams_as_they_are() {
        assert_eq!(ike_message(false, b"\0\0\0\0abc"), Ok(&b"\0\0\0\0abc"[..]));
        assert_eq!(ike_message(false, b""), Ok(&b""[..]));
    }

    #[test]
    fn port_4500_takes_only_marked_ike() {
        assert_eq!(ike_message(true, b"\0\0\0\0IKE"), Ok(&b"IKE"[..]));
        assert!(ike_message(true, &[0xff]).is_err());
        assert!(ike_message(true, &[0, 0, 0, 0]).is_err());
        assert!(ike_message(true, &[]).is_err());
        assert!(ike_message(true, &[0, 0, 1, 0, 0, 0, 0, 1]).is_err());
        let esp = [
            0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            ike_message(true, &esp),
            Err("ESP before the child SA is installed")
        );
    }
}
