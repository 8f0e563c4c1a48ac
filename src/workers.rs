//! `WorkerPool`: long-lived worker threads, each owning a checked-out client, fed through a
//! bounded queue; resizable while running, drained or cut short on shutdown.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::sync::lock;

use crate::client::Client;
use crate::error::{Error, ErrorKind};
use crate::job::{self, Task};
pub use crate::job::{JobHandle, SubmitError, UnstartedJob};
use crate::pool::{Checkout, ClientPool};

/// A fixed set of long-lived worker threads over a [`ClientPool`], fed through a bounded queue.
///
/// Each worker checks out its own client on its first job and keeps it (a job that panics
/// costs the worker its client, which is discarded, never returned dirty; the worker carries
/// on with a fresh one). Jobs are closures `FnOnce(&Client) -> R`; [`submit`](Self::submit)
/// returns a [`JobHandle`] that yields the job's value or its error.
///
/// * Backpressure: when the queue is full, [`submit`](Self::submit) waits (up to the submit
///   timeout) and [`try_submit`](Self::try_submit) refuses at once, handing the job back.
/// * [`resize`](Self::resize) grows or shrinks the set of workers while jobs run; queued jobs
///   are neither dropped nor run twice: a retiring worker finishes its current job and leaves
///   the queue to the others.
/// * [`shutdown`](Self::shutdown) stops intake and runs every queued job;
///   [`shutdown_now`](Self::shutdown_now) returns the jobs not yet started. Dropping the pool
///   shuts it down (draining).
///
/// Every submitted job's handle gets exactly one result: the job's value,
/// [`ErrorKind::Panicked`], the checkout error when the worker could get no client, or
/// [`ErrorKind::Cancelled`] when the job was dropped unstarted.
///
/// # Examples
///
/// ```no_run
/// use http_sentinel::{ClientPool, PoolConfig, WorkerPool};
///
/// let pool = ClientPool::new(PoolConfig::default())?;
/// let workers = WorkerPool::new(&pool, 4, 16)?;
/// let handle = workers.submit(|client| {
///     client.get("http://127.0.0.1:8080/").send().map(|r| r.status())
/// })?;
/// let status = handle.wait()??;
/// println!("{status}");
/// workers.shutdown();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WorkerPool {
    inner: Arc<Inner>,
    // Locked for the whole of a resize, so a shutdown racing it joins every thread it spawns.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

struct Inner {
    pool: ClientPool,
    capacity: usize,
    submit_timeout: Duration,
    state: Mutex<State>,
    /// Workers wait here for a job, a resize or shutdown.
    work: Condvar,
    /// Submitters wait here for room in the queue or shutdown.
    space: Condvar,
}

struct State {
    queue: VecDeque<Box<dyn Task>>,
    open: bool,
    /// Workers wanted.
    target: usize,
    /// Worker threads not yet retired (spawned, or about to be).
    live: usize,
    running: usize,
    submitters_waiting: usize,
    completed: u64,
    panicked: u64,
    next_worker: usize,
}

/// A snapshot of a [`WorkerPool`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerPoolState {
    /// Workers wanted (the last [`resize`](WorkerPool::resize)).
    pub workers: usize,
    /// Worker threads alive; differs from `workers` while a resize takes effect.
    pub live: usize,
    /// Jobs waiting in the queue.
    pub queued: usize,
    /// Jobs being run.
    pub running: usize,
    /// The queue's capacity.
    pub capacity: usize,
    /// Threads blocked in [`submit`](WorkerPool::submit) waiting for room.
    pub submitters_waiting: usize,
    /// Jobs finished (panicked ones included).
    pub completed: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Whether the pool still accepts jobs.
    pub open: bool,
}

/// Configures a [`WorkerPool`]; setters consume and return it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use http_sentinel::{ClientPool, PoolConfig, WorkerPool};
///
/// let pool = ClientPool::new(PoolConfig::default())?;
/// let workers = WorkerPool::builder(&pool)
///     .workers(2)
///     .queue_capacity(8)
///     .submit_timeout(Duration::from_secs(1))
///     .build()?;
/// assert_eq!(workers.state().workers, 2);
/// assert_eq!(workers.state().capacity, 8);
/// # Ok::<(), http_sentinel::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct WorkerPoolBuilder {
    pool: ClientPool,
    workers: usize,
    capacity: usize,
    submit_timeout: Duration,
}

