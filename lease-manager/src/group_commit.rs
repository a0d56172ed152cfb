//! Group commit: many writers, one fsync. Each writer takes a generation number after its
//! write (under the caller's writer lock, so generations follow the store's log order) and
//! waits until a flush that started after that write has finished. The first waiter that
//! finds no flush running does the flush for everyone written so far; the others wait for it.

use std::sync::{Condvar, Mutex};

#[derive(Debug, Default)]
struct State {
    written: u64,
    flushed: u64,
    flushing: bool,
}

/// The shared flush state.
#[derive(Debug, Default)]
pub struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
}

impl GroupCommit {
    /// Records a write; returns its generation.
    pub fn written(&self) -> u64 {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.written += 1;
        s.written
    }

    /// Generations written so far.
    #[cfg(test)]
    pub fn generations(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).written
    }

    /// Generations known durable.
    #[cfg(test)]
    pub fn flushed(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).flushed
    }

    /// Returns once generation `generation` is durable, flushing with `flush` if no flush
    /// covering it is running.
    pub fn wait<E>(&self, generation: u64, flush: impl Fn() -> Result<(), E>) -> Result<(), E> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if s.flushed >= generation {
                return Ok(());
            }
            if !s.flushing {
                let upto = s.written;
                s.flushing = true;
                drop(s);
                let r = flush();
                s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                s.flushing = false;
                if r.is_ok() {
                    s.flushed = s.flushed.max(upto);
                }
                self.done.notify_all();
                // A failed flush is this waiter's error; the others retry the flush.
                r?;
                continue;
            }
            s = self.done.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn one_flush_serves_many_writers_and_none_returns_early() {
        let g = Arc::new(GroupCommit::default());
        // "Durable" is what the last flush saw as written.
        let written = Arc::new(AtomicU64::new(0));
        let durable = Arc::new(AtomicU64::new(0));
        let flushes = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (g, written, durable, flushes) =
                    (g.clone(), written.clone(), durable.clone(), flushes.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let generation = g.written();
                        written.fetch_max(generation, Ordering::SeqCst);
                        g.wait(generation, || {
                            let w = written.load(Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_micros(300));
                            durable.fetch_max(w, Ordering::SeqCst);
                            flushes.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, ()>(())
                        })
                        .unwrap();
                        assert!(durable.load(Ordering::SeqCst) >= generation);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = flushes.load(Ordering::SeqCst);
        assert!(n < 800, "{n} flushes for 800 writes: no grouping");
    }

    #[test]
    fn a_failed_flush_is_reported_and_the_next_one_retries() {
        let g = GroupCommit::default();
        let generation = g.written();
        assert_eq!(g.wait(generation, || Err("disk full")), Err("disk full"));
        assert_eq!(g.wait(generation, || Ok::<_, &str>(())), Ok(()));
    }
}
