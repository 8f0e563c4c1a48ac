//! Shared test support: the fault-injecting loopback server, and `scenario` to run a test
//! alone and check it leaves no socket open.

#![allow(dead_code)] // each test crate uses part of it

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use http_sentinel::{
    retry::Jitter, BreakerConfig, ClientPool, PoolConfig, PoolConfigBuilder, RetryPolicy,
};

pub mod coded;
pub mod gzip;
pub mod proxy;
pub mod server;
pub mod socks;

/// Backoff short and predictable enough for tests; 3 attempts.
pub fn fast() -> RetryPolicy {
    RetryPolicy::new()
        .with_base_delay(Duration::from_millis(5))
        .with_jitter(Jitter::None)
}

/// A pool configuration for fault scenarios: `deadline`, fast retries, no breaker (the
/// breaker tests configure their own).
pub fn config(deadline: Duration) -> PoolConfigBuilder {
    PoolConfig::builder()
        .deadline(deadline)
        .retry(fast())
        .breaker(BreakerConfig::disabled())
}

pub fn pool(config: PoolConfigBuilder) -> ClientPool {
    ClientPool::new(config.build()).unwrap()
}

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs one scenario alone (within its test binary) and checks that its sockets are all
/// closed once the scenario's server, pool and clients are dropped.
pub fn scenario(test: impl FnOnce()) {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let before = open_fds();
    test();
    let after = open_fds();
    assert_eq!(after, before, "file descriptors leaked by the scenario");
}

/// Open file descriptors of this process (`None` where `/proc` is not available).
pub fn open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|dir| dir.count())
}
