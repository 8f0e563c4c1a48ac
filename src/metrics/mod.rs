//! Request metrics with near-zero cost on the hot path.
//!
//! Recording is sharded. Every `Client` owns a `Recorder`, and each (client, host) pair gets its
//! own cache-padded block of counters (`HostCounters`). Recording a request is one hash lookup in
//! the client's local map followed by a few relaxed atomic adds on memory no other worker thread
//! writes: no lock, no allocation, no shared cache line. Reading goes the other way:
//! `Registry::snapshot` walks every shard ever registered and sums them into a [`Stats`], which
//! is a plain value that can be printed ([`Stats`] implements `Display`), exported
//! ([`Stats::to_prometheus`]) or diffed against an earlier snapshot ([`Stats::delta`]). Snapshots
//! are meant for scrapes and periodic logging, not for every request.
//!
//! Latencies are kept in log-linear histograms over microseconds: values below 16 µs are exact,
//! above that every power of two is split into 8 linear sub-buckets, so a reported quantile is at
//! most 12.5% above the true value (and never above the exact maximum, which is tracked
//! separately). Values of 2^37 µs (about 38 hours) and more share one overflow bucket.
//!
//! Counters only ever grow while a pool lives; the figures for an interval come from
//! [`Stats::delta`].

mod counters;
mod histogram;
mod prometheus;
mod registry;
mod stats;
mod table;

pub use histogram::LatencySummary;
pub use stats::{HostStats, PoolState, Stats};

pub(crate) use counters::{CallRecord, HostCounters};
pub(crate) use registry::{Recorder, Registry};