impl WorkerPoolBuilder {
    /// The number of worker threads. Defaults to 4.
    ///
    /// # Panics
    ///
    /// If `n` is 0: queued jobs would never run.
    pub fn workers(mut self, n: usize) -> Self {
        assert!(n > 0, "a worker pool needs at least one worker");
        self.workers = n;
        self
    }

    /// How many jobs may wait in the queue. Defaults to 64.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        assert!(n > 0, "a worker pool queue needs room for at least one job");
        self.capacity = n;
        self
    }

    /// How long [`submit`](WorkerPool::submit) waits for room in a full queue. Defaults to the
    /// client pool's checkout timeout (30 s unless configured).
    pub fn submit_timeout(mut self, d: Duration) -> Self {
        self.submit_timeout = d;
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Other`] (with the OS error as its source) when a thread cannot be spawned.
    pub fn build(self) -> Result<WorkerPool, Error> {
        let workers = WorkerPool {
            inner: Arc::new(Inner {
                pool: self.pool,
                capacity: self.capacity,
                submit_timeout: self.submit_timeout,
                state: Mutex::new(State {
                    queue: VecDeque::with_capacity(self.capacity),
                    open: true,
                    target: 0,
                    live: 0,
                    running: 0,
                    submitters_waiting: 0,
                    completed: 0,
                    panicked: 0,
                    next_worker: 0,
                }),
                work: Condvar::new(),
                space: Condvar::new(),
            }),
            threads: Mutex::new(Vec::new()),
        };
        workers.resize(self.workers)?;
        Ok(workers)
    }
}

impl WorkerPool {
    /// A builder over `pool` with the defaults (4 workers, a queue of 64).
    pub fn builder(pool: &ClientPool) -> WorkerPoolBuilder {
        WorkerPoolBuilder {
            workers: 4,
            capacity: 64,
            submit_timeout: pool.config().checkout_timeout(),
            pool: pool.clone(),
        }
    }

    /// Starts `workers` threads over `pool` with a queue of `capacity` jobs.
    ///
    /// # Panics
    ///
    /// If `workers` or `capacity` is 0.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Other`] when a thread cannot be spawned.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig, WorkerPool};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let workers = WorkerPool::new(&pool, 2, 4)?;
    /// let client_id = workers.submit(|client| client.id())?.wait()?;
    /// assert!(client_id > 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(pool: &ClientPool, workers: usize, capacity: usize) -> Result<WorkerPool, Error> {
        WorkerPool::builder(pool)
            .workers(workers)
            .queue_capacity(capacity)
            .build()
    }

    /// Queues `job`, waiting up to the submit timeout for room when the queue is full.
    ///
    /// # Errors
    ///
    /// The job back, in [`SubmitError::Full`] when the queue stayed full for the whole wait or
    /// [`SubmitError::ShutDown`] when the pool no longer accepts jobs.
    pub fn submit<F, R>(&self, job: F) -> Result<JobHandle<R>, SubmitError<F>>
    where
        F: FnOnce(&Client) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit_timeout(job, self.inner.submit_timeout)
    }

    /// Queues `job` if there is room right now; never blocks.
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit), without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use http_sentinel::{ClientPool, PoolConfig, WorkerPool};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let workers = WorkerPool::new(&pool, 1, 1)?;
    /// let (started_tx, started) = mpsc::channel();
    /// let (gate, gate_rx) = mpsc::channel::<()>();
    /// let busy = workers.submit(move |_| {
    ///     started_tx.send(()).unwrap();
    ///     gate_rx.recv().ok();
    /// })?;
    /// started.recv()?; // the worker is busy
    /// let queued = workers.try_submit(|_| 1)?; // fills the queue
    /// let refused = workers.try_submit(|_| 2).unwrap_err();
    /// assert!(refused.is_full());
    /// let client = pool.checkout()?;
    /// assert_eq!(refused.into_job()(&client), 2); // the job came back
    /// drop(gate);
    /// busy.wait()?;
    /// assert_eq!(queued.wait()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_submit<F, R>(&self, job: F) -> Result<JobHandle<R>, SubmitError<F>>
    where
        F: FnOnce(&Client) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit_timeout(job, Duration::ZERO)
    }

    /// Queues `job`, waiting up to `timeout` for room when the queue is full.
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit).
    pub fn submit_timeout<F, R>(
        &self,
        job: F,
        timeout: Duration,
    ) -> Result<JobHandle<R>, SubmitError<F>>
    where
        F: FnOnce(&Client) -> R + Send + 'static,
        R: Send + 'static,
    {
        let inner = &*self.inner;
        let start = Instant::now();
        let mut state = inner.lock();
        loop {
            if !state.open {
                return Err(SubmitError::ShutDown(job));
            }
            if state.queue.len() < inner.capacity {
                break;
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(SubmitError::Full(job));
            }
            state.submitters_waiting += 1;
            state = inner
                .space
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            state.submitters_waiting -= 1;
        }
        let (task, handle) = job::pending(job);
        state.queue.push_back(task);
        drop(state);
        inner.work.notify_one();
        Ok(handle)
    }

    /// Sets the number of workers to `workers`, while jobs run. Growing spawns threads at once;
    /// shrinking lets surplus workers retire as they become free (each finishes its current job
    /// first), so it returns without waiting. Queued jobs stay queued either way: none is
    /// dropped, none runs twice. After shutdown it does nothing.
    ///
    /// # Panics
    ///
    /// If `workers` is 0: queued jobs would never run.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Other`] when a thread cannot be spawned; the workers that did start stay.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig, WorkerPool};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let workers = WorkerPool::new(&pool, 2, 8)?;
    /// workers.resize(5)?;
    /// assert_eq!(workers.state().workers, 5);
    /// workers.resize(1)?;
    /// assert_eq!(workers.state().workers, 1);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn resize(&self, workers: usize) -> Result<(), Error> {
        assert!(workers > 0, "a worker pool needs at least one worker");
        let mut threads = lock(&self.threads);
        threads.retain(|t| !t.is_finished());
        let mut state = self.inner.lock();
        if !state.open {
            return Ok(());
        }
        state.target = workers;
        // Workers still alive above an old, lower target count toward the new one.
        let spawn = workers.saturating_sub(state.live);
        state.live += spawn;
        let first = state.next_worker;
        state.next_worker += spawn;
        drop(state);
        // Idle workers re-check the target; surplus ones retire.
        self.inner.work.notify_all();
        for k in 0..spawn {
            let inner = self.inner.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sentinel-pool-{}", first + k))
                .spawn(move || work(&inner));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    let mut state = self.inner.lock();
                    let missing = spawn - k;
                    state.live -= missing;
                    state.target = state.target.saturating_sub(missing).max(1);
                    return Err(Error::new(ErrorKind::Other).with_source(e));
                }
            }
        }
        Ok(())
    }

    /// Stops intake, lets the workers run every queued job, and waits for them to finish.
    /// Idempotent. Waits as long as the queued jobs take (their HTTP calls are bounded by the
    /// pool's deadline). Called from inside one of the pool's own jobs, it stops intake and
    /// returns at once: a worker cannot wait for itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig, WorkerPool};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let workers = WorkerPool::new(&pool, 2, 8)?;
    /// let handles: Vec<_> = (0..8).map(|n| workers.submit(move |_| n * n)).collect::<Result<_, _>>()?;
    /// workers.shutdown();
    /// assert!(workers.submit(|_| 0).unwrap_err().is_shut_down());
    /// let squares: Vec<i32> = handles.into_iter().map(|h| h.wait()).collect::<Result<_, _>>()?;
    /// assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36, 49]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(&self) {
        self.inner.lock().open = false;
        self.inner.work.notify_all();
        self.inner.space.notify_all();
        self.join();
    }

    /// Stops intake and takes every job not yet started out of the queue, returning them at
    /// once; jobs already running finish in the background ([`shutdown`](Self::shutdown) or
    /// dropping the pool waits for them). Each returned job can still be run (its handle gets
    /// the result) or dropped (its handle gets [`ErrorKind::Cancelled`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use http_sentinel::{ClientPool, ErrorKind, PoolConfig, WorkerPool};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let workers = WorkerPool::new(&pool, 1, 4)?;
    /// let (started_tx, started) = mpsc::channel();
    /// let (gate, gate_rx) = mpsc::channel::<()>();
    /// let first = workers.submit(move |_| {
    ///     started_tx.send(()).unwrap();
    ///     gate_rx.recv().ok();
    /// })?;
    /// started.recv()?; // the only worker is busy: the next two stay queued
    /// let second = workers.submit(|_| 2)?;
    /// let third = workers.submit(|_| 3)?;
    /// let mut unstarted = workers.shutdown_now();
    /// assert_eq!(unstarted.len(), 2);
    /// let client = pool.checkout()?;
    /// unstarted.remove(0).run(&client); // run `second` here
    /// drop(unstarted); // cancel `third`
    /// assert_eq!(second.wait()?, 2);
    /// assert_eq!(third.wait().unwrap_err().kind(), &ErrorKind::Cancelled);
    /// drop(gate);
    /// first.wait()?;
    /// workers.shutdown(); // waits for the worker
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown_now(&self) -> Vec<UnstartedJob> {
        let jobs: Vec<UnstartedJob> = {
            let mut state = self.inner.lock();
            state.open = false;
            state.queue.drain(..).map(UnstartedJob).collect()
        };
        self.inner.work.notify_all();
        self.inner.space.notify_all();
        jobs
    }

    fn join(&self) {
        // A job that shuts its own pool down cannot wait for its own worker, nor for a
        // shutdown in another thread that is waiting for it.
        if IN_WORKER.with(|w| w.get()) == Arc::as_ptr(&self.inner) as usize {
            return;
        }
        // Held while joining, so a second shutdown returns only once the workers are gone.
        let mut threads = lock(&self.threads);
        for t in threads.drain(..) {
            let _ = t.join();
        }
    }

    /// A snapshot of the pool: workers, queue, jobs running and finished.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig, WorkerPool};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let workers = WorkerPool::new(&pool, 3, 10)?;
    /// let state = workers.state();
    /// assert_eq!((state.workers, state.capacity, state.queued), (3, 10, 0));
    /// assert!(state.open);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn state(&self) -> WorkerPoolState {
        let state = self.inner.lock();
        WorkerPoolState {
            workers: state.target,
            live: state.live,
            queued: state.queue.len(),
            running: state.running,
            capacity: self.inner.capacity,
            submitters_waiting: state.submitters_waiting,
            completed: state.completed,
            panicked: state.panicked,
            open: state.open,
        }
    }

    /// The client pool the workers check their clients out of.
    pub fn client_pool(&self) -> &ClientPool {
        &self.inner.pool
    }
}

