//! `ClientPool`: clients created lazily, checked out r2d2-style, returned LIFO on drop;
//! thread-local access; scoped workers.

use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::config::PoolConfig;
use crate::error::{Error, ErrorKind};
use crate::events::CheckoutEvent;
use crate::hedge::threads::Stopper;
use crate::metrics::{PoolState, Stats};
use crate::shared::Shared;
#[cfg(feature = "fuzzing")]
use crate::transport;

struct Slots {
    // LIFO: the most recently returned client has the warmest connections.
    idle: Vec<Client>,
    created: usize,
    waiting: usize,
}

struct PoolInner {
    id: u64,
    shared: Arc<Shared>,
    slots: Mutex<Slots>,
    returned: Condvar,
    /// Ends the pool's hedge threads with the pool.
    _hedges: Option<Stopper>,
}

/// A pool of [`Client`]s, one per worker thread, checked out and returned like r2d2
/// connections. Cheap to clone (an `Arc`), `Send + Sync`: share it between threads freely.
///
/// # Examples
///
/// ```no_run
/// use http_sentinel::{ClientPool, PoolConfig};
///
/// let pool = ClientPool::new(PoolConfig::builder().max_clients(8).build())?;
/// let results = pool.scope(8, |worker| {
///     worker.get("http://127.0.0.1:8080/").send()?.text()
/// });
/// for r in results {
///     println!("{:?}", r?);
/// }
/// # Ok::<(), http_sentinel::Error>(())
/// ```
#[derive(Clone)]
pub struct ClientPool {
    inner: Arc<PoolInner>,
}

impl fmt::Debug for ClientPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientPool")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

