//! The lab's IPv6 router-advertisement responder: a raw ICMPv6 socket opened inside the
//! namespace on the bridge, joined to ff02::2, answering every valid Router Solicitation with a
//! Router Advertisement to ff02::1 (plus one unsolicited RA at start). iPXE waits ~16 s for
//! IPv6 autoconfiguration unless something answers (LAB-NOTES section 4).
//!
//! Does IO: one socket and one thread, stopped on drop.

use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow};
use lm_api::MacAddr;

use crate::netns::Netns;
use crate::ra::{ALL_NODES, ALL_ROUTERS, ROUTER_SOLICIT, RouterAdvert, RouterSolicit};
use crate::sys::{self, Ready, StopSignal};

/// What to advertise and where.
#[derive(Debug, Clone)]
pub struct RaConfig {
    /// The interface (the lab bridge); it must have a link-local address (the source of RAs).
    pub iface: String,
    /// The on-link prefix hosts autoconfigure from (for example fd77::).
    pub prefix: Ipv6Addr,
    /// Its length, 64 for SLAAC.
    pub prefix_len: u8,
}

#[derive(Debug, Default)]
struct Counters {
    solicits: AtomicU64,
    adverts: AtomicU64,
}

/// A running responder; stops on drop.
#[derive(Debug)]
pub struct RaResponder {
    stop: Arc<StopSignal>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    source: Ipv6Addr,
    mac: MacAddr,
}

struct Shared {
    fd: OwnedFd,
    ifindex: u32,
    advert: Vec<u8>,
    counters: Arc<Counters>,
    stop: Arc<StopSignal>,
}

impl RaResponder {
    /// Opens the socket inside `ns`, sends one unsolicited RA and starts answering RSs.
    pub fn start(ns: &Netns, cfg: RaConfig) -> Result<RaResponder> {
        let iface = cfg.iface.clone();
        let (fd, ifindex, mac, source) = ns
            .run(move || -> Result<_> {
                let ifindex = sys::ifindex(&iface)?;
                let mac = sys::hwaddr(&iface)?;
                let ll = sys::link_local_of(&iface)?
                    .ok_or_else(|| anyhow!("{iface} has no link-local address to send RAs from"))?;
                let fd = sys::icmpv6_socket(&iface, ifindex, &[ALL_ROUTERS])?;
                Ok((fd, ifindex, mac, ll))
            })?
            .with_context(|| format!("RA responder on {} in netns {}", cfg.iface, ns.name()))?;
        let advert =
            RouterAdvert::for_lab(mac, cfg.prefix, cfg.prefix_len).to_bytes(source, ALL_NODES);
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(StopSignal::new()?);
        let shared = Shared {
            fd,
            ifindex,
            advert,
            counters: counters.clone(),
            stop: stop.clone(),
        };
        shared.advertise("unsolicited");
        let thread = std::thread::Builder::new()
            .name(format!("ra-{}", cfg.iface))
            .spawn(move || shared.serve())
            .context("cannot spawn the RA thread")?;
        tracing::info!(iface = %cfg.iface, %source, prefix = %cfg.prefix, "RA responder started");
        Ok(RaResponder {
            stop,
            thread: Some(thread),
            counters,
            source,
            mac,
        })
    }

    /// Valid Router Solicitations received so far.
    pub fn solicitations(&self) -> u64 {
        self.counters.solicits.load(Ordering::Relaxed)
    }

    /// Router Advertisements sent so far (the unsolicited one included if it went out).
    pub fn adverts_sent(&self) -> u64 {
        self.counters.adverts.load(Ordering::Relaxed)
    }

    /// The link-local address the RAs are built for (the interface's).
    pub fn source(&self) -> Ipv6Addr {
        self.source
    }

    /// The MAC in the source link-layer address option.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }
}

