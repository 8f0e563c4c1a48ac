//! [`Stats::to_prometheus`]: the Prometheus text exposition format.
//!
//! The per-host families come from the counter list ([`FAMILIES`]), in its order; the pool's
//! own figures and the breaker states follow.

use std::fmt::{self, Write as _};
use std::time::Duration;

use super::counters::{Family, Read, FAMILIES};
use super::histogram::HistogramSnapshot;
use super::otel::{OtelSnapshot, RequestDurationSeries, BUCKET_LABELS};
use super::stats::{HostStats, Stats};
use super::status_class::StatusClass;
use crate::breaker::BreakerState;
use crate::error::ErrorClass;

impl Stats {
    /// Renders the snapshot in the Prometheus text exposition format (version 0.0.4).
    ///
    /// Every metric is prefixed `http_sentinel_`; per-host series carry a `host` label. Calls
    /// and attempts are separate families:
    ///
    /// - `http_sentinel_calls_total{host}`: calls made; each ends in exactly one of
    ///   `http_sentinel_calls_with_status_total{host,class}` (by the class, `1xx` ... `5xx`, of
    ///   its final response) or `http_sentinel_calls_with_error_total{host,kind}` (by
    ///   [`ErrorClass`](crate::error::ErrorClass)). A success rate is
    ///   `calls_with_status_total{class=~"2xx|3xx"} / calls_total`.
    /// - `http_sentinel_attempts_total{host}` and `http_sentinel_responses_total{host,class}`:
    ///   every response received, per attempt, including the ones then retried or redirected.
    ///
    /// With [`otel_metrics`](crate::PoolConfigBuilder::otel_metrics) on, OpenTelemetry's
    /// `http_client_request_duration_seconds` and `http_client_open_connections` follow (see
    /// [`metrics::otel`](crate::metrics::otel)).
    ///
    /// `http_sentinel_connection_reuse_ratio` is left out until an attempt got a connection.
    /// Latency histograms use the fixed bounds 1 ms, 2.5 ms, 5 ms ... 10 s. They are derived
    /// from the finer internal buckets, whose edges are powers of two rather than decimal: a
    /// bound counts only the internal buckets that lie entirely below it, so a sample up to
    /// 12.5% below a bound may be counted in the next one (for example, exactly 1 ms falls in
    /// `le="0.0025"`). `_count` and `_sum` are exact.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::Stats;
    ///
    /// let text = Stats::default().to_prometheus(); // normally `pool.stats()`
    /// assert!(text.contains("# TYPE http_sentinel_pool_clients gauge\n"));
    /// assert!(text.contains("http_sentinel_pool_clients 0\n"));
    /// ```
    pub fn to_prometheus(&self) -> String {
        let mut out = Exposition::default();
        if !self.hosts.is_empty() {
            for family in FAMILIES {
                out.host_family(family, &self.hosts);
            }
        }
        if let Some(ratio) = self.reuse_ratio() {
            let name = "http_sentinel_connection_reuse_ratio";
            out.family(
                name,
                "gauge",
                "Share of the attempts that got a connection which reused one \
                 (1 - connections opened / attempts connected).",
            );
            out.sample(name, &[], ratio);
        }
        out.pool(self);
        out.breakers(&self.breakers);
        out.concurrency(&self.hosts);
        out.otel(&self.otel);
        out.text
    }
}

/// Prometheus `le` bounds for latency histograms: the bound and its label text.
const PROMETHEUS_BOUNDS: [(Duration, &str); 13] = [
    (Duration::from_micros(1_000), "0.001"),
    (Duration::from_micros(2_500), "0.0025"),
    (Duration::from_micros(5_000), "0.005"),
    (Duration::from_millis(10), "0.01"),
    (Duration::from_millis(25), "0.025"),
    (Duration::from_millis(50), "0.05"),
    (Duration::from_millis(100), "0.1"),
    (Duration::from_millis(250), "0.25"),
    (Duration::from_millis(500), "0.5"),
    (Duration::from_secs(1), "1"),
    (Duration::from_millis(2_500), "2.5"),
    (Duration::from_secs(5), "5"),
    (Duration::from_secs(10), "10"),
];

