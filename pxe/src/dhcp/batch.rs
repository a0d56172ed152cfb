//! Group commit, without sockets, in three steps:
//! 1. [`Batcher::decide`]: every datagram of the batch goes through the engine in turn (each
//!    sees the table changes of the ones before it); replies that carry no durable change
//!    (OFFER, NAK, INFORM-ACK) are ready at once;
//! 2. [`Commit::persist`]: every durable lease change of the batch is written to the
//!    [`LeaseStore`] and flushed ONCE (the only blocking step: the flush is an fsync);
//! 3. [`Batcher::finish`]: only then are the replies that carry a durable change (every ACK)
//!    released. The server overlaps step 2 of a batch with step 1 of the next.
//!
//! Also the log lines and the `EventKind::Dhcp` events. Does store IO (through the trait) but
//! no network IO; the socket loop is in `server.rs`.
//!
//! When a `put`/`remove`/`flush` fails, no ACK of that batch is released. The in-memory table
//! keeps the batch's changes: a client that got no ACK asks again and its lease (every ACK
//! carries the whole lease) is written again; an address stays blocked rather than risk being
//! given twice.
//!
//! Event rule: an event is recorded for every well-formed message from a MAC the directory
//! knows (gate `Open` or `Closed`), never for `Unknown` MACs or malformed datagrams. The LM's
//! directory only opens the gate for servers it woke, so its timeline gets exactly their
//! traffic. A benchmark that opens the gate for every MAC (`StaticDirectory::default`) runs the
//! server with [`NullSink`](crate::NullSink), so nothing is recorded.

use std::net::SocketAddrV4;
use std::sync::{Arc, PoisonError, RwLock};

use lm_api::{BootEvent, EventKind};

use crate::gate::{BootDirectory, EventSink, Gate};

use super::decision::{Action, Decision, ReplyKind, RequestContext, Silence};
use super::engine::Engine;
use super::lease::{LeaseStore, StoreError};
use super::table::{LeaseChange, LeaseTable};
use super::wire;

/// Seconds between sweeps of expired leases and offer holds.
pub const PRUNE_INTERVAL_SECS: u64 = 60;

/// A reply ready for the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Encoded message.
    pub bytes: Vec<u8>,
    /// Destination.
    pub to: SocketAddrV4,
    /// Its kind.
    pub kind: ReplyKind,
}

/// The engine with its table, store, directory and event sink.
pub struct Batcher {
    pub(crate) engine: Engine,
    pub(crate) table: Arc<RwLock<LeaseTable>>,
    pub(crate) store: Arc<dyn LeaseStore>,
    pub(crate) directory: Arc<dyn BootDirectory>,
    pub(crate) sink: Arc<dyn EventSink>,
    pub(crate) ctx: RequestContext,
    pub(crate) next_prune: u64,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("ctx", &self.ctx)
            .field("next_prune", &self.next_prune)
            .finish_non_exhaustive()
    }
}

struct Decided {
    decision: Decision,
    known: bool,
}

/// A decided batch: the replies that may go now, and the durable changes that must be
/// flushed before the held replies may go.
#[derive(Default)]
pub struct Commit {
    durable: Vec<LeaseChange>,
    held: Vec<Decided>,
    immediate: Vec<Outgoing>,
}

impl std::fmt::Debug for Commit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commit")
            .field("durable", &self.durable.len())
            .field("held", &self.held.len())
            .field("immediate", &self.immediate.len())
            .finish()
    }
}

impl Commit {
    /// The replies that need no flush; they may be sent before [`Commit::persist`].
    pub fn take_immediate(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.immediate)
    }

    /// Appends a later batch's store writes and held replies (group commit across batches
    /// while the store is busy; the later writes come after the earlier ones).
    pub fn absorb(&mut self, later: Commit) {
        self.durable.extend(later.durable);
        self.held.extend(later.held);
        self.immediate.extend(later.immediate);
    }

    /// Number of replies waiting for the flush.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// True if there is something to write (otherwise `persist` does nothing).
    pub fn needs_store(&self) -> bool {
        !self.durable.is_empty()
    }

    /// Writes the batch's durable changes and flushes once. Blocking.
    pub fn persist(&self, store: &dyn LeaseStore) -> Result<(), StoreError> {
        if self.durable.is_empty() {
            return Ok(());
        }
        for c in &self.durable {
            match c {
                LeaseChange::Put(l) => store.put(l)?,
                LeaseChange::Remove { address, .. } => store.remove(*address)?,
                LeaseChange::Hold(_) => {}
            }
        }
        store.flush()
    }
}

impl Batcher {
    /// The store leases are written to.
    pub fn store(&self) -> Arc<dyn LeaseStore> {
        Arc::clone(&self.store)
    }

