//! Registration to the IPsec watcher: "load strongSwan's configuration now", and the answer.
//!
//! An IPsec agent registers, gets its tunnel address, and starts IKE right away; the gateway
//! must have reloaded charon with a connection that admits exactly that address first. The
//! registration handler asks for a sync with [`ConfigSync::request_and_wait`] and answers only
//! once a sync that started after its request has loaded; the watcher runs a sync when asked
//! (or every poll interval) and reports each one that succeeded with [`ConfigSync::loaded`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

/// The request counter and the last request a successful sync covered.
#[derive(Debug)]
pub struct ConfigSync {
    wanted: AtomicU64,
    wake: Notify,
    loaded: watch::Sender<u64>,
}

impl Default for ConfigSync {
    fn default() -> Self {
        Self {
            wanted: AtomicU64::new(0),
            wake: Notify::new(),
            loaded: watch::Sender::new(0),
        }
    }
}

impl ConfigSync {
    /// Asks for a sync and waits until one that began after this call succeeded, or `within`.
    pub async fn request_and_wait(&self, within: Duration) -> Result<(), String> {
        let mut rx = self.loaded.subscribe();
        let n = self.wanted.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        match tokio::time::timeout(within, rx.wait_for(|done| *done >= n)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err("the IPsec watcher stopped".into()),
            Err(_) => Err(format!(
                "no successful strongSwan sync within {} s",
                within.as_secs()
            )),
        }
    }

    /// Waits for a request or `every`, whichever comes first; returns the request count the
    /// sync about to run covers.
    pub async fn next(&self, every: Duration) -> u64 {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = self.wake.notified() => {}
        }
        self.wanted.load(Ordering::SeqCst)
    }

    /// A sync that covered requests up to `upto` succeeded.
    pub fn loaded(&self, upto: u64) {
        self.loaded.send_modify(|v| *v = (*v).max(upto));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_request_is_answered_by_a_later_sync_only() {
        let s = Arc::new(ConfigSync::default());
        let waiter = {
            let s = s.clone();
            tokio::spawn(async move { s.request_and_wait(Duration::from_secs(5)).await })
        };
        let upto = s.next(Duration::from_secs(5)).await;
        assert_eq!(upto, 1, "the request woke the watcher");
        // A sync that covered nothing newer than before the request does not answer it.
        s.loaded(0);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "answered by a sync from before the request"
        );
        s.loaded(upto);
        waiter.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn no_sync_means_a_timeout() {
        let s = ConfigSync::default();
        let e = s
            .request_and_wait(Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(e.contains("no successful strongSwan sync"), "{e}");
    }
}