/// Builder for the text exposition format.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    /// One family of the counter list, with a series (or several) per host.
    fn host_family(&mut self, family: &Family, hosts: &[HostStats]) {
        let name = family.name;
        let kind = match family.read {
            Read::Latency(_) => "histogram",
            _ => "counter",
        };
        self.family(name, kind, family.help);
        for h in hosts {
            let (host, c) = (h.host.as_str(), &h.counters);
            match family.read {
                Read::Scalar(get) => self.sample(name, &[("host", host)], get(c)),
                Read::ByStatus(get) => {
                    for &class in StatusClass::ALL {
                        let labels = [("host", host), ("class", class.as_str())];
                        self.sample(name, &labels, get(c)[class.index()]);
                    }
                }
                Read::ByError(get) => {
                    for &class in ErrorClass::ALL {
                        let labels = [("host", host), ("kind", class.as_str())];
                        self.sample(name, &labels, get(c)[class.index()]);
                    }
                }
                Read::Latency(get) => self.histogram(name, Some(host), get(c)),
            }
        }
    }

    /// The pool's gauges, checkout counters and checkout wait histogram.
    fn pool(&mut self, stats: &Stats) {
        let pool = stats.pool;
        for (name, help, value) in [
            (
                "http_sentinel_pool_clients",
                "Clients owned by the pool, idle or checked out.",
                pool.clients,
            ),
            (
                "http_sentinel_pool_idle_clients",
                "Clients idle in the pool.",
                pool.idle,
            ),
            (
                "http_sentinel_pool_checked_out_clients",
                "Clients currently checked out.",
                pool.checked_out,
            ),
            (
                "http_sentinel_pool_waiting_threads",
                "Threads waiting to check out a client.",
                pool.waiting,
            ),
            (
                "http_sentinel_pool_max_clients",
                "Most clients the pool will create.",
                pool.max_clients,
            ),
        ] {
            self.family(name, "gauge", help);
            self.sample(name, &[], value);
        }
        for (name, help, value) in [
            (
                "http_sentinel_pool_checkouts_total",
                "Successful client checkouts.",
                stats.checkouts,
            ),
            (
                "http_sentinel_pool_checkout_timeouts_total",
                "Checkouts that gave up waiting for a client.",
                stats.checkout_timeouts,
            ),
        ] {
            self.family(name, "counter", help);
            self.sample(name, &[], value);
        }
        let name = "http_sentinel_pool_checkout_wait_seconds";
        self.family(
            name,
            "histogram",
            "Time spent waiting in checkout, successful or timed out.",
        );
        self.histogram(name, None, &stats.checkout_wait);
    }

    /// `1` per host whose breaker is open, `0` for the others; nothing without breakers.
    fn breakers(&mut self, breakers: &[(String, BreakerState)]) {
        if breakers.is_empty() {
            return;
        }
        let name = "http_sentinel_breaker_open";
        self.family(
            name,
            "gauge",
            "1 while the host's circuit breaker is open, else 0.",
        );
        for (host, state) in breakers {
            let open = u8::from(*state == BreakerState::Open);
            self.sample(name, &[("host", host.as_str())], open);
        }
    }

    /// The learnt concurrency limit and the attempts in flight of each host that has an
    /// adaptive limit; nothing without one.
    fn concurrency(&mut self, hosts: &[HostStats]) {
        let limited: Vec<(&str, (u32, u32))> = hosts
            .iter()
            .filter_map(|h| Some((h.host.as_str(), h.concurrency?)))
            .collect();
        if limited.is_empty() {
            return;
        }
        for (name, help, pick) in [
            (
                "http_sentinel_concurrency_limit",
                "The concurrency limit learnt for the host (attempts waiting for a response head).",
                (|(limit, _)| limit) as fn((u32, u32)) -> u32,
            ),
            (
                "http_sentinel_concurrency_in_flight",
                "Attempts to the host holding a slot of its concurrency limit.",
                |(_, in_flight)| in_flight,
            ),
        ] {
            self.family(name, "gauge", help);
            for &(host, c) in &limited {
                self.sample(name, &[("host", host)], pick(c));
            }
        }
    }

    /// Starts a metric family. Callers emit each family once, with all its samples right after.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        self.text.push_str("# HELP ");
        self.text.push_str(name);
        self.text.push(' ');
        for ch in help.chars() {
            match ch {
                '\\' => self.text.push_str("\\\\"),
                '\n' => self.text.push_str("\\n"),
                ch => self.text.push(ch),
            }
        }
        self.text.push_str("\n# TYPE ");
        self.text.push_str(name);
        self.text.push(' ');
        self.text.push_str(kind);
        self.text.push('\n');
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(key);
                self.text.push_str("=\"");
                for ch in value.chars() {
                    match ch {
                        '\\' => self.text.push_str("\\\\"),
                        '"' => self.text.push_str("\\\""),
                        '\n' => self.text.push_str("\\n"),
                        ch => self.text.push(ch),
                    }
                }
                self.text.push('"');
            }
            self.text.push('}');
        }
        // Writing into a String cannot fail.
        let _ = writeln!(self.text, " {value}");
    }

    fn histogram(&mut self, name: &str, host: Option<&str>, h: &HistogramSnapshot) {
        let bucket = format!("{name}_bucket");
        let with_le = |le| -> Vec<(&str, &str)> {
            host.map(|host| ("host", host))
                .into_iter()
                .chain([("le", le)])
                .collect()
        };
        for (bound, le) in PROMETHEUS_BOUNDS {
            self.sample(&bucket, &with_le(le), h.count_within(bound));
        }
        self.sample(&bucket, &with_le("+Inf"), h.count());
        let labels: Vec<(&str, &str)> = host.map(|host| ("host", host)).into_iter().collect();
        self.sample(&format!("{name}_sum"), &labels, h.sum().as_secs_f64());
        self.sample(&format!("{name}_count"), &labels, h.count());
    }
}