impl fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Drop for WorkerPool {
    /// Shuts the pool down, running the queued jobs first.
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The next job for a worker, or `None` when the worker should end: it is surplus after a
    /// shrink, or the pool is shut down and the queue is empty.
    fn next_job(&self) -> Option<Box<dyn Task>> {
        let mut state = self.lock();
        loop {
            // Checked before taking a job: a surplus worker leaves queued jobs to the others.
            if state.live > state.target {
                state.live -= 1;
                return None;
            }
            if let Some(job) = state.queue.pop_front() {
                state.running += 1;
                drop(state);
                self.space.notify_one();
                return Some(job);
            }
            if !state.open {
                state.live -= 1;
                return None;
            }
            // Idle workers park here indefinitely: that is what a long-lived worker is for.
            // Submit, resize and shutdown all notify.
            state = self.work.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn finished(&self, job_panicked: bool) {
        let mut state = self.lock();
        state.running -= 1;
        state.completed += 1;
        if job_panicked {
            state.panicked += 1;
        }
    }
}

thread_local! {
    /// The pool (its `Inner`'s address) whose worker this thread is; 0 elsewhere.
    static IN_WORKER: Cell<usize> = const { Cell::new(0) };
}

/// One worker thread's life.
fn work(inner: &Arc<Inner>) {
    IN_WORKER.with(|w| w.set(Arc::as_ptr(inner) as usize));
    let mut client: Option<Checkout> = None;
    while let Some(mut job) = inner.next_job() {
        let checkout = match client.take() {
            Some(c) => Some(c),
            None => match inner.pool.checkout() {
                Ok(c) => Some(c),
                Err(e) => {
                    // The job gets the checkout error rather than waiting unboundedly for a
                    // client; the worker tries again for the next one.
                    job.fail(e);
                    None
                }
            },
        };
        let mut job_panicked = false;
        if let Some(mut checkout) = checkout {
            job_panicked = job.execute(&checkout);
            if job_panicked {
                // The client may hold a half-sent request: drop it, never return it dirty.
                checkout.discard();
            } else {
                client = Some(checkout);
            }
        }
        // Bookkeeping first, then the handle: whoever waits on it sees the pool (and the
        // client pool) already account for the job.
        inner.finished(job_panicked);
        job.deliver();
    }
}
