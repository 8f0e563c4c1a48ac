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

/// The `http` crate's types ([`StatusCode`](http::StatusCode), [`HeaderName`](http::HeaderName),
/// [`Uri`](http::Uri), ...), re-exported so callers need not depend on it themselves.
pub use ureq::http;

mod breaker;
mod call;
mod client;
mod config;
mod engine;
mod error;
mod events;
mod fanout;
mod job;
mod metrics;
mod pool;
mod redirect;
mod request;
mod response;
mod shared;
mod url;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use redirect::{fuzz_resolve, fuzz_same_origin};
mod retry;
mod transport;
mod workers;

pub use breaker::{
    default_breaker_failure, Admission, AttemptOutcome, BreakerConfig, BreakerState, Breakers,
    CircuitBreaker, FailurePredicate, Transition,
};
pub use client::Client;
pub use config::{PoolConfig, PoolConfigBuilder, Proxy};
pub use error::{ConnectFailure, Error, ErrorClass, ErrorKind, TimeoutPhase, TlsFailure};
pub use events::{
    AttemptEvent, BreakerEvent, CheckoutEvent, EventHandler, RetryEvent, RetryReason,
    StaleReplayEvent,
};
pub use fanout::FanOut;
pub use job::{JobHandle, SubmitError, UnstartedJob};
pub use metrics::{HostStats, LatencySummary, PoolState, Stats};
pub use pool::{Checkout, ClientPool, ScopedClient};
pub use request::RequestBuilder;
pub use response::Response;
pub use retry::{
    parse_retry_after, Backoff, Jitter, RetryBudget, RetryDecision, RetryEngine, RetryError,
    RetryPolicy, StopReason,
};
pub use url::redact_url;
pub use workers::{WorkerPool, WorkerPoolBuilder, WorkerPoolState};

/// The README's examples, compiled as doc tests so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
