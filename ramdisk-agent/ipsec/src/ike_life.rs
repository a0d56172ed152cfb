//! The established IKE SA's IO shell: a thread that feeds agent-ike's [`IkeSa`] with the IKE
//! messages the ESP endpoint hands over (UDP 4500 behind the non-ESP marker), ticks its timers
//! (liveness checks, retransmission), starts a rekey when the endpoint's [`SaStatus`] says a
//! soft limit is reached, rekeys the IKE SA when its lifetime says so (the state machine's
//! [`IkeSa::ike_rekey_due`]), installs rekeyed SA pairs and removes deleted ones through the
//! endpoint's [`Command`] channel, and reports the tunnel's state. Does IO.
//!
//! Time here is the system's monotonic clock and randomness the system's (the thread outlives
//! the caller's `Clock` and `Entropy` borrows); the decisions are the state machine's.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use agent_esp::LifetimeLimits;
use agent_esp::io::{Command, IkeDatagram, SaStatus};
use agent_esp::udp_encap;
use agent_ike::{Entropy, IkeSa, SaEvent, SystemEntropy};

use crate::plan;

/// How long after starting a child rekey another may start (the endpoint's status lags).
const STATUS_SETTLE: Duration = Duration::from_secs(1);
/// How long after a refused child rekey we ask again.
const REFUSED_RETRY: Duration = Duration::from_secs(5);

/// What the tunnel knows about its IKE SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    Up,
    /// Our liveness check or another request got no answer after every retransmission.
    PeerDead {
        tries: u32,
    },
    /// The peer deleted the IKE SA.
    DeletedByPeer,
}

/// Counts of what the IKE SA did since the tunnel came up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifeStats {
    /// Child SA rekeys we started and that completed.
    pub rekeys_ours: u32,
    /// Child SA rekeys the peer started and we answered.
    pub rekeys_peer: u32,
    /// Requests of the peer we answered (liveness checks, deletes, rekeys).
    pub answered: u32,
    /// Inbound SAs removed after a Delete.
    pub deleted_children: u32,
    /// IKE SA rekeys the peer started and we answered.
    pub ike_rekeys: u32,
    /// IKE SA rekeys we started and that completed (with our SA surviving).
    pub ike_rekeys_ours: u32,
    /// Old (or redundant) IKE SAs deleted after a rekey.
    pub old_ike_deleted: u32,
    /// Rekey collisions we lost (RFC 7296 2.8.1: our new child pair deleted).
    pub collisions_lost: u32,
    /// The IKE SA's SPIs after the latest IKE SA rekey (initiator's, responder's).
    pub ike_spis: Option<(u64, u64)>,
    /// The SPI pairs installed after a rekey: (ours, the peer's).
    pub installed: Vec<(u32, u32)>,
}

/// Shared between the thread and the tunnel.
#[derive(Debug)]
pub struct Shared {
    pub state: Mutex<LinkState>,
    pub stats: Mutex<LifeStats>,
}

/// Everything the thread needs.
#[derive(Debug)]
pub struct Life {
    pub sa: IkeSa,
    pub sock: UdpSocket,
    pub peer: SocketAddr,
    pub ike_rx: mpsc::Receiver<IkeDatagram>,
    pub control: mpsc::Sender<Command>,
    pub status: Arc<Mutex<SaStatus>>,
    pub limits: LifetimeLimits,
    /// How long a replaced inbound SA keeps accepting after its Delete.
    pub overlap: Duration,
    pub shared: Arc<Shared>,
    pub stop: Arc<AtomicBool>,
}

impl Life {
    fn send(&self, bytes: &[u8]) {
        let mut d = Vec::with_capacity(bytes.len() + 4);
        udp_encap::ike_datagram(bytes, &mut d);
        if let Err(e) = self.sock.send_to(&d, self.peer) {
            tracing::warn!(peer = %self.peer, "sending an IKE message: {e}");
        }
    }

    fn stats(&self, f: impl FnOnce(&mut LifeStats)) {
        if let Ok(mut s) = self.shared.stats.lock() {
            f(&mut s);
        }
    }

