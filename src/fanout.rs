//! Batch fan-out: a slice of items spread over scoped workers, each owning a checked-out client,
//! results returned in input order.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::sync::lock;

use crate::client::Client;
use crate::error::{Error, ErrorKind};
use crate::pool::{panicked, ClientPool};

/// A batch run over a [`ClientPool`]: `workers` scoped threads, each with its own checked-out
/// client, take items from a shared cursor (whichever worker is free takes the next item, so a
/// slow item never holds back the items behind it) and the results come back in input order.
///
/// Every item gets exactly one result:
///
/// * the closure's value, or
/// * [`ErrorKind::Panicked`] when the closure panicked on it (the worker discards its client,
///   which may have a request half-written, checks out a fresh one and carries on), or
/// * [`ErrorKind::Cancelled`] when the cancel flag was set before any worker took it, or
/// * the checkout error ([`ErrorKind::PoolTimeout`]) when no worker could get a client.
///
/// [`ClientPool::fan_out`] is the short form without progress or cancellation.
///
/// # Examples
///
/// ```no_run
/// use std::sync::atomic::AtomicBool;
/// use http_sentinel::{ClientPool, FanOut, PoolConfig};
///
/// let pool = ClientPool::new(PoolConfig::default())?;
/// let urls = ["http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b"];
/// let cancel = AtomicBool::new(false);
/// let results = FanOut::new(8)
///     .progress(&|done, total| eprintln!("{done}/{total}"))
///     .cancel(&cancel)
///     .run(&pool, &urls, |client, url| -> Result<u16, http_sentinel::Error> {
///         Ok(client.get(url).send()?.status().as_u16())
///     });
/// for (url, result) in urls.iter().zip(results) {
///     println!("{url}: {:?}", result.and_then(|r| r));
/// }
/// # Ok::<(), http_sentinel::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct FanOut<'a> {
    workers: usize,
    progress: Option<&'a (dyn Fn(usize, usize) + Sync)>,
    cancel: Option<&'a AtomicBool>,
}

impl fmt::Debug for FanOut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanOut")
            .field("workers", &self.workers)
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl<'a> FanOut<'a> {
    /// A fan-out over at most `workers` threads (fewer when there are fewer items, or when the
    /// pool's `max_clients` is smaller), with no progress callback and no cancel flag.
    ///
    /// # Panics
    ///
    /// If `workers` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, FanOut, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let doubled = FanOut::new(3).run(&pool, &[1, 2, 3, 4], |_client, n| n * 2);
    /// let doubled: Vec<i32> = doubled.into_iter().collect::<Result<_, _>>()?;
    /// assert_eq!(doubled, [2, 4, 6, 8]);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn new(workers: usize) -> Self {
        assert!(workers > 0, "a fan-out needs at least one worker");
        FanOut {
            workers,
            progress: None,
            cancel: None,
        }
    }

    /// Calls `progress(done, total)` after each item finishes (panicked items included,
    /// cancelled ones not). Calls come from the worker threads but never at the same time, and
    /// `done` counts up by one each call. A panic in `progress` is caught and ignored: it cannot
    /// cost an item its result. Defaults to no callback.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use http_sentinel::{ClientPool, FanOut, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let seen = Mutex::new(Vec::new());
    /// let record = |done, total| seen.lock().unwrap().push((done, total));
    /// FanOut::new(2).progress(&record).run(&pool, &[(); 3], |_, _| ());
    /// assert_eq!(*seen.lock().unwrap(), [(1, 3), (2, 3), (3, 3)]);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn progress(mut self, progress: &'a (dyn Fn(usize, usize) + Sync)) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Stops handing out items once `cancel` is true: items already taken finish, the rest get
    /// [`ErrorKind::Cancelled`]. Defaults to no cancel flag.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::AtomicBool;
    /// use http_sentinel::{ClientPool, ErrorKind, FanOut, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let cancel = AtomicBool::new(true);
    /// let results = FanOut::new(2).cancel(&cancel).run(&pool, &[1, 2], |_, n| *n);
    /// assert!(results.iter().all(|r| r.as_ref().unwrap_err().kind() == &ErrorKind::Cancelled));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn cancel(mut self, cancel: &'a AtomicBool) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Runs `f(client, item)` for every item and returns one result per item, in input order.
    /// Blocks until every item has a result; each worker's checkout waits at most the pool's
    /// checkout timeout and each item takes as long as `f` does.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, ErrorKind, FanOut, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let results = FanOut::new(2).run(&pool, &[1, 0, 2], |_, n| {
    ///     assert!(*n != 0, "zero");
    ///     10 / n
    /// });
    /// assert_eq!(results[0].as_ref().ok(), Some(&10));
    /// assert!(matches!(results[1].as_ref().unwrap_err().kind(), ErrorKind::Panicked(m) if m == "zero"));
    /// assert_eq!(results[2].as_ref().ok(), Some(&5));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn run<T, R, F>(&self, pool: &ClientPool, items: &[T], f: F) -> Vec<Result<R, Error>>
    where
        T: Sync,
        R: Send,
        F: Fn(&Client, &T) -> R + Sync,
    {
        let total = items.len();
        let run = Run {
            items,
            f: &f,
            slots: (0..total).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            done: Mutex::new(0),
            progress: self.progress,
            cancel: self.cancel,
            stopped_by: Mutex::new(None),
        };
        let workers = self.workers.min(total).min(pool.config().max_clients());
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|id| {
                    let run = &run;
                    std::thread::Builder::new()
                        .name(format!("sentinel-fanout-{id}"))
                        .spawn_scoped(s, move || run.worker(pool))
                })
                .collect();
            for handle in handles {
                match handle {
                    // A worker catches its items' panics, so a join error would be a bug in
                    // the loop itself; the slots still say what happened to each item.
                    Ok(h) => drop(h.join()),
                    Err(e) => run.stopped(Error::new(ErrorKind::Other).with_source(e)),
                }
            }
        });
        let claimed = run.next.load(Ordering::Relaxed).min(total);
        let cancelled = run.is_cancelled();
        let stopped_by = lock(&run.stopped_by).take();
        run.slots
            .into_iter()
            .enumerate()
            .map(|(i, slot)| {
                let filled = slot.into_inner().unwrap_or_else(|p| p.into_inner());
                filled.unwrap_or_else(|| {
                    let kind = if i < claimed {
                        // Taken by a worker that ended before storing a result.
                        ErrorKind::Panicked("worker ended before finishing the item".into())
                    } else if cancelled {
                        ErrorKind::Cancelled
                    } else {
                        stopped_by.clone().unwrap_or(ErrorKind::Other)
                    };
                    Err(Error::new(kind))
                })
            })
            .collect()
    }
}

