//! OpenTelemetry's HTTP client metrics (semantic conventions 1.26+, stable part), kept when
//! [`PoolConfigBuilder::otel_metrics`](crate::PoolConfigBuilder::otel_metrics) is on and
//! rendered by [`Stats::to_prometheus`](crate::Stats::to_prometheus) under the names the
//! OpenTelemetry-to-Prometheus mapping gives them (dots become underscores, the unit `s`
//! becomes the suffix `_seconds`, the annotation `{connection}` is dropped):
//!
//! - `http.client.request.duration` (histogram, seconds, the convention's buckets 0.005 ... 10)
//!   as `http_client_request_duration_seconds`, one sample per request sent (each retry and
//!   redirect hop is its own request, as in the convention's spans), from the attempt's start
//!   to its response head or error. Attributes: `http.request.method` (the RFC 9110 methods
//!   and PATCH; any other is `_OTHER`), `server.address`, `server.port`,
//!   `http.response.status_code` (when a response came), `error.type` (the status code as a
//!   string for 4xx and 5xx, else the [`ErrorClass`] label such as `timeout` or `connect`, and
//!   `_OTHER` for an unclassified error), `url.scheme`, `network.protocol.version`.
//! - `http.client.open_connections` (up-down counter, so a Prometheus gauge) as
//!   `http_client_open_connections{http_connection_state="active"|"idle"}`, with
//!   `server.address`, `server.port`, `url.scheme`: every connection the pool's clients hold;
//!   one through a proxy counts under its target, not under the proxy.
//!
//! Each client records into its own shard (one uncontended lock per attempt; only a snapshot
//! takes it from another thread).

use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::sync::lock;

use ureq::http::Method;

use crate::error::ErrorClass;

/// The convention's bucket boundaries for `http.client.request.duration`, in seconds.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

pub(super) const BUCKET_LABELS: [&str; 14] = [
    "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1", "2.5", "5",
    "7.5", "10",
];

/// The `http.request.method` value of `method`: known methods as they are, any other `_OTHER`
/// (methods are case-sensitive: `get` is not `GET`).
pub(crate) fn method_attribute(method: &Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|k| *k == method.as_str())
        .unwrap_or("_OTHER")
}

/// The `error.type` value of an error of `class`.
pub(crate) fn error_type(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Other => "_OTHER",
        class => class.as_str(),
    }
}

/// The attributes of one `http.client.request.duration` series, with its histogram.
///
/// # Examples
///
/// ```
/// use http_sentinel::Stats;
///
/// let stats = Stats::default(); // normally `pool.stats()`, with `otel_metrics(true)`
/// for s in stats.otel_request_durations() {
///     println!("{} {}:{} -> {:?} {:?}: {}", s.method(), s.server_address(), s.server_port(),
///         s.status_code(), s.error_type(), s.count());
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RequestDurationSeries {
    pub(crate) key: DurationKey,
    pub(crate) buckets: [u64; 14],
    pub(crate) count: u64,
    pub(crate) sum: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct DurationKey {
    pub(crate) address: String,
    pub(crate) port: u16,
    pub(crate) scheme: &'static str,
    pub(crate) method: &'static str,
    pub(crate) status: Option<u16>,
    pub(crate) error: Option<&'static str>,
    pub(crate) version: &'static str,
}

impl RequestDurationSeries {
    /// `http.request.method`.
    pub fn method(&self) -> &str {
        self.key.method
    }
    /// `server.address`.
    pub fn server_address(&self) -> &str {
        &self.key.address
    }
    /// `server.port`.
    pub fn server_port(&self) -> u16 {
        self.key.port
    }
    /// `http.response.status_code`, when a response was received.
    pub fn status_code(&self) -> Option<u16> {
        self.key.status
    }
    /// `error.type`, when the request ended with an error (a 4xx or 5xx status included).
    pub fn error_type(&self) -> Option<String> {
        match (self.key.error, self.key.status) {
            (Some(e), _) => Some(e.to_owned()),
            (None, Some(s)) if s >= 400 => Some(s.to_string()),
            _ => None,
        }
    }
    /// `url.scheme`.
    pub fn url_scheme(&self) -> &str {
        self.key.scheme
    }
    /// `network.protocol.version`.
    pub fn protocol_version(&self) -> &str {
        self.key.version
    }
    /// Requests recorded.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// Their total duration, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum
    }
    /// Requests per bucket of [`DURATION_BUCKETS`] (not cumulative).
    pub fn bucket_counts(&self) -> &[u64; 14] {
        &self.buckets
    }

    fn record(&mut self, secs: f64) {
        if let Some(i) = DURATION_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += secs;
    }

    fn absorb(&mut self, other: &RequestDurationSeries) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
    }

    fn saturating_sub(&self, earlier: &RequestDurationSeries) -> RequestDurationSeries {
        let mut out = self.clone();
        for (a, b) in out.buckets.iter_mut().zip(earlier.buckets) {
            *a = a.saturating_sub(b);
        }
        out.count = self.count.saturating_sub(earlier.count);
        out.sum = (self.sum - earlier.sum).max(0.0);
        out
    }
}