impl Exposition {
    /// The OpenTelemetry families, when the pool keeps them.
    fn otel(&mut self, otel: &OtelSnapshot) {
        if !otel.durations.is_empty() {
            self.otel_durations(&otel.durations);
        }
        if !otel.open.is_empty() {
            let name = "http_client_open_connections";
            self.family(
                name,
                "gauge",
                "Number of outbound HTTP connections that are currently active or idle on the client.",
            );
            for s in &otel.open {
                let port = s.key.port.to_string();
                for (state, value) in [("active", s.active), ("idle", s.idle)] {
                    let labels = [
                        ("http_connection_state", state),
                        ("server_address", s.key.address.as_str()),
                        ("server_port", port.as_str()),
                        ("url_scheme", s.key.scheme),
                    ];
                    self.sample(name, &labels, value);
                }
            }
        }
    }

    fn otel_durations(&mut self, durations: &[RequestDurationSeries]) {
        let name = "http_client_request_duration_seconds";
        self.family(name, "histogram", "Duration of HTTP client requests.");
        let bucket = format!("{name}_bucket");
        for s in durations {
            let port = s.key.port.to_string();
            let status = s.key.status.map(|c| c.to_string());
            let error = s.error_type();
            let mut labels: Vec<(&str, &str)> = vec![("http_request_method", s.key.method)];
            if let Some(status) = &status {
                labels.push(("http_response_status_code", status));
            }
            if let Some(error) = &error {
                labels.push(("error_type", error));
            }
            labels.extend([
                ("network_protocol_version", s.key.version),
                ("server_address", s.key.address.as_str()),
                ("server_port", port.as_str()),
                ("url_scheme", s.key.scheme),
            ]);
            let mut cumulative = 0;
            for (i, le) in BUCKET_LABELS.iter().enumerate() {
                cumulative += s.buckets[i];
                let mut with_le = labels.clone();
                with_le.push(("le", le));
                self.sample(&bucket, &with_le, cumulative);
            }
            let mut with_le = labels.clone();
            with_le.push(("le", "+Inf"));
            self.sample(&bucket, &with_le, s.count);
            self.sample(&format!("{name}_sum"), &labels, s.sum);
            self.sample(&format!("{name}_count"), &labels, s.count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::counters::CallRecord;
    use crate::metrics::registry::Registry;
    use crate::metrics::stats::PoolState;
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Arc;
    use ureq::http::StatusCode;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    // -- Prometheus ---------------------------------------------------------------------------

    #[derive(Debug)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    impl Sample {
        fn label(&self, key: &str) -> Option<&str> {
            self.labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        }
    }

    fn parse_sample(line: &str) -> Sample {
        let mut chars = line.chars().peekable();
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '{' || c == ' ' {
                break;
            }
            assert!(
                c.is_ascii_alphanumeric() || c == '_' || c == ':',
                "bad name in {line:?}"
            );
            name.push(c);
            chars.next();
        }
        let mut labels = Vec::new();
        if chars.peek() == Some(&'{') {
            chars.next();
            loop {
                match chars.next() {
                    Some('}') => break,
                    Some(',') => continue,
                    Some(c) => {
                        let mut key = c.to_string();
                        for c in chars.by_ref() {
                            if c == '=' {
                                break;
                            }
                            key.push(c);
                        }
                        assert_eq!(chars.next(), Some('"'), "in {line:?}");
                        let mut value = String::new();
                        loop {
                            match chars.next().expect("unterminated label value") {
                                '\\' => match chars.next() {
                                    Some('\\') => value.push('\\'),
                                    Some('"') => value.push('"'),
                                    Some('n') => value.push('\n'),
                                    other => panic!("bad escape {other:?} in {line:?}"),
                                },
                                '"' => break,
                                c => value.push(c),
                            }
                        }
                        labels.push((key, value));
                    }
                    None => panic!("unterminated labels in {line:?}"),
                }
            }
        }
        assert_eq!(chars.next(), Some(' '), "in {line:?}");
        let value: String = chars.collect();
        let value = match value.as_str() {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        Sample {
            name,
            labels,
            value,
        }
    }

    /// Checks the structural rules of the text format and returns the samples by family.
    fn validate(text: &str) -> BTreeMap<String, (String, Vec<Sample>)> {
        assert!(text.ends_with('\n'));
        let mut helped = HashSet::new();
        let mut families: BTreeMap<String, (String, Vec<Sample>)> = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            assert!(!line.is_empty() && line.trim_end() == line, "{line:?}");
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap().to_owned();
                assert!(!families.contains_key(&name), "HELP after TYPE for {name}");
                assert!(helped.insert(name.clone()), "second HELP for {name}");
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert!(helped.contains(name), "TYPE without HELP for {name}");
                assert!(name.starts_with("http_sentinel_"), "{name}");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{name}");
                let fresh = families
                    .insert(name.to_owned(), (kind.to_owned(), Vec::new()))
                    .is_none();
                assert!(fresh, "second TYPE for {name}");
                current = Some(name.to_owned());
                continue;
            }
            assert!(!line.starts_with('#'), "stray comment {line:?}");
            let sample = parse_sample(line);
            // Samples belong to the family declared last: since each family is declared once,
            // this also proves that a family's samples are contiguous.
            let family = current.as_ref().expect("sample before any TYPE");
            let (kind, samples) = families.get_mut(family).unwrap();
            if kind == "histogram" {
                let suffix = sample.name.strip_prefix(family.as_str()).unwrap_or("");
                assert!(
                    ["_bucket", "_sum", "_count"].contains(&suffix),
                    "{} outside family {family}",
                    sample.name
                );
            } else {
                assert_eq!(&sample.name, family);
            }
            samples.push(sample);
        }
        assert_eq!(helped.len(), families.len());

        for (family, (kind, samples)) in &families {
            assert!(!samples.is_empty(), "{family} has no samples");
            if kind != "histogram" {
                continue;
            }
            // Group by the labels other than `le`, keeping emission order.
            let mut series: BTreeMap<Vec<(String, String)>, Vec<&Sample>> = BTreeMap::new();
            for s in samples {
                let key = s
                    .labels
                    .iter()
                    .filter(|(k, _)| k != "le")
                    .cloned()
                    .collect();
                series.entry(key).or_default().push(s);
            }
            for (labels, samples) in series {
                let buckets: Vec<&&Sample> = samples
                    .iter()
                    .filter(|s| s.name.ends_with("_bucket"))
                    .collect();
                let les: Vec<f64> = buckets
                    .iter()
                    .map(|s| match s.label("le").expect("bucket without le") {
                        "+Inf" => f64::INFINITY,
                        le => le.parse().unwrap(),
                    })
                    .collect();
                assert!(les.windows(2).all(|w| w[0] < w[1]), "{family} {labels:?}");
                assert_eq!(les.last(), Some(&f64::INFINITY), "{family} {labels:?}");
                let counts: Vec<f64> = buckets.iter().map(|s| s.value).collect();
                assert!(
                    counts.windows(2).all(|w| w[0] <= w[1]),
                    "{family} {labels:?}"
                );
                let count = samples
                    .iter()
                    .find(|s| s.name.ends_with("_count"))
                    .expect("no _count");
                assert_eq!(counts.last(), Some(&count.value), "{family} {labels:?}");
                assert!(samples.iter().any(|s| s.name.ends_with("_sum")));
                assert_eq!(samples.len(), PROMETHEUS_BOUNDS.len() + 3);
            }
        }
        families
    }

