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

mod client;
mod config;
mod error;
mod pool;
mod redirect;
mod transport;

pub use client::{Client, RequestBuilder, Response};
pub use config::{PoolConfig, PoolConfigBuilder, Proxy};
pub use error::{ConnectFailure, Error, ErrorKind, TimeoutPhase, TlsFailure};
pub use pool::{Checkout, ClientPool, PoolState, Worker};
