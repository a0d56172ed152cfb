//! The completed handshakes, shared between the node's thread (which records them) and its
//! handle (which waits for them): a map from peer key to the time of its last completed
//! handshake under a mutex, and a condition variable signalled on every change. Touched only on
//! handshakes, peer changes and shutdown, never per packet.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::error::NodeError;
use crate::keys::PublicKey;
use crate::peer::REJECT_AFTER;

#[derive(Debug, Default)]
struct Board {
    peers: HashMap<PublicKey, Option<SystemTime>>,
    stopped: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Handshakes {
    board: Mutex<Board>,
    changed: Condvar,
}

impl Handshakes {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn change(&self, f: impl FnOnce(&mut Board)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    pub fn added(&self, key: PublicKey) {
        self.change(|b| {
            b.peers.insert(key, None);
        });
    }

    pub fn removed(&self, key: &PublicKey) {
        self.change(|b| {
            b.peers.remove(key);
        });
    }

    pub fn completed(&self, key: PublicKey, at: SystemTime) {
        self.change(|b| {
            if let Some(t) = b.peers.get_mut(&key) {
                *t = Some(at);
            }
        });
    }

    /// The node's thread has ended: waiters stop waiting.
    pub fn stopped(&self) {
        self.change(|b| b.stopped = true);
    }

    /// Waits until `key` has a handshake completed within [`REJECT_AFTER`].
    pub fn wait(&self, key: &PublicKey, timeout: Duration) -> Result<(), NodeError> {
        let start = Instant::now();
        let mut board = self.lock();
        loop {
            if board.stopped {
                return Err(NodeError::Stopped);
            }
            match board.peers.get(key) {
                None => return Err(NodeError::UnknownPeer(*key)),
                Some(Some(t))
                    if SystemTime::now().duration_since(*t).unwrap_or_default() < REJECT_AFTER =>
                {
                    return Ok(());
                }
                Some(_) => {}
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(NodeError::HandshakeTimeout {
                    peer: *key,
                    waited: start.elapsed(),
                });
            }
            board = self
                .changed
                .wait_timeout(board, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}
