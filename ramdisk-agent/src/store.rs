//! The tenant's image store, seen from the agent: plain HTTP `GET` inside the tunnel (the
//! socket bound to the TUN device), the head parsed strictly, the body streamed.
//!
//! Does IO (TCP). The store is plain HTTP because WireGuard already authenticates and encrypts
//! every packet, and everything the agent takes from it is authenticated again chunk by chunk
//! under the signed manifest.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

use agent_core::http::{self, Head, HttpError, MAX_HEAD};
use agent_core::tunnel_plan::TunnelService;

use crate::hello::version;
use crate::https::{self, ExchangeError, Timeouts};

/// An answer whose body is still on the wire: [`Read`] yields exactly `Content-Length` bytes
/// and then 0; a connection that ends earlier is an `UnexpectedEof` error.
#[derive(Debug)]
pub struct Answer {
    pub head: Head,
    /// Body bytes that arrived with the head.
    early: Vec<u8>,
    early_at: usize,
    tcp: TcpStream,
    left: u64,
}

impl Answer {
    /// Body bytes not read yet.
    pub fn left(&self) -> u64 {
        self.left
    }
}

impl Read for Answer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = if let Some(early) = self.early.get(self.early_at..).filter(|e| !e.is_empty()) {
            let n = early.len().min(want);
            buf[..n].copy_from_slice(&early[..n]);
            self.early_at += n;
            n
        } else {
            let n = self.tcp.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the store closed the connection {} bytes before the end",
                        self.left
                    ),
                ));
            }
            n
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// `GET path` from `store` (through `device` when given: the socket is bound to it), with `Range: <range>` when given. Returns once the
/// head is in; the caller checks the status and reads the body.
pub fn get(
    store: &TunnelService,
    device: Option<&str>,
    path: &str,
    range: Option<&str>,
    t: Timeouts,
) -> Result<Answer, ExchangeError> {
    let addr = SocketAddr::V4(store.addr);
    let req = http::get(&store.authority(), path, &version(), range)
        .map_err(|source| ExchangeError::Http { addr, source })?;
    let mut tcp = https::connect(addr, device, t)?;
    let io_err = |source| ExchangeError::Io { addr, source };
    tcp.write_all(&req).map_err(io_err)?;
    let mut buf = Vec::with_capacity(8 * 1024);
    let mut chunk = [0u8; 8 * 1024];
    loop {
        let n = tcp.read(&mut chunk).map_err(io_err)?;
        buf.extend_from_slice(&chunk[..n]);
        match http::parse_head(&buf, n == 0) {
            Ok(Some(head)) => {
                let early = buf.split_off(head.len.min(buf.len()));
                if early.len() as u64 > head.content_length {
                    let source = HttpError::TrailingBytes {
                        extra: early.len() - head.content_length as usize,
                    };
                    return Err(ExchangeError::Http { addr, source });
                }
                let left = head.content_length;
                return Ok(Answer {
                    head,
                    early,
                    early_at: 0,
                    tcp,
                    left,
                });
            }
            Ok(None) if buf.len() < MAX_HEAD => {}
            Ok(None) => {
                let source = HttpError::HeadTooLarge;
                return Err(ExchangeError::Http { addr, source });
            }
            Err(source) => return Err(ExchangeError::Http { addr, source }),
        }
    }
}