    /// Runs one batch at `now` (unix seconds) start to end and returns every reply that may
    /// be sent (the immediate ones first): the server's pipeline without the overlap.
    #[cfg(test)]
    pub fn process<'a>(
        &mut self,
        datagrams: impl IntoIterator<Item = &'a [u8]>,
        now: u64,
    ) -> Vec<Outgoing> {
        let mut commit = self.decide(datagrams, now);
        let mut out = commit.take_immediate();
        let stored = commit.persist(&*self.store);
        out.extend(self.finish(commit, stored));
        out
    }

    /// Step 1: decides every datagram at `now` and updates the in-memory table.
    pub fn decide<'a>(
        &mut self,
        datagrams: impl IntoIterator<Item = &'a [u8]>,
        now: u64,
    ) -> Commit {
        let mut commit = Commit::default();
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        if now >= self.next_prune {
            self.next_prune = now.saturating_add(PRUNE_INTERVAL_SECS);
            for l in table.prune(now) {
                commit.durable.push(LeaseChange::Remove {
                    address: l.address,
                    mac: l.mac,
                });
            }
        }
        for bytes in datagrams {
            let gate_and_msg =
                wire::decode(bytes).and_then(|m| wire::client_mac(&m).map(|mac| (m, mac)));
            let (msg, mac) = match gate_and_msg {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(len = bytes.len(), error = %e, "DHCP datagram dropped");
                    continue;
                }
            };
            let gate = self.directory.lookup(mac);
            let decision = self.engine.handle(&msg, &self.ctx, &gate, &table, now);
            for c in decision.changes() {
                table.apply(c);
                if c.is_durable() {
                    commit.durable.push(c.clone());
                }
            }
            let d = Decided {
                decision,
                known: !matches!(gate, Gate::Unknown),
            };
            if d.decision.reply().is_some() && d.decision.needs_flush() {
                commit.held.push(d);
            } else {
                let sent = encode_into(&d.decision, &mut commit.immediate);
                self.report(&d, sent);
            }
        }
        commit
    }

    /// Step 3: releases the held replies if the store took the batch (`stored`).
    pub fn finish(&self, commit: Commit, stored: Result<(), StoreError>) -> Vec<Outgoing> {
        if let Err(e) = &stored {
            tracing::error!(error = %e, changes = commit.durable.len(), acks_held_back = commit.held.len(), "lease store failed: no ACK of this batch is sent");
        }
        let mut out = Vec::with_capacity(commit.held.len());
        for d in &commit.held {
            let sent = if stored.is_ok() {
                encode_into(&d.decision, &mut out)
            } else {
                None
            };
            self.report(d, sent);
        }
        out
    }

    /// The log line and, for known MACs, the event.
    fn report(&self, d: &Decided, sent: Option<ReplyKind>) {
        log(&d.decision, sent);
        if d.known
            && let Some(mac) = d.decision.mac
        {
            let kind = EventKind::Dhcp {
                message: d.decision.message_name().to_string(),
                client: d.decision.client.as_str().to_string(),
                reply: sent.map(|k| k.name().to_string()),
                address: d.decision.address(),
            };
            self.sink.record(BootEvent { mac, kind });
        }
    }
}

/// Encodes the decision's reply into `out`; returns its kind if it was encoded.
fn encode_into(d: &Decision, out: &mut Vec<Outgoing>) -> Option<ReplyKind> {
    let reply = d.reply()?;
    match wire::encode(&reply.message) {
        Ok(bytes) => {
            out.push(Outgoing {
                bytes,
                to: reply.to,
                kind: reply.kind,
            });
            Some(reply.kind)
        }
        Err(e) => {
            tracing::error!(mac = ?d.mac, xid = d.xid, error = %e, "DHCP reply could not be encoded");
            None
        }
    }
}

/// A MAC for log fields, formatted only if the line is emitted.
struct MacField(Option<lm_api::MacAddr>);

impl std::fmt::Display for MacField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(m) => std::fmt::Display::fmt(&m, f),
            None => f.write_str("?"),
        }
    }
}

/// One log line per decision, at a level that says who should care: the gate's refusals at
/// info (this is how an operator sees why a machine did not boot), resource problems at warn,
/// routine traffic at debug.
fn log(d: &Decision, sent: Option<ReplyKind>) {
    let (mac, xid, message, client) = (MacField(d.mac), d.xid, d.message_name(), d.client.as_str());
    let address = d.address();
    match &d.action {
        Action::Silent(
            s @ (Silence::UnknownMac | Silence::GateClosed { .. } | Silence::NoLease { .. }),
        ) => {
            tracing::info!(%mac, xid, message, client, reason = %s, "DHCP request not answered");
        }
        Action::Silent(s @ (Silence::Malformed(_) | Silence::NotForUs { .. })) => {
            tracing::debug!(%mac, xid, message, reason = %s, "DHCP request not answered");
        }
        Action::Silent(s) => {
            tracing::warn!(%mac, xid, message, client, reason = %s, "DHCP request not answered");
        }
        Action::Update { .. } if message == "DECLINE" => {
            tracing::warn!(%mac, xid, ?address, "client declined its address (another host uses it): quarantined");
        }
        Action::Update { .. } => tracing::debug!(%mac, xid, message, ?address, "lease updated"),
        Action::Reply { reply, .. } => match sent {
            Some(kind) => {
                let reply_name = kind.name();
                tracing::debug!(%mac, xid, message, client, reply = reply_name, ?address, to = %reply.to, "DHCP reply sent");
            }
            None => {
                let reply_name = reply.kind.name();
                tracing::warn!(%mac, xid, message, reply = reply_name, "DHCP reply withheld: its lease is not durable");
            }
        },
    }
}

#[cfg(test)]
mod tests;