    fn find<'a>(
        families: &'a BTreeMap<String, (String, Vec<Sample>)>,
        name: &str,
        labels: &[(&str, &str)],
    ) -> &'a Sample {
        families
            .values()
            .flat_map(|(_, samples)| samples)
            .find(|s| s.name == name && labels.iter().all(|&(k, v)| s.label(k) == Some(v)))
            .unwrap_or_else(|| panic!("no {name} {labels:?}"))
    }

    fn call(latency: Duration, retries: u32, outcome: Result<u16, ErrorClass>) -> CallRecord {
        CallRecord {
            latency,
            retries,
            retries_refused: 0,
            stale_replays: 0,
            redirects: 0,
            outcome: outcome.map(status),
        }
    }

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    #[test]
    fn prometheus_exposition_is_well_formed() {
        let weird = "we\"ird\\host\nx";
        let registry = Arc::new(Registry::new());
        let mut rec = registry.recorder();
        for latency in [us(900), ms(1), ms(3), ms(40), Duration::from_secs(30)] {
            let a = rec.host("a.example");
            a.record_attempt(latency, 0, true, Some(status(200)));
            a.record_call(&call(latency, 0, Ok(200)));
        }
        // b.example answers 503, is retried, then answers 500 for good.
        let b = rec.host("b.example");
        b.record_attempt(ms(1), 0, true, Some(status(503)));
        b.record_attempt(ms(1), 0, true, Some(status(500)));
        b.record_call(&call(ms(2), 1, Ok(500)));
        // The weird host never answers: two refused connections.
        let w = rec.host(weird);
        w.record_attempt(ms(2), 1, true, None);
        w.record_attempt(ms(2), 0, true, None);
        w.record_call(&call(ms(4), 1, Err(ErrorClass::Connect)));
        registry.record_checkout(us(20));
        let mut stats = registry.snapshot(PoolState {
            clients: 3,
            idle: 1,
            checked_out: 2,
            waiting: 0,
            max_clients: 8,
        });
        stats.set_breakers(vec![
            (weird.to_owned(), BreakerState::Open),
            ("a.example".to_owned(), BreakerState::HalfOpen),
        ]);

        let text = stats.to_prometheus();
        let families = validate(&text);
        let value = |name: &str, labels: &[(&str, &str)]| find(&families, name, labels).value;

        assert!(text.contains(r#"http_sentinel_calls_total{host="we\"ird\\host\nx"} 1"#));
        assert!(text.contains("http_sentinel_calls_total{host=\"a.example\"} 5\n"));
        assert_eq!(value("http_sentinel_calls_total", &[("host", weird)]), 1.0);

        // Calls by outcome: the final response's class, or the error's kind.
        let with_status = "http_sentinel_calls_with_status_total";
        let with_error = "http_sentinel_calls_with_error_total";
        assert_eq!(
            value(with_status, &[("host", "a.example"), ("class", "2xx")]),
            5.0
        );
        assert_eq!(
            value(with_status, &[("host", "b.example"), ("class", "5xx")]),
            1.0
        );
        assert_eq!(
            value(with_status, &[("host", "b.example"), ("class", "2xx")]),
            0.0
        );
        assert_eq!(
            value(with_error, &[("host", weird), ("kind", "connect")]),
            1.0
        );
        assert_eq!(value(with_error, &[("host", weird), ("kind", "dns")]), 0.0);
        assert_eq!(families[with_status].1.len(), 3 * StatusClass::COUNT);
        assert_eq!(families[with_error].1.len(), 3 * ErrorClass::COUNT);
        // Every call ends one way or the other.
        for h in ["a.example", "b.example", weird] {
            let ended: f64 = [with_status, with_error]
                .iter()
                .flat_map(|f| &families[*f].1)
                .filter(|s| s.label("host") == Some(h))
                .map(|s| s.value)
                .sum();
            assert_eq!(
                ended,
                value("http_sentinel_calls_total", &[("host", h)]),
                "{h}"
            );
        }

        // Responses per attempt: the retried 503 counts too.
        let responses = "http_sentinel_responses_total";
        assert_eq!(
            value(responses, &[("host", "b.example"), ("class", "5xx")]),
            2.0
        );
        assert_eq!(
            value(responses, &[("host", "a.example"), ("class", "2xx")]),
            5.0
        );
        assert_eq!(value(responses, &[("host", weird), ("class", "5xx")]), 0.0);
        assert_eq!(
            value("http_sentinel_attempts_total", &[("host", "b.example")]),
            2.0
        );
        assert!(!families.contains_key("http_sentinel_successes_total"));
        assert!(!families.contains_key("http_sentinel_failures_total"));

        let bucket = "http_sentinel_call_duration_seconds_bucket";
        let le = |le| value(bucket, &[("host", "a.example"), ("le", le)]);
        // 900 µs is wholly below 1 ms; exactly 1 ms shares a fine bucket reaching 1.024 ms.
        assert_eq!(le("0.001"), 1.0);
        assert_eq!(le("0.0025"), 2.0);
        assert_eq!(le("0.005"), 3.0);
        assert_eq!(le("0.05"), 4.0);
        assert_eq!(le("10"), 4.0);
        assert_eq!(le("+Inf"), 5.0);
        let sum = value(
            "http_sentinel_call_duration_seconds_sum",
            &[("host", "a.example")],
        );
        assert!((sum - 30.0449).abs() < 1e-9, "{sum}");

        assert_eq!(value("http_sentinel_pool_clients", &[]), 3.0);
        assert_eq!(value("http_sentinel_pool_max_clients", &[]), 8.0);
        assert_eq!(value("http_sentinel_pool_checkouts_total", &[]), 1.0);
        assert_eq!(
            value("http_sentinel_pool_checkout_wait_seconds_count", &[]),
            1.0
        );
        assert_eq!(value("http_sentinel_breaker_open", &[("host", weird)]), 1.0);
        assert_eq!(
            value("http_sentinel_breaker_open", &[("host", "a.example")]),
            0.0
        );
        let reuse = value("http_sentinel_connection_reuse_ratio", &[]);
        assert!((reuse - (1.0 - 1.0 / 9.0)).abs() < 1e-12);
    }

    #[test]
    fn every_family_of_the_counter_list_is_exported() {
        let registry = Arc::new(Registry::new());
        registry.recorder().host("h").fill_distinct(1);
        let families = validate(&registry.snapshot(PoolState::default()).to_prometheus());
        for family in FAMILIES {
            let (kind, samples) = &families[family.name];
            let series = match family.read {
                Read::Scalar(_) => 1,
                Read::ByStatus(_) => StatusClass::COUNT,
                Read::ByError(_) => ErrorClass::COUNT,
                Read::Latency(_) => PROMETHEUS_BOUNDS.len() + 3,
            };
            assert_eq!(samples.len(), series, "{}", family.name);
            let histogram = matches!(family.read, Read::Latency(_));
            assert_eq!(kind == "histogram", histogram, "{}", family.name);
        }
    }

    #[test]
    fn prometheus_without_hosts_is_still_valid() {
        let families = validate(&Stats::default().to_prometheus());
        assert!(!families.contains_key("http_sentinel_calls_total"));
        assert!(!families.contains_key("http_sentinel_breaker_open"));
        assert!(!families.contains_key("http_sentinel_connection_reuse_ratio"));
        assert!(families.contains_key("http_sentinel_pool_checkout_wait_seconds"));
    }

    #[test]
    fn help_text_is_escaped() {
        let mut out = Exposition::default();
        out.family("http_sentinel_x", "gauge", "a \\ b\nc");
        assert_eq!(
            out.text,
            "# HELP http_sentinel_x a \\\\ b\\nc\n# TYPE http_sentinel_x gauge\n"
        );
    }
}