impl ClientPool {
    /// Creates a pool. No client (and no connection) is created until the first checkout.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] when an extra root certificate or the proxy URL is invalid.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, ErrorKind, PoolConfig, Proxy};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert_eq!(pool.state().clients, 0); // nothing created yet
    ///
    /// let bad = PoolConfig::builder().add_root_certificate(b"not a certificate").build();
    /// let err = ClientPool::new(bad).unwrap_err();
    /// assert!(matches!(err.kind(), ErrorKind::InvalidConfig(_)));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn new(config: PoolConfig) -> Result<ClientPool, Error> {
        let shared = Arc::new(Shared::new(config)?);
        Ok(ClientPool {
            inner: Arc::new(PoolInner {
                id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
                _hedges: shared.hedge_threads.as_ref().map(|t| t.stopper()),
                shared,
                slots: Mutex::new(Slots {
                    idle: Vec::new(),
                    created: 0,
                    waiting: 0,
                }),
                returned: Condvar::new(),
            }),
        })
    }

    /// A pool whose clients talk to an in-memory scripted peer instead of the network: each
    /// new connection gets the next of `responses`. Returns the pool and a way to read what was
    /// written on each connection. For fuzzing only.
    #[cfg(feature = "fuzzing")]
    #[doc(hidden)]
    pub fn scripted(
        config: PoolConfig,
        responses: Vec<Vec<u8>>,
    ) -> Result<(ClientPool, impl Fn() -> Vec<Vec<u8>>), Error> {
        let pool = ClientPool::new(config)?;
        let script = Arc::new(transport::scripted::Script {
            responses: Mutex::new(responses.into()),
            written: Mutex::new(Vec::new()),
        });
        let mut inner = Arc::try_unwrap(pool.inner).map_err(|_| Error::new(ErrorKind::Other))?;
        let mut shared = Arc::try_unwrap(inner.shared).map_err(|_| Error::new(ErrorKind::Other))?;
        shared.script = Some(script.clone());
        inner.shared = Arc::new(shared);
        let written = move || script.written.lock().map(|w| w.clone()).unwrap_or_default();
        Ok((
            ClientPool {
                inner: Arc::new(inner),
            },
            written,
        ))
    }

    /// The pool's configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().max_clients(3).build())?;
    /// assert_eq!(pool.config().max_clients(), 3);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn config(&self) -> &PoolConfig {
        &self.inner.shared.config
    }

    /// Checks out a client, waiting up to the configured checkout timeout for one to be free.
    /// The client returns to the pool when the [`Checkout`] is dropped.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PoolTimeout`] saying how long it waited.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// assert_eq!(pool.state().checked_out, 1);
    /// drop(client);
    /// assert_eq!(pool.state().idle, 1);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn checkout(&self) -> Result<Checkout, Error> {
        self.checkout_timeout(self.config().checkout_timeout)
    }

    /// Checks out a client, waiting up to `timeout` (zero: not at all) instead of the
    /// configured checkout timeout.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PoolTimeout`] saying how long it waited.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().max_clients(1).build())?;
    /// let held = pool.checkout_timeout(Duration::from_millis(10))?;
    /// let err = pool.checkout_timeout(Duration::from_millis(10)).unwrap_err();
    /// assert!(err.is_pool_timeout());
    /// drop(held);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn checkout_timeout(&self, timeout: Duration) -> Result<Checkout, Error> {
        let start = Instant::now();
        let mut slots = self.inner.lock();
        let mut waited_once = false;
        loop {
            if let Some(client) = self.take(&mut slots) {
                drop(slots);
                self.record_checkout(start.elapsed(), waited_once, false);
                return Ok(self.guard(client));
            }
            let waited = start.elapsed();
            let Some(left) = timeout.checked_sub(waited).filter(|d| !d.is_zero()) else {
                drop(slots);
                self.record_checkout(waited, true, true);
                return Err(Error::new(ErrorKind::PoolTimeout(waited)));
            };
            waited_once = true;
            slots.waiting += 1;
            let (s, _) = self
                .inner
                .returned
                .wait_timeout(slots, left)
                .unwrap_or_else(|p| p.into_inner());
            slots = s;
            slots.waiting -= 1;
        }
    }

    /// Checks out a client if one is free (or may be created) right now; never blocks.
    /// Returns `None` when every client is checked out.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().max_clients(1).build())?;
    /// let first = pool.try_checkout();
    /// assert!(first.is_some());
    /// assert!(pool.try_checkout().is_none()); // the only client is out
    /// drop(first);
    /// assert!(pool.try_checkout().is_some());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn try_checkout(&self) -> Option<Checkout> {
        let client = self.take(&mut self.inner.lock())?;
        self.record_checkout(Duration::ZERO, false, false);
        Some(self.guard(client))
    }

    fn record_checkout(&self, waited: Duration, notify: bool, timed_out: bool) {
        let shared = &self.inner.shared;
        if timed_out {
            shared.metrics.record_checkout_timeout(waited);
        } else {
            shared.metrics.record_checkout(waited);
        }
        if let (true, Some(h)) = (notify, shared.events()) {
            h.on_checkout_wait(&CheckoutEvent { waited, timed_out });
        }
    }

    /// A snapshot of the pool's metrics: calls, attempts, failures by kind, retries, breaker
    /// rejections, latency percentiles, connection reuse, per host, plus the pool's state and
    /// breaker states. Sums every client's counters; meant for scrapes and periodic logs.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let stats = pool.stats();
    /// assert_eq!(stats.calls(), 0);
    /// assert!(stats.to_prometheus().contains("http_sentinel_pool_clients"));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn stats(&self) -> Stats {
        let shared = &self.inner.shared;
        let mut stats = shared.metrics.snapshot(self.state());
        stats.set_breakers(shared.breakers.states());
        let limits = shared.concurrency_limits().into_iter();
        stats.set_concurrency(limits.map(|(host, l)| (host, l.limit, l.in_flight)));
        stats
    }

    fn take(&self, slots: &mut MutexGuard<'_, Slots>) -> Option<Client> {
        if let Some(c) = slots.idle.pop() {
            return Some(c);
        }
        if slots.created < self.config().max_clients {
            slots.created += 1;
            // Creating an agent allocates but does no I/O: cheap enough under the lock.
            return Some(Client::new(self.inner.shared.clone()));
        }
        None
    }

    fn guard(&self, client: Client) -> Checkout {
        Checkout {
            client: Some(client),
            pool: self.inner.clone(),
        }
    }

    /// The pool's current state: clients created, idle and checked out, and threads waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().max_clients(4).build())?;
    /// let (a, b) = (pool.checkout()?, pool.checkout()?);
    /// drop(a);
    /// let s = pool.state();
    /// assert_eq!((s.clients, s.idle, s.checked_out, s.waiting, s.max_clients), (2, 1, 1, 0, 4));
    /// drop(b);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn state(&self) -> PoolState {
        let slots = self.inner.lock();
        PoolState {
            clients: slots.created,
            idle: slots.idle.len(),
            checked_out: slots.created - slots.idle.len(),
            waiting: slots.waiting,
            max_clients: self.config().max_clients,
        }
    }

    /// Runs `f` with this thread's client of this pool: checked out on the thread's first
    /// call and kept until the thread ends (or [`release_local`](ClientPool::release_local)),
    /// for code that cannot pass a client around (callbacks, thread pools you do not own).
    ///
    /// Each thread that calls it holds one client, so a pool needs `max_clients` at least the
    /// number of such threads; beyond that, callers wait up to the checkout timeout. A nested
    /// call on the same thread gets the same client: a thread holds one client per pool. Only
    /// a call from inside one of that client's calls (an [`EventHandler`](crate::EventHandler)
    /// method) gets another client, checked out for the nested call alone.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PoolTimeout`] when no client could be checked out.
    ///
    /// # Panics
    ///
    /// If `f` panics; the panic goes on unwinding, and the thread's client is discarded
    /// rather than kept or returned to the pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let first = pool.with_client(|c| c as *const _ as usize)?;
    /// let again = pool.with_client(|c| c as *const _ as usize)?;
    /// assert_eq!(first, again); // the same client for the whole thread
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn with_client<R>(&self, f: impl FnOnce(&Client) -> R) -> Result<R, Error> {
        let id = self.inner.id;
        let held = LOCAL
            .try_with(|l| l.borrow().iter().find(|c| c.pool.id == id).cloned())
            .ok()
            .flatten();
        let checkout = match held {
            // Mid-call (an event handler of that very client): a client of its own, for now.
            Some(c) if c.in_call() => {
                let own = self.checkout()?;
                return Ok(f(&own));
            }
            Some(c) => c,
            None => {
                let c = Rc::new(self.checkout()?);
                // Held before `f` runs, so that a nested call finds it instead of checking
                // out a second client that later calls would alternate with.
                let _ = LOCAL.try_with(|l| l.borrow_mut().push(Rc::clone(&c)));
                c
            }
        };
        let _unwinding = DiscardOnPanic(&checkout);
        Ok(f(&checkout))
    }

    /// Returns this thread's [`with_client`](ClientPool::with_client) client to the pool now
    /// rather than when the thread ends. Returns whether the thread held one.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// pool.with_client(|_client| ())?;
    /// assert_eq!(pool.state().checked_out, 1); // held by this thread
    /// assert!(pool.release_local());
    /// assert_eq!(pool.state().checked_out, 0);
    /// assert!(!pool.release_local()); // nothing left to release
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn release_local(&self) -> bool {
        let id = self.inner.id;
        LOCAL
            .try_with(|l| {
                let mut l = l.borrow_mut();
                let at = l.iter().position(|c| c.pool.id == id);
                at.map(|at| l.swap_remove(at)).is_some()
            })
            .unwrap_or(false)
    }

    /// Runs `workers` scoped threads, each owning a checked-out client and a stable id
    /// (`0..workers`), and returns each worker's result in id order, once every worker has
    /// finished. Workers beyond `max_clients` wait for a client like any checkout.
    ///
    /// Built on [`std::thread::scope`], so `f` may borrow from the caller's stack.
    ///
    /// # Errors
    ///
    /// Each worker's result is an `Err` of its own, the others are unaffected:
    /// [`ErrorKind::Panicked`] when `f` panicked (its client is discarded, never returned
    /// dirty), [`ErrorKind::PoolTimeout`] when the worker got no client within the checkout
    /// timeout, [`ErrorKind::Other`] when its thread could not be spawned. `f` never runs for
    /// a worker without a client. A panic in `f` does not propagate.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let ids = pool.scope(4, |worker| worker.id());
    /// let ids: Vec<usize> = ids.into_iter().collect::<Result<_, _>>()?;
    /// assert_eq!(ids, [0, 1, 2, 3]);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn scope<R, F>(&self, workers: usize, f: F) -> Vec<Result<R, Error>>
    where
        F: Fn(&mut ScopedClient) -> R + Sync,
        R: Send,
    {
        let f = &f;
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|id| {
                    std::thread::Builder::new()
                        .name(format!("sentinel-worker-{id}"))
                        .spawn_scoped(s, move || self.run_scoped(id, f))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| match h {
                    Ok(h) => h.join().unwrap_or_else(|p| Err(panicked(&*p))),
                    Err(e) => Err(Error::new(ErrorKind::Other).with_source(e)),
                })
                .collect()
        })
    }

    fn run_scoped<R>(
        &self,
        id: usize,
        f: &(impl Fn(&mut ScopedClient) -> R + Sync),
    ) -> Result<R, Error> {
        let mut worker = ScopedClient {
            id,
            checkout: self.checkout()?,
        };
        catch_unwind(AssertUnwindSafe(|| f(&mut worker))).map_err(|p| {
            worker.checkout.discard();
            panicked(&*p)
        })
    }
}

