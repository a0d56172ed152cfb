//! The lab's Wake-on-LAN listener: an AF_PACKET socket (ETH_P_ALL, promiscuous) bound to the
//! bridge inside the namespace, read on its own thread, calling back for every magic packet;
//! plus senders (UDP broadcast with SO_BINDTODEVICE, raw EtherType 0x0842) for tests and tools.
//!
//! Listen on the bridge, not on a tap: a tap without QEMU has no carrier and the bridge does not
//! forward to it (LAB-NOTES section 6). Does IO; the listener stops on drop.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use lm_api::MacAddr;

use crate::netns::Netns;
use crate::sys::{self, Ready, StopSignal};
use crate::wol::{WakeVia, ethertype_frame, magic_payload, parse_frame};

/// A running listener; stops (and joins its thread) on drop.
#[derive(Debug)]
pub struct WolListener {
    stop: Arc<StopSignal>,
    thread: Option<JoinHandle<()>>,
    seen: Arc<AtomicU64>,
}

impl WolListener {
    /// Starts listening on `iface` inside `ns`; `on_wake` runs on the listener thread for each
    /// magic packet (every copy: the caller decides what a repeat means), so keep it short.
    pub fn start(
        ns: &Netns,
        iface: &str,
        on_wake: impl Fn(MacAddr, WakeVia) + Send + 'static,
    ) -> Result<WolListener> {
        let fd: OwnedFd = ns
            .run(|| -> std::io::Result<OwnedFd> {
                sys::packet_listen_socket(sys::ifindex(iface)?, true)
            })?
            .with_context(|| format!("AF_PACKET socket on {iface} in netns {}", ns.name()))?;
        let stop = Arc::new(StopSignal::new()?);
        let seen = Arc::new(AtomicU64::new(0));
        let thread = std::thread::Builder::new()
            .name(format!("wol-{iface}"))
            .spawn({
                let (stop, seen) = (stop.clone(), seen.clone());
                move || listen(&fd, &stop, &seen, &on_wake)
            })
            .context("cannot spawn the WoL thread")?;
        tracing::info!(iface, netns = ns.name(), "WoL listener started");
        Ok(WolListener {
            stop,
            thread: Some(thread),
            seen,
        })
    }

    /// Magic packets seen so far.
    pub fn magic_packets_seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }
}

impl Drop for WolListener {
    fn drop(&mut self) {
        self.stop.raise();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn listen(fd: &OwnedFd, stop: &StopSignal, seen: &AtomicU64, on_wake: &dyn Fn(MacAddr, WakeVia)) {
    let mut buf = vec![0u8; 65536];
    loop {
        match sys::wait_readable(fd.as_raw_fd(), stop, None) {
            Ok(Ready::Readable) => {}
            Ok(Ready::Stopped) => return,
            Ok(Ready::TimedOut) => continue,
            Err(e) => {
                tracing::error!("WoL listener stops: {e}");
                return;
            }
        }
        loop {
            let n = match sys::recv(fd.as_raw_fd(), &mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!("WoL listener recv: {e}");
                    break;
                }
            };
            if let Some((mac, via)) = parse_frame(&buf[..n]) {
                seen.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%mac, ?via, "magic packet");
                on_wake(mac, via);
            }
        }
    }
}

/// Sends a magic packet for `target` as a UDP broadcast to 255.255.255.255:`port` out of
/// `iface` inside `ns` (SO_BINDTODEVICE, as a limited broadcast has no route otherwise).
pub fn send_udp(ns: &Netns, iface: &str, target: MacAddr, port: u16) -> Result<()> {
    ns.run(|| -> std::io::Result<()> {
        let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
        sock.set_broadcast(true)?;
        sys::bind_to_device(sock.as_raw_fd(), iface)?;
        sock.send_to(
            &magic_payload(target),
            SocketAddrV4::new(Ipv4Addr::BROADCAST, port),
        )?;
        Ok(())
    })?
    .with_context(|| format!("UDP magic packet out of {iface} in netns {}", ns.name()))
}

/// Sends a raw EtherType 0x0842 magic frame for `target` out of `iface` inside `ns`, from the
/// interface's own MAC to ff:ff:ff:ff:ff:ff.
pub fn send_ethertype(ns: &Netns, iface: &str, target: MacAddr) -> Result<()> {
    ns.run(|| -> std::io::Result<()> {
        let frame = ethertype_frame(sys::hwaddr(iface)?, target);
        sys::packet_send(sys::ifindex(iface)?, &frame)
    })?
    .with_context(|| format!("0x0842 magic frame out of {iface} in netns {}", ns.name()))
}
