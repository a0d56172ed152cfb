//! Shared transactions: many callers, one store transaction.
//!
//! A store transaction costs far more than the rules it records (sled's multi-tree
//! transaction is most of an enrollment's time under the writer lock), so when many agents
//! enroll at once, one caller runs the queued operations of everyone waiting, in order, on
//! one [`Work`], and commits them as one transaction (flat combining). Each operation's
//! outcome goes back to its caller, and every caller still returns only once the combined
//! transaction is durable.
//!
//! Gathering: under a burst, operations arrive one by one as fast as the CPU answers them,
//! so the queue rarely holds more than one when the writer lock comes free, and every sled
//! transaction writes and syncs its own log buffer on sled's IO threads (which wakes all of
//! them). So when the last batch started less than [`GATHER`] ago, a new caller first waits
//! until [`GATHER`] after that start (outside the writer lock); one batch then takes what was
//! queued meanwhile. A lone operation (no batch in the last [`GATHER`]) waits for nothing.
//!
//! An operation must be repeatable on a fresh [`Work`]: if one of a batch fails with an
//! internal error, the batch's work is thrown away and each operation runs again alone, so a
//! failure of one never becomes the failure of the others, and no partial work is committed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Inventory, InventoryError};
use crate::ledger::Work;

/// The most operations one shared transaction takes.
const MAX_BATCH: usize = 256;

/// Under a burst, shared batches start at least this far apart (see the module doc): at most
/// this much latency added to an operation, for several operations per store transaction.
const GATHER: Duration = Duration::from_millis(2);

/// A job's outcome: the group-commit generation to wait for, if it stored anything.
type Outcome = Result<Option<u64>, InventoryError>;