pub(crate) fn panicked(payload: &(dyn std::any::Any + Send)) -> Error {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into());
    Error::new(ErrorKind::Panicked(msg))
}

thread_local! {
    static LOCAL: RefCell<Vec<Rc<Checkout>>> = const { RefCell::new(Vec::new()) };
}

/// While `with_client`'s `f` runs: if it panics, the thread's client is discarded and let go,
/// even when an outer `f` catches the panic and keeps the client for a while.
struct DiscardOnPanic<'a>(&'a Rc<Checkout>);

impl Drop for DiscardOnPanic<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        self.0.discard_on_return();
        let _ = LOCAL.try_with(|l| l.borrow_mut().retain(|c| !Rc::ptr_eq(c, self.0)));
    }
}

impl PoolInner {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        // Pool bookkeeping stays consistent even if a thread panicked while holding the lock:
        // every critical section is a few field updates.
        crate::sync::lock(&self.slots)
    }
}

/// A checked-out [`Client`]: derefs to it, and returns it to the pool when dropped. A client
/// dropped during a panic, or whose connection state is suspect, is discarded instead.
///
/// # Examples
///
/// ```no_run
/// use http_sentinel::{ClientPool, PoolConfig};
///
/// let pool = ClientPool::new(PoolConfig::default())?;
/// let client = pool.checkout()?;
/// let status = client.get("http://127.0.0.1:8080/").send()?.status();
/// println!("{status}");
/// drop(client); // back to the pool, connections kept warm
/// # Ok::<(), http_sentinel::Error>(())
/// ```
pub struct Checkout {
    client: Option<Client>,
    pool: Arc<PoolInner>,
}