    fn end(&self, state: LinkState) {
        tracing::warn!(?state, "IKE SA ended; stopping the tunnel");
        if let Ok(mut s) = self.shared.state.lock() {
            *s = state;
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Acts on the state machine's events.
    fn events(&self, ev: Vec<SaEvent>, removals: &mut Vec<(Instant, u32)>) {
        for e in ev {
            match e {
                SaEvent::Send(b) => self.send(&b),
                SaEvent::ChildRekeyed { old_spi_in, new } => {
                    match plan::esp_sas(&new, self.limits, Instant::now()) {
                        Ok((outbound, inbound)) => {
                            tracing::info!(
                                old_spi_in = format_args!("{old_spi_in:08x}"),
                                spi_in = format_args!("{:08x}", new.spi_in),
                                spi_out = format_args!("{:08x}", new.spi_out),
                                "child SA rekeyed"
                            );
                            let _ = self.control.send(Command::Install {
                                outbound: Box::new(outbound),
                                inbound: Box::new(inbound),
                            });
                            self.stats(|s| s.installed.push((new.spi_in, new.spi_out)));
                        }
                        Err(e) => tracing::warn!("rekeyed child SA not installable: {e}"),
                    }
                }
                SaEvent::ChildDeleted { spi_in, spi_out } => {
                    tracing::info!(
                        spi_in = format_args!("{spi_in:08x}"),
                        spi_out = format_args!("{spi_out:08x}"),
                        "child SA deleted; its inbound SA goes after the overlap"
                    );
                    removals.push((Instant::now() + self.overlap, spi_in));
                }
                SaEvent::IkeDeleted => self.end(LinkState::DeletedByPeer),
                SaEvent::PeerDead { tries } => self.end(LinkState::PeerDead { tries }),
                SaEvent::RekeyRefused(n) => tracing::warn!(notify = n, "our rekey was refused"),
                SaEvent::IkeRekeyed { spi_i, spi_r, ours } => {
                    tracing::info!(
                        spi_i = format_args!("{spi_i:016x}"),
                        spi_r = format_args!("{spi_r:016x}"),
                        by = if ours { "us" } else { "the peer" },
                        "IKE SA rekeyed"
                    );
                    self.stats(|s| {
                        s.ike_spis = Some((spi_i, spi_r));
                        if ours {
                            s.ike_rekeys_ours += 1;
                        } else {
                            s.ike_rekeys += 1;
                        }
                    });
                }
                SaEvent::IkeRekeyRefused(n) => {
                    tracing::warn!(notify = n, "our IKE SA rekey was refused; retrying later")
                }
                SaEvent::OldIkeDeleted { spi_i, spi_r } => {
                    tracing::info!(
                        spi_i = format_args!("{spi_i:016x}"),
                        spi_r = format_args!("{spi_r:016x}"),
                        "old IKE SA deleted"
                    );
                    self.stats(|s| s.old_ike_deleted += 1);
                }
                SaEvent::ChildCollisionLost { spi_in } => {
                    tracing::info!(
                        spi_in = format_args!("{spi_in:08x}"),
                        "child rekey collision lost: deleting our redundant pair"
                    );
                    self.stats(|s| s.collisions_lost += 1);
                }
            }
        }
    }

    /// Runs until the stop flag is set or the IKE SA ends.
    pub fn run(mut self) {
        let mut rng = SystemEntropy::default();
        let mut removals: Vec<(Instant, u32)> = Vec::new();
        let mut rekey_not_before = Instant::now();
        let mut next = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let wait = next
                .saturating_duration_since(now)
                .min(Duration::from_millis(100));
            match self.ike_rx.recv_timeout(wait) {
                Ok(d) if d.from == self.peer => {
                    let was = self.sa.message_ids();
                    match self.sa.on_message(&d.message, Instant::now(), &mut rng) {
                        Ok(ev) => {
                            let now_ids = self.sa.message_ids();
                            let rekeyed =
                                ev.iter().any(|e| matches!(e, SaEvent::ChildRekeyed { .. }));
                            if now_ids.1 != was.1 {
                                self.stats(|s| {
                                    s.answered += 1;
                                    if rekeyed {
                                        s.rekeys_peer += 1;
                                    }
                                });
                            } else if rekeyed {
                                self.stats(|s| s.rekeys_ours += 1);
                            }
                            let deleted = ev
                                .iter()
                                .filter(|e| matches!(e, SaEvent::ChildDeleted { .. }))
                                .count() as u32;
                            self.stats(|s| s.deleted_children += deleted);
                            if ev.iter().any(|e| matches!(e, SaEvent::RekeyRefused(_))) {
                                // A refusing peer is asked again only after a while.
                                rekey_not_before = Instant::now() + REFUSED_RETRY;
                            }
                            self.events(ev, &mut removals);
                        }
                        Err(e) => tracing::debug!("IKE message dropped: {e}"),
                    }
                }
                Ok(d) => {
                    tracing::debug!(from = %d.from, "IKE message from another address dropped")
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            let due = self.status.lock().map(|s| s.needs_rekey).unwrap_or(false);
            if due && !self.sa.rekeying() && now >= rekey_not_before && !self.sa.is_closed() {
                tracing::info!("ESP soft lifetime reached: rekeying the child SA");
                self.sa.start_rekey(&mut rng as &mut dyn Entropy);
                // The endpoint's status shows the new SA within a poll or two after the
                // rekey completes; until then its soft limit must not start another.
                rekey_not_before = now + STATUS_SETTLE;
            }
            if self.sa.ike_rekey_due(now) {
                tracing::info!("IKE SA lifetime reached: rekeying the IKE SA");
                self.sa.start_ike_rekey(&mut rng as &mut dyn Entropy, now);
            }
            let (ev, at) = self.sa.tick(now);
            next = at;
            self.events(ev, &mut removals);
            removals.retain(|(at, spi)| {
                if now >= *at {
                    let _ = self.control.send(Command::RemoveInbound(*spi));
                    false
                } else {
                    true
                }
            });
        }
    }
}