/// One `http.client.open_connections` pair (active and idle) of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenConnectionsSeries {
    pub(crate) key: ConnKey,
    pub(crate) active: u64,
    pub(crate) idle: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ConnKey {
    pub(crate) address: String,
    pub(crate) port: u16,
    pub(crate) scheme: &'static str,
}

impl OpenConnectionsSeries {
    /// `server.address`.
    pub fn server_address(&self) -> &str {
        &self.key.address
    }
    /// `server.port`.
    pub fn server_port(&self) -> u16 {
        self.key.port
    }
    /// `url.scheme`.
    pub fn url_scheme(&self) -> &str {
        self.key.scheme
    }
    /// Connections carrying a request now (`http.connection.state` = `active`).
    pub fn active(&self) -> u64 {
        self.active
    }
    /// Connections idle in a client's pool (`http.connection.state` = `idle`).
    pub fn idle(&self) -> u64 {
        self.idle
    }
}

/// The OpenTelemetry part of a [`Stats`](crate::Stats) snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct OtelSnapshot {
    pub(crate) durations: Vec<RequestDurationSeries>,
    pub(crate) open: Vec<OpenConnectionsSeries>,
}

impl OtelSnapshot {
    pub(crate) fn saturating_sub(&self, earlier: &OtelSnapshot) -> OtelSnapshot {
        let durations = self
            .durations
            .iter()
            .map(
                |now| match earlier.durations.iter().find(|e| e.key == now.key) {
                    Some(then) => now.saturating_sub(then),
                    None => now.clone(),
                },
            )
            .collect();
        OtelSnapshot {
            durations,
            open: self.open.clone(),
        }
    }
}

/// What one attempt records.
pub(crate) struct AttemptAttributes<'a> {
    pub(crate) method: &'static str,
    pub(crate) scheme: &'static str,
    pub(crate) address: &'a str,
    pub(crate) port: u16,
    pub(crate) status: Option<u16>,
    pub(crate) error: Option<&'static str>,
    pub(crate) version: &'static str,
}

impl AttemptAttributes<'_> {
    fn matches(&self, k: &DurationKey) -> bool {
        k.port == self.port
            && k.status == self.status
            && k.error == self.error
            && k.method == self.method
            && k.scheme == self.scheme
            && k.version == self.version
            && k.address == self.address
    }
}

/// One client's `http.client.request.duration` series.
#[derive(Debug, Default)]
pub(crate) struct DurationShard(Mutex<Vec<RequestDurationSeries>>);

impl DurationShard {
    pub(crate) fn record(&self, a: &AttemptAttributes<'_>, took: Duration) {
        let mut series = lock(&self.0);
        let secs = took.as_secs_f64();
        if let Some(s) = series.iter_mut().find(|s| a.matches(&s.key)) {
            return s.record(secs);
        }
        // A crawler meets unbounded hosts: past this many series a client's shard stops
        // adding new ones rather than grow without bound.
        if series.len() >= 4096 {
            return;
        }
        let mut s = RequestDurationSeries {
            key: DurationKey {
                address: a.address.to_owned(),
                port: a.port,
                scheme: a.scheme,
                method: a.method,
                status: a.status,
                error: a.error,
                version: a.version,
            },
            buckets: [0; 14],
            count: 0,
            sum: 0.0,
        };
        s.record(secs);
        series.push(s);
    }
}

/// One server's open connections.
#[derive(Debug, Default)]
pub(crate) struct ConnCount {
    open: AtomicI64,
    active: AtomicI64,
}

/// The state of one open connection in its server's [`ConnCount`]; counted out when dropped.
#[derive(Debug)]
pub(crate) struct ConnGauge {
    count: Arc<ConnCount>,
    active: bool,
}

impl ConnGauge {
    /// The connection carries a request.
    pub(crate) fn active(&mut self) {
        if !self.active {
            self.active = true;
            self.count.active.fetch_add(1, Relaxed);
        }
    }
    /// The connection is back in (or taken from) its client's pool.
    pub(crate) fn idle(&mut self) {
        if self.active {
            self.active = false;
            self.count.active.fetch_sub(1, Relaxed);
        }
    }
}

