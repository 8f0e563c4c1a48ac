//! The pool's hedge threads: a small bounded set that sends hedges when they are due.
//!
//! A call that may be hedged schedules its hedge (a job and the instant it is due) before it
//! sends its own attempt; a free hedge thread runs the job when it is due. The job itself
//! checks whether its call is still waiting, so a call that got its response first costs
//! the queue one entry and a thread one wake-up, nothing on the wire. Threads start one per
//! job scheduled until the bound is reached, and end when the pool is dropped.

use std::any::Any;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::sync::lock;

/// What a hedge thread keeps between its jobs (the engine keeps its client there), dropped
/// before the thread reports that it ended.
pub(crate) type Local = Option<Box<dyn Any>>;

/// A hedge to send: runs on a hedge thread, with the thread's `Local`.
pub(crate) type Job = Box<dyn FnOnce(&mut Local) + Send + 'static>;

/// How long dropping the pool waits for its hedge threads to end (a hedge in flight ends by
/// its call's deadline at the latest; past this wait the thread is left to finish alone).
const STOP_WAIT: Duration = Duration::from_secs(2);

struct Pending {
    due: Instant,
    seq: u64,
    job: Job,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    // The earliest due first out of the (max-)heap.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

#[derive(Default)]
struct Queue {
    pending: BinaryHeap<Pending>,
    seq: u64,
    spawned: usize,
    stopping: bool,
}

struct Inner {
    queue: Mutex<Queue>,
    changed: Condvar,
    max: usize,
}

/// The hedge threads of one pool.
#[derive(Clone)]
pub(crate) struct Threads {
    inner: Arc<Inner>,
}

/// Stops the pool's hedge threads when dropped (held by the pool, so that the threads, whose
/// jobs hold the pool's shared state, end with it).
pub(crate) struct Stopper(Arc<Inner>);

impl Drop for Stopper {
    fn drop(&mut self) {
        let mut q = lock(&self.0.queue);
        q.stopping = true;
        // The jobs hold what the pool shares; dropping them breaks the cycle.
        let dropped = std::mem::take(&mut q.pending);
        drop(q);
        drop(dropped);
        self.0.changed.notify_all();
        // Wait for the threads, so that their clients' connections are closed when the pool
        // is gone.
        let until = Instant::now() + STOP_WAIT;
        let mut q = lock(&self.0.queue);
        while q.spawned > 0 {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            q = self
                .0
                .changed
                .wait_timeout(q, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Threads {
    /// At most `max` threads (at least one), none started yet.
    pub(crate) fn new(max: usize) -> Threads {
        Threads {
            inner: Arc::new(Inner {
                queue: Mutex::new(Queue::default()),
                changed: Condvar::new(),
                max: max.max(1),
            }),
        }
    }

    /// What stops the threads when dropped.
    pub(crate) fn stopper(&self) -> Stopper {
        Stopper(self.inner.clone())
    }

    /// Runs `job` on a hedge thread once `due` has come. False when the pool is stopping (the
    /// job is dropped).
    pub(crate) fn schedule(&self, due: Instant, job: Job) -> bool {
        let mut q = lock(&self.inner.queue);
        if q.stopping {
            return false;
        }
        q.seq += 1;
        let seq = q.seq;
        q.pending.push(Pending { due, seq, job });
        // Only a job that is now the earliest changes what a waiting thread waits for.
        let earliest = q.pending.peek().is_some_and(|p| p.seq == seq);
        // Few and long-lived: started one per job until the bound is reached.
        let spawn = q.spawned < self.inner.max;
        if spawn {
            q.spawned += 1;
        }
        drop(q);
        if spawn {
            let inner = self.inner.clone();
            let started = std::thread::Builder::new()
                .name("sentinel-hedge".into())
                .spawn(move || run(&inner));
            if started.is_err() {
                lock(&self.inner.queue).spawned -= 1;
            }
        }
        if earliest {
            self.inner.changed.notify_one();
        }
        true
    }

    /// Threads started so far.
    #[cfg(test)]
    fn spawned(&self) -> usize {
        lock(&self.inner.queue).spawned
    }
}

/// A hedge thread: the earliest job once it is due, until the pool stops.
fn run(inner: &Inner) {
    let mut local: Local = None;
    let mut q = lock(&inner.queue);
    loop {
        if q.stopping {
            drop(q);
            drop(local.take());
            lock(&inner.queue).spawned -= 1;
            inner.changed.notify_all();
            return;
        }
        let now = Instant::now();
        let wait = match q.pending.peek() {
            Some(p) if p.due <= now => None,
            Some(p) => Some(Some(p.due - now)),
            None => Some(None),
        };
        q = match wait {
            None => {
                let Some(next) = q.pending.pop() else {
                    continue;
                };
                // Another thread is to wait for the next job while this one runs.
                if !q.pending.is_empty() {
                    inner.changed.notify_one();
                }
                drop(q);
                // A panicking job (an event handler's) must not end the thread: the race has
                // had its outcome (the engine sees to that); its client is replaced.
                let job = next.job;
                if panic::catch_unwind(AssertUnwindSafe(|| job(&mut local))).is_err() {
                    local = None;
                }
                lock(&inner.queue)
            }
            Some(Some(t)) => {
                inner
                    .changed
                    .wait_timeout(q, t)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            Some(None) => inner
                .changed
                .wait(q)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn jobs_run_in_due_order_on_at_most_the_bound_of_threads() {
        let threads = Threads::new(2);
        let stop = threads.stopper();
        let (tx, rx) = mpsc::channel();
        let now = Instant::now();
        for (i, ms) in [(0u32, 60u64), (1, 20), (2, 40)] {
            let tx = tx.clone();
            let job: Job = Box::new(move |_| {
                let _ = tx.send(i);
            });
            assert!(threads.schedule(now + Duration::from_millis(ms), job));
        }
        let order: Vec<u32> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        assert_eq!(order, [1, 2, 0]);
        assert!(threads.spawned() <= 2);
        drop(stop);
        assert_eq!(threads.spawned(), 0, "the threads ended with the stopper");
        let job: Job = Box::new(|_| {});
        assert!(!threads.schedule(Instant::now(), job), "stopped");
    }
}