impl Checkout {
    /// Drops the client instead of returning it (its connections close) when this `Checkout`
    /// is dropped; the pool creates a fresh one when needed.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let mut client = pool.checkout()?;
    /// client.discard();
    /// drop(client);
    /// assert_eq!(pool.state().clients, 0); // not returned: gone
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn discard(&mut self) {
        if let Some(c) = &self.client {
            c.discard_on_return();
        }
    }
}

impl fmt::Debug for Checkout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Checkout").field(&self.client).finish()
    }
}

impl Deref for Checkout {
    type Target = Client;

    fn deref(&self) -> &Client {
        // Only `Drop` takes the client out.
        self.client.as_ref().expect("client present until drop")
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let dirty = std::thread::panicking() || client.should_discard();
        let mut slots = self.pool.lock();
        if dirty {
            slots.created -= 1;
            drop(slots);
            drop(client);
        } else {
            slots.idle.push(client);
            drop(slots);
        }
        self.pool.returned.notify_one();
    }
}

/// The client lent to one of [`ClientPool::scope`]'s workers: a stable worker id and its own
/// checked-out client (it derefs to [`Client`]). Not related to [`WorkerPool`](crate::WorkerPool).
#[derive(Debug)]
pub struct ScopedClient {
    id: usize,
    checkout: Checkout,
}

impl ScopedClient {
    /// The worker's id, `0..workers`, stable for the scope.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let shards = ["a", "b", "c"];
    /// let picked = pool.scope(shards.len(), |worker| shards[worker.id()]);
    /// let picked: Vec<&str> = picked.into_iter().collect::<Result<_, _>>()?;
    /// assert_eq!(picked, shards);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn id(&self) -> usize {
        self.id
    }
}

impl Deref for ScopedClient {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.checkout
    }
}