impl Drop for ConnGauge {
    fn drop(&mut self) {
        self.idle();
        self.count.open.fetch_sub(1, Relaxed);
    }
}

/// The pool's OpenTelemetry state: every client's duration shard and the open connections.
#[derive(Debug, Default)]
pub(crate) struct OtelRegistry {
    shards: Mutex<Vec<Arc<DurationShard>>>,
    conns: Mutex<Vec<(ConnKey, Arc<ConnCount>)>>,
}

impl OtelRegistry {
    /// A new client's shard. Shards live as long as the pool, so totals never go backwards.
    pub(crate) fn shard(&self) -> Arc<DurationShard> {
        let shard = Arc::new(DurationShard::default());
        lock(&self.shards).push(shard.clone());
        shard
    }

    /// Counts a connection just opened to `scheme://address:port`, active.
    pub(crate) fn opened(&self, scheme: &'static str, address: &str, port: u16) -> ConnGauge {
        let mut conns = lock(&self.conns);
        let count = match conns
            .iter()
            .find(|(k, _)| k.port == port && k.scheme == scheme && k.address == address)
        {
            Some((_, c)) => c.clone(),
            None => {
                let c = Arc::new(ConnCount::default());
                let key = ConnKey {
                    address: address.to_owned(),
                    port,
                    scheme,
                };
                conns.push((key, c.clone()));
                c
            }
        };
        drop(conns);
        count.open.fetch_add(1, Relaxed);
        count.active.fetch_add(1, Relaxed);
        ConnGauge {
            count,
            active: true,
        }
    }

    pub(crate) fn snapshot(&self) -> OtelSnapshot {
        let shards = lock(&self.shards).clone();
        let mut durations: Vec<RequestDurationSeries> = Vec::new();
        for shard in shards {
            for s in lock(&shard.0).iter() {
                match durations.iter_mut().find(|d| d.key == s.key) {
                    Some(d) => d.absorb(s),
                    None => durations.push(s.clone()),
                }
            }
        }
        durations.sort_by(|a, b| a.key.cmp(&b.key));
        let mut open: Vec<OpenConnectionsSeries> = lock(&self.conns)
            .iter()
            .map(|(key, c)| {
                let open = c.open.load(Relaxed).max(0);
                let active = c.active.load(Relaxed).clamp(0, open);
                OpenConnectionsSeries {
                    key: key.clone(),
                    active: active as u64,
                    idle: (open - active) as u64,
                }
            })
            .collect();
        open.sort_by(|a, b| a.key.cmp(&b.key));
        OtelSnapshot { durations, open }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_known_list_are_other() {
        assert_eq!(method_attribute(&Method::GET), "GET");
        assert_eq!(method_attribute(&Method::PATCH), "PATCH");
        assert_eq!(
            method_attribute(&Method::from_bytes(b"PURGE").unwrap()),
            "_OTHER"
        );
        assert_eq!(
            method_attribute(&Method::from_bytes(b"get").unwrap()),
            "_OTHER"
        );
        assert_eq!(error_type(ErrorClass::Timeout), "timeout");
        assert_eq!(error_type(ErrorClass::Other), "_OTHER");
    }

    #[test]
    fn durations_land_in_the_conventions_buckets_and_connections_count_out() {
        let reg = OtelRegistry::default();
        let shard = reg.shard();
        let a = AttemptAttributes {
            method: "GET",
            scheme: "http",
            address: "127.0.0.1",
            port: 80,
            status: Some(200),
            error: None,
            version: "1.1",
        };
        shard.record(&a, Duration::from_millis(5));
        shard.record(&a, Duration::from_millis(80));
        shard.record(&a, Duration::from_secs(11));
        let snap = reg.snapshot();
        let s = &snap.durations[0];
        assert_eq!(s.count(), 3);
        assert_eq!(s.buckets[0], 1, "5 ms is within le=0.005");
        assert_eq!(s.buckets[5], 1, "80 ms falls in (0.075, 0.1]");
        assert_eq!(s.buckets.iter().sum::<u64>(), 2, "11 s only in +Inf");
        let mut g = reg.opened("http", "127.0.0.1", 80);
        let g2 = reg.opened("http", "127.0.0.1", 80);
        g.idle();
        let open = &reg.snapshot().open[0];
        assert_eq!((open.active(), open.idle()), (1, 1));
        drop((g, g2));
        let open = &reg.snapshot().open[0];
        assert_eq!((open.active(), open.idle()), (0, 0));
    }
}