/// What the workers of one fan-out share.
struct Run<'r, T, F, R> {
    items: &'r [T],
    f: &'r F,
    // One lock per item, taken once: workers never contend on each other's results.
    slots: Vec<Mutex<Option<Result<R, Error>>>>,
    next: AtomicUsize,
    // A lock rather than an atomic so progress calls are serial and `done` is monotonic.
    done: Mutex<usize>,
    progress: Option<&'r (dyn Fn(usize, usize) + Sync)>,
    cancel: Option<&'r AtomicBool>,
    // Why a worker stopped early, given to any item no worker got to.
    stopped_by: Mutex<Option<ErrorKind>>,
}

impl<T, F, R> Run<'_, T, F, R>
where
    T: Sync,
    R: Send,
    F: Fn(&Client, &T) -> R + Sync,
{
    fn worker(&self, pool: &ClientPool) {
        // The client is checked out before any item is taken, so a worker that cannot get one
        // leaves every item to the others.
        let mut checkout = match pool.checkout() {
            Ok(c) => c,
            Err(e) => return self.stopped(e),
        };
        loop {
            if self.is_cancelled() {
                return;
            }
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = self.items.get(i) else {
                return;
            };
            let result = catch_unwind(AssertUnwindSafe(|| (self.f)(&checkout, item)));
            let failed = result.is_err();
            *lock(&self.slots[i]) = Some(result.map_err(|p| panicked(&*p)));
            self.report();
            if failed {
                // The client may hold a half-sent request: drop it, never return it dirty.
                checkout.discard();
                drop(checkout);
                checkout = match pool.checkout() {
                    Ok(c) => c,
                    Err(e) => return self.stopped(e),
                };
            }
        }
    }

    fn report(&self) {
        let Some(progress) = self.progress else {
            return;
        };
        let mut done = lock(&self.done);
        *done += 1;
        let total = self.items.len();
        let _ = catch_unwind(AssertUnwindSafe(|| progress(*done, total)));
    }
}

impl<T, F, R> Run<'_, T, F, R> {
    fn is_cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }

    fn stopped(&self, e: Error) {
        log::warn!("fan-out worker stopped: {e}");
        lock(&self.stopped_by).get_or_insert_with(|| e.kind().clone());
    }
}

impl ClientPool {
    /// Runs `f(client, item)` for every item over at most `workers` scoped threads, each owning
    /// a checked-out client, and returns one result per item in input order. Short for
    /// `FanOut::new(workers).run(self, items, f)`; see [`FanOut`] for progress reporting,
    /// cancellation and what each result can be.
    ///
    /// # Panics
    ///
    /// If `workers` is 0.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let urls = vec!["http://127.0.0.1:8080/a".to_owned(), "http://127.0.0.1:8080/b".to_owned()];
    /// let statuses = pool.fan_out(&urls, 4, |client, url| {
    ///     client.get(url).send().map(|r| r.status())
    /// });
    /// for (url, status) in urls.iter().zip(statuses) {
    ///     println!("{url}: {:?}", status?);
    /// }
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn fan_out<T, R, F>(&self, items: &[T], workers: usize, f: F) -> Vec<Result<R, Error>>
    where
        T: Sync,
        R: Send,
        F: Fn(&Client, &T) -> R + Sync,
    {
        FanOut::new(workers).run(self, items, f)
    }
}
