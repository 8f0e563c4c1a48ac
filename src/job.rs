//! A job queued on a [`WorkerPool`](crate::WorkerPool): the type-erased task a worker runs,
//! the [`JobHandle`] its submitter waits on, and what comes back when it is not run.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::sync::lock;

use crate::client::Client;
use crate::error::{Error, ErrorKind};
use crate::pool::panicked;

/// Wraps `f` as a task for the queue, with the handle its result will reach.
pub(crate) fn pending<F, R>(f: F) -> (Box<dyn Task>, JobHandle<R>)
where
    F: FnOnce(&Client) -> R + Send + 'static,
    R: Send + 'static,
{
    let slot = Arc::new(Slot {
        value: Mutex::new(None),
        ready: Condvar::new(),
    });
    let task = Box::new(Job {
        f: Some(f),
        outcome: None,
        reply: Reply(Some(slot.clone())),
    });
    (task, JobHandle { slot })
}

/// A queued job with its result slot, type-erased so one queue holds jobs of any result type.
/// Dropped before `deliver`, it gives its handle [`ErrorKind::Cancelled`].
pub(crate) trait Task: Send {
    /// Runs the job on `client` and keeps its value or panic for `deliver`. Returns whether it
    /// panicked.
    fn execute(&mut self, client: &Client) -> bool;
    /// Keeps `error` for `deliver` instead of running the job.
    fn fail(&mut self, error: Error);
    /// Hands what `execute` or `fail` kept to the job's handle.
    fn deliver(self: Box<Self>);
}

struct Job<F, R> {
    f: Option<F>,
    outcome: Option<Result<R, Error>>,
    reply: Reply<R>,
}

impl<F, R> Task for Job<F, R>
where
    F: FnOnce(&Client) -> R + Send,
    R: Send,
{
    fn execute(&mut self, client: &Client) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(client)));
        let job_panicked = result.is_err();
        self.outcome = Some(result.map_err(|payload| panicked(&*payload)));
        job_panicked
    }

    fn fail(&mut self, error: Error) {
        self.f = None;
        self.outcome = Some(Err(error));
    }

    fn deliver(self: Box<Self>) {
        let Job { outcome, reply, .. } = *self;
        if let Some(outcome) = outcome {
            reply.send(outcome);
        }
    }
}

struct Slot<R> {
    value: Mutex<Option<Result<R, Error>>>,
    ready: Condvar,
}

/// The sending side of a job's result: delivers exactly once, and [`ErrorKind::Cancelled`] if
/// it is dropped without delivering (the job was dropped unstarted).
struct Reply<R>(Option<Arc<Slot<R>>>);

impl<R> Reply<R> {
    fn send(mut self, result: Result<R, Error>) {
        if let Some(slot) = self.0.take() {
            *lock(&slot.value) = Some(result);
            slot.ready.notify_all();
        }
    }
}

impl<R> Drop for Reply<R> {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            *lock(&slot.value) = Some(Err(Error::new(ErrorKind::Cancelled)));
            slot.ready.notify_all();
        }
    }
}

/// The result of a submitted job, to wait on.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use http_sentinel::{ClientPool, PoolConfig, WorkerPool};
///
/// let pool = ClientPool::new(PoolConfig::default())?;
/// let workers = WorkerPool::new(&pool, 1, 1)?;
/// let handle = workers.submit(|_| "done")?;
/// let value = match handle.wait_timeout(Duration::from_secs(5)) {
///     Ok(result) => result?,
///     Err(_still_running) => "still running",
/// };
/// assert_eq!(value, "done");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JobHandle<R> {
    slot: Arc<Slot<R>>,
}

impl<R> JobHandle<R> {
    /// Waits for the job's result. The job's HTTP calls are bounded by the pool's deadline;
    /// use [`wait_timeout`](Self::wait_timeout) when the job may do anything else that blocks.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Panicked`] when the job panicked, [`ErrorKind::Cancelled`] when it was
    /// dropped unstarted, [`ErrorKind::PoolTimeout`] when its worker could get no client.
    pub fn wait(self) -> Result<R, Error> {
        let mut value = lock(&self.slot.value);
        loop {
            if let Some(result) = value.take() {
                return result;
            }
            value = self
                .slot
                .ready
                .wait(value)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Waits up to `timeout` for the job's result: `Ok(result)` when it finished, `Err(self)`
    /// (the handle, to wait on again) when it had not.
    ///
    /// # Errors
    ///
    /// The handle back when the job did not finish in time.
    pub fn wait_timeout(self, timeout: Duration) -> Result<Result<R, Error>, JobHandle<R>> {
        let start = Instant::now();
        {
            let mut value = lock(&self.slot.value);
            loop {
                if let Some(result) = value.take() {
                    return Ok(result);
                }
                let left = timeout.saturating_sub(start.elapsed());
                if left.is_zero() {
                    break;
                }
                value = self
                    .slot
                    .ready
                    .wait_timeout(value, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        Err(self)
    }

    /// Whether the result is ready (a [`wait`](Self::wait) would return at once).
    pub fn is_finished(&self) -> bool {
        lock(&self.slot.value).is_some()
    }
}

impl<R> fmt::Debug for JobHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// A job taken out of the queue by [`WorkerPool::shutdown_now`](crate::WorkerPool::shutdown_now)
/// before it started. Run it with [`run`](Self::run) (its handle gets the result) or drop it
/// (its handle gets [`ErrorKind::Cancelled`]).
pub struct UnstartedJob(pub(crate) Box<dyn Task>);

impl UnstartedJob {
    /// Runs the job on `client` on this thread; its [`JobHandle`] gets the value, or
    /// [`ErrorKind::Panicked`] if it panicked. The panic does not propagate, but the client is
    /// marked suspect: its pool discards it instead of taking it back.
    pub fn run(mut self, client: &Client) {
        if self.0.execute(client) {
            client.discard_on_return();
        }
        self.0.deliver();
    }
}

impl fmt::Debug for UnstartedJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnstartedJob")
    }
}

/// Why a job was not queued; holds the job so the caller can run it elsewhere or retry.
pub enum SubmitError<F> {
    /// The queue was full (at once for `try_submit`, for the whole wait for `submit`).
    Full(F),
    /// The pool is shut down.
    ShutDown(F),
}

impl<F> SubmitError<F> {
    /// The job that was not queued.
    pub fn into_job(self) -> F {
        match self {
            SubmitError::Full(f) | SubmitError::ShutDown(f) => f,
        }
    }

    /// True when the queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, SubmitError::Full(_))
    }

    /// True when the pool is shut down.
    pub fn is_shut_down(&self) -> bool {
        matches!(self, SubmitError::ShutDown(_))
    }
}

impl<F> fmt::Debug for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubmitError::Full(_) => "Full(..)",
            SubmitError::ShutDown(_) => "ShutDown(..)",
        })
    }
}

impl<F> fmt::Display for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubmitError::Full(_) => "worker pool queue is full",
            SubmitError::ShutDown(_) => "worker pool is shut down",
        })
    }
}

impl<F> std::error::Error for SubmitError<F> {}
