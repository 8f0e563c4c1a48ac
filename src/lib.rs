//! # http-sentinel
//!
//! A blocking, runtime-free HTTP client for plain threads, command-line programs and non-async
//! services. Each worker thread owns its own [`Client`] (one `ureq` agent with its own
//! connections), checked out of a [`ClientPool`]; the pool shares only the policy state that
//! must be global.
//!
//! ```no_run
//! use http_sentinel::{ClientPool, PoolConfig};
//!
//! let pool = ClientPool::new(PoolConfig::default())?;
//! let client = pool.checkout()?;
//! let body = client.get("http://127.0.0.1:8080/").send()?.text()?;
//! println!("{body}");
//! # Ok::<(), http_sentinel::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod breaker;
mod client;
mod config;
mod error;
mod events;
mod fanout;
mod job;
mod metrics;
mod pool;
mod redirect;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use redirect::{fuzz_resolve, fuzz_same_origin};
mod retry;
mod transport;
mod workers;

pub use breaker::{Admission, BreakerConfig, BreakerState, Breakers, CircuitBreaker, Transition};
pub use client::{redact_url, Client, RequestBuilder, Response};
pub use config::{
    default_breaker_failure, AttemptOutcome, FailurePredicate, PoolConfig, PoolConfigBuilder, Proxy,
};
pub use error::{ConnectFailure, Error, ErrorClass, ErrorKind, TimeoutPhase, TlsFailure};
pub use events::{
    AttemptEvent, BreakerEvent, CheckoutEvent, EventHandler, RetryEvent, RetryReason,
    StaleReplayEvent,
};
pub use fanout::FanOut;
pub use job::{JobHandle, SubmitError, UnstartedJob};
pub use metrics::{HostStats, LatencySummary, PoolState, Stats, StatusClass};
pub use pool::{Checkout, ClientPool, Worker};
pub use retry::{
    parse_retry_after, Backoff, Jitter, RetryBudget, RetryDecision, RetryEngine, RetryError,
    RetryPolicy, StopReason,
};
pub use workers::{WorkerPool, WorkerPoolBuilder, WorkerPoolState};

/// The README's examples, compiled as doc tests so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