impl Drop for RaResponder {
    fn drop(&mut self) {
        self.stop.raise();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Shared {
    fn advertise(&self, why: &str) {
        match sys::send_icmpv6(self.fd.as_raw_fd(), &self.advert, ALL_NODES, self.ifindex) {
            Ok(()) => {
                self.counters.adverts.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(why, "RA sent");
            }
            // Before a port is up the bridge has no carrier and sending may fail; nobody
            // could hear it anyway.
            Err(e) => tracing::debug!(why, "RA not sent: {e}"),
        }
    }

    fn serve(self) {
        let fd = self.fd.as_raw_fd();
        let mut buf = [0u8; 1500];
        loop {
            match sys::wait_readable(fd, &self.stop, None) {
                Ok(Ready::Readable) => {}
                Ok(Ready::Stopped) => return,
                Ok(Ready::TimedOut) => continue,
                Err(e) => {
                    tracing::error!("RA responder stops: {e}");
                    return;
                }
            }
            loop {
                let got = match sys::recv_icmpv6(fd, &mut buf) {
                    Ok(got) => got,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::warn!("RA responder recv: {e}");
                        break;
                    }
                };
                let msg = &buf[..got.len];
                if msg.first() != Some(&ROUTER_SOLICIT) {
                    continue; // NS, NA, MLD and the like
                }
                // RFC 4861 6.1.1: an RS that crossed a router (hop limit < 255) is discarded.
                if got.hop_limit != Some(255) {
                    tracing::debug!(src = %got.src, hop_limit = ?got.hop_limit, "RS ignored");
                    continue;
                }
                match RouterSolicit::parse(msg) {
                    Ok(rs) => {
                        self.counters.solicits.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(src = %got.src, mac = ?rs.source_mac, "RS");
                        self.advertise("solicited");
                    }
                    Err(e) => tracing::debug!(src = %got.src, "malformed RS: {e}"),
                }
            }
        }
    }
}

/// An RA received by [`solicit_router`].
#[derive(Debug, Clone)]
pub struct SolicitedAdvert {
    /// Who sent it (should be the router's link-local address).
    pub src: Ipv6Addr,
    /// The IPv6 hop limit it arrived with (RFC 4861 requires 255).
    pub hop_limit: Option<u8>,
    /// The parsed advertisement.
    pub advert: RouterAdvert,
    /// Time from sending the RS to receiving the RA.
    pub after: std::time::Duration,
}

/// Acts as a host on `iface` inside `ns`: sends one Router Solicitation (with the interface's
/// MAC) to ff02::2 and returns the first Router Advertisement that arrives within `timeout`.
/// The interface needs an IPv6 address to send from (a link-local one, added with nodad).
pub fn solicit_router(
    ns: &Netns,
    iface: &str,
    timeout: std::time::Duration,
) -> Result<SolicitedAdvert> {
    ns.run(|| -> Result<SolicitedAdvert> {
        let ifindex = sys::ifindex(iface)?;
        let mac = sys::hwaddr(iface)?;
        let src = sys::link_local_of(iface)?.unwrap_or(Ipv6Addr::UNSPECIFIED);
        let fd = sys::icmpv6_socket(iface, ifindex, &[ALL_NODES])?;
        let rs = RouterSolicit {
            source_mac: Some(mac),
        }
        .to_bytes(src, ALL_ROUTERS);
        let stop = StopSignal::new()?;
        let start = std::time::Instant::now();
        sys::send_icmpv6(fd.as_raw_fd(), &rs, ALL_ROUTERS, ifindex).context("sending the RS")?;
        let mut buf = [0u8; 1500];
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            if sys::wait_readable(fd.as_raw_fd(), &stop, Some(left))? != Ready::Readable {
                anyhow::bail!("no Router Advertisement on {iface} within {timeout:?}");
            }
            let got = match sys::recv_icmpv6(fd.as_raw_fd(), &mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            };
            if let Ok(advert) = RouterAdvert::parse(&buf[..got.len]) {
                let after = start.elapsed();
                return Ok(SolicitedAdvert {
                    src: got.src,
                    hop_limit: got.hop_limit,
                    advert,
                    after,
                });
            }
        }
    })?
    .with_context(|| format!("soliciting a router on {iface} in netns {}", ns.name()))
}
