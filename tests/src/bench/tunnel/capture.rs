//! A capture on one interface inside a namespace (AF_PACKET, ETH_P_ALL, both directions, frames
//! whole up to 64 KiB, so GSO super-frames on a veth are seen complete): counts WireGuard
//! messages by type, looks for a marker in every frame, and keeps the kernel's timestamps of
//! the first handshake messages, for the WireGuard namespace test and the tunnel benchmark.
//!
//! Does IO on its own thread; [`Capture::finish`] stops it and returns what it saw.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::netns::Netns;
use crate::sys::{self, Ready, StopSignal};

/// One WireGuard message seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WgEvent {
    /// Kernel receive time, seconds since the epoch.
    pub at: f64,
    /// Message type (1 initiation, 2 response, 3 cookie, 4 data).
    pub kind: u8,
    pub src: Ipv4Addr,
}

/// What a capture saw.
#[derive(Debug, Clone, Default)]
pub struct CaptureReport {
    pub frames: u64,
    /// WireGuard messages by type (index 1..=4), a GSO frame counting once.
    pub wg_frames: [u64; 5],
    /// UDP payload bytes of WireGuard frames.
    pub wg_bytes: u64,
    /// Frames containing the marker.
    pub marker_frames: u64,
    /// The first WireGuard messages (at most 64), in order.
    pub events: Vec<WgEvent>,
}

impl CaptureReport {
    /// Milliseconds from the first handshake initiation to the first data message its sender
    /// sent after the response came back: the whole handshake as the initiator sees it.
    pub fn handshake_ms(&self) -> Option<f64> {
        let init = self.events.iter().find(|e| e.kind == 1)?;
        let resp = self
            .events
            .iter()
            .find(|e| e.kind == 2 && e.at >= init.at)?;
        let data = self
            .events
            .iter()
            .find(|e| e.kind == 4 && e.src == init.src && e.at >= resp.at)?;
        Some((data.at - init.at) * 1000.0)
    }
}

fn open(ns: &Netns, iface: &str) -> Result<OwnedFd> {
    ns.run(|| -> Result<OwnedFd> {
        let index = sys::ifindex(iface).with_context(|| format!("no interface {iface}"))?;
        let fd = sys::packet_listen_socket(index, false).context("AF_PACKET socket")?;
        // a big queue (no drops while the thread is descheduled) and the kernel's receive
        // time of every frame (SCM_TIMESTAMPNS), from the first frame on
        for (opt, value) in [(libc::SO_RCVBUFFORCE, 32 << 20), (libc::SO_TIMESTAMPNS, 1)] {
            let value: libc::c_int = value;
            // SAFETY: setsockopt with a pointer to a live c_int and its size.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&raw const value).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error()).context("setsockopt on the capture");
            }
        }
        Ok(fd)
    })?
    .with_context(|| format!("capture on {iface} in netns {}", ns.name()))
}

/// A capture running on its own thread: every frame (and the kernel's receive time) goes to
/// `on_frame` with the report it builds; [`FrameCapture::finish`] stops it after the frames
/// queued so far and returns the report. The WireGuard, IKE and IPsec-lease captures are this
/// with their own frame handler.
#[derive(Debug)]
pub struct FrameCapture<R> {
    stop: Arc<StopSignal>,
    thread: Option<JoinHandle<Result<R>>>,
}

impl<R: Send + 'static> FrameCapture<R> {
    /// Starts capturing on `iface` in `ns` into `report`.
    pub fn start(
        ns: &Netns,
        iface: &str,
        mut report: R,
        mut on_frame: impl FnMut(&mut R, &[u8], f64) + Send + 'static,
    ) -> Result<Self> {
        let fd = open(ns, iface)?;
        let stop = Arc::new(StopSignal::new()?);
        let thread = std::thread::Builder::new()
            .name(format!("capture-{iface}"))
            .spawn({
                let stop = stop.clone();
                move || {
                    run(&fd, &stop, |frame, at| on_frame(&mut report, frame, at))?;
                    Ok(report)
                }
            })
            .context("cannot spawn the capture thread")?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops after the frames queued so far and returns the report.
    pub fn finish(mut self) -> Result<R> {
        // let the last frames reach the socket
        std::thread::sleep(Duration::from_millis(100));
        self.stop.raise();
        self.thread
            .take()
            .context("capture already finished")?
            .join()
            .map_err(|_| anyhow::anyhow!("the capture thread panicked"))?
    }
}