type Run = Box<dyn FnMut(&mut Work<'_>) -> Result<(), InventoryError> + Send>;

/// How long a new caller waits before taking the writer lock, when the last batch started
/// at `last` (see the module doc).
fn gather_wait(last: Option<Instant>, now: Instant) -> Duration {
    last.map_or(Duration::ZERO, |t| {
        GATHER.saturating_sub(now.saturating_duration_since(t))
    })
}

/// One queued operation.
pub(super) struct Job {
    actor: String,
    run: Run,
    /// Set once the job ran: the group-commit generation to wait for (`None`: nothing to
    /// store), or its error.
    done: Arc<Mutex<Option<Outcome>>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("actor", &self.actor).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inventory {
    /// Like [`Inventory::transact`], but the operation may share its store transaction with
    /// others queued at the same time. `f` must be repeatable (see the module doc).
    pub fn transact_shared<T: Send + 'static>(
        &self,
        actor: &str,
        mut f: impl FnMut(&mut Work<'_>) -> Result<T, InventoryError> + Send + 'static,
    ) -> Result<T, InventoryError> {
        let out = Arc::new(Mutex::new(None::<T>));
        let done = Arc::new(Mutex::new(None));
        let slot = out.clone();
        lock(&self.queue).push(Job {
            actor: actor.to_string(),
            run: Box::new(move |w| {
                let v = f(w)?;
                *lock(&slot) = Some(v);
                Ok(())
            }),
            done: done.clone(),
        });
        let rest = gather_wait(*lock(&self.batch_started), Instant::now());
        if !rest.is_zero() {
            std::thread::sleep(rest);
        }
        let mut ids = lock(&self.writer);
        // Another caller may have run this operation while this one waited for the lock.
        let finished = lock(&done).take();
        let result = match finished {
            Some(r) => {
                drop(ids);
                r.and_then(|generation| match generation {
                    Some(g) => self
                        .durability
                        .wait(g, || self.store.flush())
                        .map_err(InventoryError::from),
                    None => Ok(()),
                })
            }
            None => {
                // Runs batches (oldest first) until this caller's operation has run.
                let mut published = Vec::new();
                let mine = loop {
                    let jobs: Vec<Job> = {
                        let mut q = lock(&self.queue);
                        let n = q.len().min(MAX_BATCH);
                        q.drain(..n).collect()
                    };
                    *lock(&self.batch_started) = Some(Instant::now());
                    if jobs.is_empty() {
                        break Err(InventoryError::Internal(
                            "an operation was queued but not run".into(),
                        ));
                    }
                    self.run_batch(jobs, &mut ids, &mut published);
                    if let Some(r) = lock(&done).take() {
                        break r;
                    }
                };
                drop(ids);
                // Durable, then announced: every caller of the batch waits for the same
                // flush, which the first of them performs (group commit).
                let mut flushed = Ok(());
                for (tx, commit) in published {
                    if let Err(e) = self.publish(tx, commit) {
                        flushed = Err(InventoryError::from(e));
                    }
                }
                mine.and(flushed)
            }
        };
        result?;
        lock(&out)
            .take()
            .ok_or_else(|| InventoryError::Internal("an operation left no result".into()))
    }

    /// Runs `jobs` as one transaction (or, if one of them fails, each alone), under the
    /// writer lock `ids`. Committed transactions go to `published`, to be flushed and
    /// announced once the lock is released; each job's outcome goes to its caller, whose
    /// wait for durability is its own.
    fn run_batch(
        &self,
        mut jobs: Vec<Job>,
        ids: &mut super::Ids,
        published: &mut Vec<(crate::ledger::Tx, (u64, Vec<lm_api::AuditEntry>))>,
    ) {
        let now = self.clock.now_ms();
        let together = {
            let base = self.read();
            let mut w = Work::new(&base, now, "lm", &mut *ids);
            let mut failed = None;
            for job in jobs.iter_mut() {
                w.actor.clone_from(&job.actor);
                if let Err(e) = (job.run)(&mut w) {
                    failed = Some(e);
                    break;
                }
            }
            match failed {
                None => Ok(w.tx),
                Some(e) => Err(e),
            }
        };
        let outcome = match together {
            Ok(tx) if tx.is_empty() => Ok(None),
            Ok(tx) => self
                .commit_locked(&tx, now)
                .map(|c| {
                    let generation = c.0;
                    published.push((tx, c));
                    Some(generation)
                })
                .map_err(InventoryError::from),
            Err(e) if jobs.len() == 1 => Err(e),
            Err(_) => {
                // One failed: each runs alone, so only the failing one fails.
                for job in jobs {
                    self.run_batch(vec![job], ids, published);
                }
                return;
            }
        };
        match outcome {
            Ok(generation) => {
                for job in jobs {
                    *lock(&job.done) = Some(Ok(generation));
                }
            }
            Err(e) => {
                let mut e = Some(e);
                for job in jobs {
                    let err = match e.take() {
                        Some(first) => first,
                        None => InventoryError::Internal(
                            "the shared transaction this operation was part of failed".into(),
                        ),
                    };
                    *lock(&job.done) = Some(Err(err));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::ledger::TenantRecord;
    use crate::store::Store;

    fn tenant(n: usize) -> TenantRecord {
        TenantRecord {
            name: format!("t{n}").parse().unwrap(),
            created_ms: 0,
            cert_serial: n.to_string(),
            cert_not_after_ms: u64::MAX,
            removed: false,
        }
    }

    /// Callers queued behind the writer lock: `n` threads, each adding tenant `t<i>`, except
    /// that `fail` (if any) adds `bad<i>` and then fails.
    fn queued(inv: &Arc<Inventory>, n: usize, fail: Option<usize>) -> Vec<Result<usize, String>> {
        let held = lock(&inv.writer);
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let inv = inv.clone();
                std::thread::spawn(move || {
                    inv.transact_shared("test", move |w| {
                        if fail == Some(i) {
                            let mut bad = tenant(i);
                            bad.name = format!("bad{i}").parse().unwrap();
                            w.put_tenant(bad);
                            return Err(InventoryError::Internal(format!("job {i} fails")));
                        }
                        w.put_tenant(tenant(i));
                        Ok(i)
                    })
                    .map_err(|e| e.to_string())
                })
            })
            .collect();
        while lock(&inv.queue).len() < n {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(held);
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }

    fn inventory(dir: &std::path::Path) -> Arc<Inventory> {
        Arc::new(Inventory::load(Store::open(dir).unwrap(), Arc::new(ManualClock::new(1))).unwrap())
    }

    #[test]
    fn queued_operations_share_one_durable_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let inv = inventory(dir.path());
        let before = inv.durability.generations();
        let out = queued(&inv, 16, None);
        assert_eq!(out, (0..16).map(Ok).collect::<Vec<_>>());
        assert_eq!(
            inv.durability.generations() - before,
            1,
            "one commit for all 16"
        );
        assert!(inv.durability.generations() <= inv.durability.flushed());
        inv.with_ledger(|l| assert_eq!(l.tenants.len(), 16));
        let stored = inv.store().load_ledger().unwrap();
        assert_eq!(stored.tenants.len(), 16, "all in the store");
    }

    #[test]
    fn a_failing_operation_fails_alone_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let inv = inventory(dir.path());
        let out = queued(&inv, 8, Some(3));
        for (i, r) in out.iter().enumerate() {
            if i == 3 {
                assert!(r.as_ref().unwrap_err().contains("job 3 fails"), "{r:?}");
            } else {
                assert_eq!(r, &Ok(i));
            }
        }
        let stored = inv.store().load_ledger().unwrap();
        let names: Vec<String> = stored.tenants.keys().map(|n| n.to_string()).collect();
        assert_eq!(names.len(), 7, "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with("bad")), "{names:?}");
    }

    #[test]
    fn a_caller_waits_only_shortly_after_a_batch_started() {
        let t = Instant::now();
        assert_eq!(gather_wait(None, t), Duration::ZERO, "no batch yet");
        assert_eq!(gather_wait(Some(t), t), GATHER);
        assert_eq!(gather_wait(Some(t), t + GATHER / 4), GATHER * 3 / 4);
        assert_eq!(gather_wait(Some(t), t + GATHER), Duration::ZERO);
        assert_eq!(
            gather_wait(Some(t), t + GATHER * 9),
            Duration::ZERO,
            "quiet"
        );
        assert_eq!(gather_wait(Some(t + GATHER), t), GATHER, "clock order");
    }

    /// Callers arriving one by one (not queued behind a held lock) within the gathering time
    /// of each other still share transactions, and each gets its own outcome.
    #[test]
    fn staggered_callers_are_gathered_into_few_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let inv = inventory(dir.path());
        let before = inv.durability.generations();
        let n = 16;
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let inv = inv.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(GATHER * i / 2);
                    inv.transact_shared("test", move |w| {
                        w.put_tenant(tenant(i as usize));
                        Ok(i)
                    })
                })
            })
            .collect();
        for (i, t) in threads.into_iter().enumerate() {
            assert_eq!(t.join().unwrap().unwrap() as usize, i);
        }
        let commits = inv.durability.generations() - before;
        assert!(
            commits <= 11,
            "{commits} store transactions for {n} staggered callers"
        );
        inv.with_ledger(|l| assert_eq!(l.tenants.len(), n as usize));
    }

    #[test]
    fn more_callers_than_one_batch_all_finish() {
        let dir = tempfile::tempdir().unwrap();
        let inv = inventory(dir.path());
        let n = MAX_BATCH + 40;
        let out = queued(&inv, n, None);
        assert!(out.iter().all(Result::is_ok));
        inv.with_ledger(|l| assert_eq!(l.tenants.len(), n));
    }
}
