//! Request metrics with near-zero cost on the hot path.
//!
//! # Sharding
//!
//! Recording is sharded. Every `Client` owns a `Recorder`, and each (client, host) pair gets its
//! own cache-padded block of counters (`HostCounters`). Recording a request is one hash lookup in
//! the client's local map followed by a few relaxed atomic adds on memory no other worker thread
//! writes: no lock, no allocation, no shared cache line (the padding keeps two clients' blocks
//! off the same line, so they never false-share). Reading goes the other way:
//! `Registry::snapshot` walks every shard ever registered and sums them into a [`Stats`], which
//! is a plain value that can be printed ([`Stats`] implements `Display`), exported
//! ([`Stats::to_prometheus`]) or diffed against an earlier snapshot ([`Stats::delta`]). Snapshots
//! are meant for scrapes and periodic logging, not for every request.
//!
//! # What is counted
//!
//! Two families are kept apart. *Calls* are counted once each, by how they ended: with a final
//! response, by its [`StatusClass`], or with an error, by its `ErrorClass`; a call *succeeded*
//! when it ended with a `2xx` or `3xx` response, so the success rate never counts a `5xx`.
//! *Attempts* are counted one per request sent, and with them every response received, by
//! status class, including the responses that were then retried or redirected.
//!
//! Every per-host counter is one entry of the list in `counters.rs`, from which the counter
//! storage, the snapshot arithmetic, the getters, the Prometheus families and the table columns
//! are all generated.
//!
//! # Latencies
//!
//! Latencies are kept in log-linear histograms over microseconds: values below 16 µs are exact,
//! above that every power of two is split into 8 linear sub-buckets, so a reported quantile is at
//! most 12.5% above the true value (and never above the exact maximum, which is tracked
//! separately). Values of 2^37 µs (about 38 hours) and more share one overflow bucket.
//!
//! Counters only ever grow while a pool lives; the figures for an interval come from
//! [`Stats::delta`].
//!
//! # Files
//!
//! `histogram.rs` (bucket layout, histograms, [`LatencySummary`]), `status_class.rs`
//! ([`StatusClass`]), `counters.rs` (the counter list, `HostCounters`, the record methods),
//! `registry.rs` (`Registry`, `Recorder`, the shards), `stats.rs` ([`Stats`], [`HostStats`],
//! [`PoolState`]), `prometheus.rs` (exposition), `otel.rs` (OpenTelemetry's HTTP client metrics) and `table.rs` (the `Display` table).

mod counters;
mod histogram;
pub mod otel;
mod prometheus;
mod registry;
mod stats;
mod status_class;
mod table;

pub use histogram::LatencySummary;
pub use stats::{HostStats, PoolState, Stats};
pub use status_class::StatusClass;

pub(crate) use counters::{CallRecord, HostCounters};
pub(crate) use registry::{Recorder, Registry};