impl<R> Drop for FrameCapture<R> {
    fn drop(&mut self) {
        self.stop.raise();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A WireGuard capture (see the module doc).
#[derive(Debug)]
pub struct Capture(FrameCapture<CaptureReport>);

impl Capture {
    /// Starts capturing on `iface` in `ns`; WireGuard is recognised on UDP port `wg_port` (either
    /// side), and every frame is searched for `marker`.
    pub fn start(ns: &Netns, iface: &str, wg_port: u16, marker: &[u8]) -> Result<Capture> {
        let marker = marker.to_vec();
        FrameCapture::start(ns, iface, CaptureReport::default(), move |r, frame, at| {
            r.frames += 1;
            if !marker.is_empty() && frame.windows(marker.len()).any(|w| w == marker) {
                r.marker_frames += 1;
            }
            if let Some((src, payload)) = wireguard_payload(frame, wg_port) {
                let kind = payload[0];
                r.wg_frames[usize::from(kind)] += 1;
                r.wg_bytes += payload.len() as u64;
                if r.events.len() < 64 {
                    r.events.push(WgEvent { at, kind, src });
                }
            }
        })
        .map(Capture)
    }

    /// Stops after the frames queued so far and returns the report.
    pub fn finish(self) -> Result<CaptureReport> {
        self.0.finish()
    }
}

/// Receives one frame without blocking: its length and the kernel's receive time (seconds
/// since the epoch; 0 if the kernel gave none).
fn recv_stamped(fd: RawFd, buf: &mut [u8]) -> std::io::Result<(usize, f64)> {
    #[repr(C, align(8))]
    struct Cmsg([u8; 64]);
    let mut cmsg = Cmsg([0; 64]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.0.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.0.len() as _;
    // SAFETY: msg points at live buffers of the sizes it states.
    let n = unsafe { libc::recvmsg(fd, &raw mut msg, libc::MSG_DONTWAIT) };
    let n = usize::try_from(n).map_err(|_| std::io::Error::last_os_error())?;
    let mut at = 0.0;
    // SAFETY: walking the control messages the kernel wrote, with the libc macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                at = ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9;
            }
            c = libc::CMSG_NXTHDR(&raw const msg, c);
        }
    }
    Ok((n, at))
}

/// Drains the socket into `on_frame` until `stop` is raised (the frames queued by then are
/// still read).
fn run(fd: &OwnedFd, stop: &StopSignal, mut on_frame: impl FnMut(&[u8], f64)) -> Result<()> {
    let mut buf = vec![0u8; 1 << 17];
    loop {
        // drain first, so a raised stop still sees what is queued
        loop {
            let (n, at) = match recv_stamped(fd.as_raw_fd(), &mut buf) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("reading the capture socket"),
            };
            on_frame(buf.get(..n).unwrap_or_default(), at);
        }
        match sys::wait_readable(fd.as_raw_fd(), stop, None)? {
            Ready::Readable => {}
            Ready::Stopped | Ready::TimedOut => return Ok(()),
        }
    }
}

/// The source and UDP payload of an Ethernet/IPv4/UDP frame to or from `port` whose payload
/// starts with a WireGuard message type word (1..=4, reserved bytes zero).
fn wireguard_payload(frame: &[u8], port: u16) -> Option<(Ipv4Addr, &[u8])> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if ip.get(9) != Some(&17) || ihl < 20 {
        return None;
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let udp = ip.get(ihl..)?;
    let sport = u16::from_be_bytes([*udp.first()?, *udp.get(1)?]);
    let dport = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    if sport != port && dport != port {
        return None;
    }
    let payload = udp.get(8..)?;
    match payload.get(..4)? {
        [1..=4, 0, 0, 0] => Some((src, payload)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        f.extend(ip);
        f.extend(sport.to_be_bytes());
        f.extend(dport.to_be_bytes());
        f.extend([0u8; 4]);
        f.extend(payload);
        f
    }

    #[test]
    fn wireguard_frames_are_recognised_by_port_and_type() {
        let data = [4u8, 0, 0, 0, 9, 9];
        assert!(wireguard_payload(&frame(51820, 40000, &data), 51820).is_some());
        assert!(wireguard_payload(&frame(40000, 51820, &data), 51820).is_some());
        assert!(wireguard_payload(&frame(40000, 40001, &data), 51820).is_none());
        assert!(wireguard_payload(&frame(51820, 1, &[5, 0, 0, 0]), 51820).is_none());
        assert!(wireguard_payload(&frame(51820, 1, &[1, 1, 0, 0]), 51820).is_none());
        assert!(wireguard_payload(&frame(51820, 1, &[1]), 51820).is_none());
        assert!(wireguard_payload(&[0u8; 20], 51820).is_none());
    }

    #[test]
    fn handshake_time_runs_from_initiation_to_the_initiators_first_data() {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 2);
        let ev = |at, kind, src| WgEvent { at, kind, src };
        let r = CaptureReport {
            events: vec![
                ev(10.0, 1, a),
                ev(10.001, 2, b),
                ev(10.0012, 4, b),
                ev(10.002, 4, a),
            ],
            ..CaptureReport::default()
        };
        let ms = r.handshake_ms().unwrap();
        assert!((ms - 2.0).abs() < 1e-6, "{ms}");
        assert_eq!(CaptureReport::default().handshake_ms(), None);
    }
}
