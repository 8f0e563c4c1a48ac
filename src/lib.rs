#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The `http` crate's types ([`StatusCode`](http::StatusCode), [`HeaderName`](http::HeaderName),
/// [`Uri`](http::Uri), ...), re-exported so callers need not depend on it themselves.
pub use ureq::http;

// The layering (which module may use which) is README.md's module table; tests/architecture.rs
// fails on an import cycle. Modules users reach into are public; the root re-exports the names
// they type every day.
pub mod breaker;
mod call;
mod client;
pub mod concurrency;
mod config;
mod cookies;
mod decode;
mod dns;
mod download;
mod engine;
pub mod error;
pub mod events;
mod fanout;
pub mod hedge;
mod identity;
mod job;
pub mod metrics;
pub mod multipart;
pub mod pacing;
mod pool;
mod reconnect;
mod redirect;
mod request;
mod request_id;
mod response;
pub mod retry;
mod shared;
pub mod sse;
mod stream;
mod sync;
mod target;
pub mod telemetry;
mod transport;
mod url;
pub mod workers;

pub use breaker::BreakerConfig;
pub use client::Client;
pub use concurrency::AdaptiveLimit;
pub use config::{PoolConfig, PoolConfigBuilder, Proxy};
/// The `cookie_store` crate the jar is built on (feature `cookies`), re-exported for its
/// [`CookieStore`](cookie_store::CookieStore) type in [`CookieJar::lock`].
#[cfg(feature = "cookies")]
pub use cookie_store;
#[cfg(feature = "cookies")]
pub use cookies::CookieJar;
pub use dns::Resolver;
pub use error::{Error, ErrorKind};
pub use events::EventHandler;
pub use fanout::FanOut;
pub use hedge::{HedgeDelay, HedgePolicy};
pub use identity::Identity;
pub use metrics::{HostStats, Stats};
pub use pacing::Pacing;
pub use pool::{Checkout, ClientPool, ScopedClient};
pub use reconnect::EventSource;
pub use redirect::RedirectHop;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use redirect::{fuzz_resolve, fuzz_same_origin};
pub use request::RequestBuilder;
pub use response::Response;
pub use retry::RetryPolicy;
pub use stream::Events;
pub use url::redact_url;
pub use workers::WorkerPool;
