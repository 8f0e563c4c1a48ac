//! [`Stats::to_prometheus`]: the Prometheus text exposition format.

use std::fmt::{self, Write as _};
use std::time::Duration;

use super::counters::Counters;
use super::histogram::HistogramSnapshot;
use super::stats::Stats;
use crate::error::ErrorClass;

impl Stats {
    /// Renders the snapshot in the Prometheus text exposition format (version 0.0.4).
    ///
    /// Every metric is prefixed `http_sentinel_`; per-host series carry a `host` label. Latency
    /// histograms use the fixed bounds 1 ms, 2.5 ms, 5 ms ... 10 s. They are derived from the
    /// finer internal buckets, whose edges are powers of two rather than decimal: a bound counts
    /// only the internal buckets that lie entirely below it, so a sample up to 12.5% below a
    /// bound may be counted in the next one (for example, exactly 1 ms falls in `le="0.0025"`).
    /// `_count` and `_sum` are exact.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::Stats;
    ///
    /// let text = Stats::default().to_prometheus();
    /// assert!(text.contains("# TYPE http_sentinel_pool_clients gauge\n"));
    /// assert!(text.contains("http_sentinel_pool_clients 0\n"));
    /// ```
    pub fn to_prometheus(&self) -> String {
        let mut out = Exposition::default();

        if !self.hosts.is_empty() {
            for &(name, help, get) in HOST_COUNTERS {
                out.family(name, "counter", help);
                for h in &self.hosts {
                    out.sample(name, &[("host", h.host.as_str())], get(&h.counters));
                }
            }

            let name = "http_sentinel_failures_total";
            out.family(
                name,
                "counter",
                "Calls that ended in an error, by error kind.",
            );
            for h in &self.hosts {
                for &class in ErrorClass::ALL {
                    let labels = [("host", h.host.as_str()), ("kind", class.as_str())];
                    out.sample(name, &labels, h.counters.failures[class.index()]);
                }
            }

            let name = "http_sentinel_responses_total";
            out.family(name, "counter", "Responses received, by status class.");
            for h in &self.hosts {
                for (class, &n) in ["1xx", "2xx", "3xx", "4xx", "5xx"]
                    .into_iter()
                    .zip(&h.counters.responses)
                {
                    out.sample(name, &[("host", h.host.as_str()), ("class", class)], n);
                }
            }

            let name = "http_sentinel_call_duration_seconds";
            out.family(
                name,
                "histogram",
                "Duration of whole calls, retries and backoff included.",
            );
            for h in &self.hosts {
                out.histogram(name, Some(&h.host), &h.counters.call_latency);
            }

            let name = "http_sentinel_attempt_duration_seconds";
            out.family(name, "histogram", "Duration of single attempts.");
            for h in &self.hosts {
                out.histogram(name, Some(&h.host), &h.counters.attempt_latency);
            }
        }

        let name = "http_sentinel_connection_reuse_ratio";
        out.family(
            name,
            "gauge",
            "Share of attempts that reused a connection (1 - connections opened / attempts).",
        );
        out.sample(name, &[], self.reuse_ratio());

        let pool = self.pool;
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
            out.family(name, "gauge", help);
            out.sample(name, &[], value);
        }

        let name = "http_sentinel_pool_checkouts_total";
        out.family(name, "counter", "Successful client checkouts.");
        out.sample(name, &[], self.checkouts);

        let name = "http_sentinel_pool_checkout_timeouts_total";
        out.family(
            name,
            "counter",
            "Checkouts that gave up waiting for a client.",
        );
        out.sample(name, &[], self.checkout_timeouts);

        let name = "http_sentinel_pool_checkout_wait_seconds";
        out.family(
            name,
            "histogram",
            "Time spent waiting in checkout, successful or timed out.",
        );
        out.histogram(name, None, &self.checkout_wait);

        if !self.breakers.is_empty() {
            let name = "http_sentinel_breaker_open";
            out.family(
                name,
                "gauge",
                "1 while the host's circuit breaker is open, else 0.",
            );
            for (host, state) in &self.breakers {
                let open = u8::from(state.eq_ignore_ascii_case("open"));
                out.sample(name, &[("host", host.as_str())], open);
            }
        }

        out.text
    }
}

/// Per-host scalar counters exported to Prometheus: name, help text, value.
type CounterSpec = (&'static str, &'static str, fn(&Counters) -> u64);

const HOST_COUNTERS: &[CounterSpec] = &[
    (
        "http_sentinel_calls_total",
        "Logical calls made, however many attempts each took.",
        |c| c.calls,
    ),
    (
        "http_sentinel_attempts_total",
        "Attempts sent, first attempts and retries alike.",
        |c| c.attempts,
    ),
    (
        "http_sentinel_successes_total",
        "Calls that returned a response, whatever its status.",
        |c| c.successes,
    ),
    (
        "http_sentinel_retries_total",
        "Attempts made after a call's first attempt.",
        |c| c.retries,
    ),
    (
        "http_sentinel_retries_refused_total",
        "Retries not made because the retry budget was spent.",
        |c| c.retries_refused,
    ),
    (
        "http_sentinel_breaker_rejections_total",
        "Calls rejected by an open circuit breaker without being sent.",
        |c| c.breaker_rejections,
    ),
    (
        "http_sentinel_stale_replays_total",
        "Requests replayed because a pooled connection turned out to be stale.",
        |c| c.stale_replays,
    ),
    (
        "http_sentinel_redirects_total",
        "Redirects followed.",
        |c| c.redirects,
    ),
    (
        "http_sentinel_connections_opened_total",
        "New connections opened.",
        |c| c.connections_opened,
    ),
    (
        "http_sentinel_received_bytes_total",
        "Response body bytes received.",
        |c| c.bytes_received,
    ),
];

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::counters::{add, inc};
    use crate::metrics::registry::Registry;
    use crate::metrics::stats::PoolState;
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Arc;

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

    #[test]
    fn prometheus_exposition_is_well_formed() {
        let weird = "we\"ird\\host\nx";
        let registry = Arc::new(Registry::new());
        let mut rec = registry.recorder();
        for latency in [us(900), ms(1), ms(3), ms(40), Duration::from_secs(30)] {
            let a = rec.host("a.example");
            inc(&a.calls);
            inc(&a.attempts);
            inc(&a.successes);
            a.record_status(200);
            a.call_latency.record(latency);
            a.attempt_latency.record(latency);
        }
        let w = rec.host(weird);
        inc(&w.calls);
        add(&w.attempts, 2);
        inc(&w.retries);
        inc(&w.connections_opened);
        w.record_failure(ErrorClass::Connect);
        w.attempt_latency.record(ms(2));
        registry.record_checkout(us(20));
        let mut stats = registry.snapshot(PoolState {
            clients: 3,
            idle: 1,
            checked_out: 2,
            waiting: 0,
            max_clients: 8,
        });
        stats.set_breakers(vec![
            (weird.to_owned(), "open".to_owned()),
            ("a.example".to_owned(), "half_open".to_owned()),
        ]);

        let text = stats.to_prometheus();
        let families = validate(&text);

        assert!(text.contains(r#"http_sentinel_calls_total{host="we\"ird\\host\nx"} 1"#));
        assert!(text.contains("http_sentinel_calls_total{host=\"a.example\"} 5\n"));
        assert_eq!(
            find(&families, "http_sentinel_calls_total", &[("host", weird)]).value,
            1.0
        );
        assert_eq!(
            find(
                &families,
                "http_sentinel_failures_total",
                &[("host", weird), ("kind", "connect")]
            )
            .value,
            1.0
        );
        assert_eq!(
            find(
                &families,
                "http_sentinel_failures_total",
                &[("host", weird), ("kind", "dns")]
            )
            .value,
            0.0
        );
        assert_eq!(
            find(
                &families,
                "http_sentinel_responses_total",
                &[("host", "a.example"), ("class", "2xx")]
            )
            .value,
            5.0
        );
        assert_eq!(
            families["http_sentinel_failures_total"].1.len(),
            2 * ErrorClass::COUNT
        );

        let bucket = "http_sentinel_call_duration_seconds_bucket";
        let le = |le| find(&families, bucket, &[("host", "a.example"), ("le", le)]).value;
        // 900 µs is wholly below 1 ms; exactly 1 ms shares a fine bucket reaching 1.024 ms.
        assert_eq!(le("0.001"), 1.0);
        assert_eq!(le("0.0025"), 2.0);
        assert_eq!(le("0.005"), 3.0);
        assert_eq!(le("0.05"), 4.0);
        assert_eq!(le("10"), 4.0);
        assert_eq!(le("+Inf"), 5.0);
        let sum = find(
            &families,
            "http_sentinel_call_duration_seconds_sum",
            &[("host", "a.example")],
        );
        assert!((sum.value - 30.0449).abs() < 1e-9, "{}", sum.value);

        assert_eq!(
            find(&families, "http_sentinel_pool_clients", &[]).value,
            3.0
        );
        assert_eq!(
            find(&families, "http_sentinel_pool_max_clients", &[]).value,
            8.0
        );
        assert_eq!(
            find(&families, "http_sentinel_pool_checkouts_total", &[]).value,
            1.0
        );
        assert_eq!(
            find(
                &families,
                "http_sentinel_pool_checkout_wait_seconds_count",
                &[]
            )
            .value,
            1.0
        );
        assert_eq!(
            find(&families, "http_sentinel_breaker_open", &[("host", weird)]).value,
            1.0
        );
        assert_eq!(
            find(
                &families,
                "http_sentinel_breaker_open",
                &[("host", "a.example")]
            )
            .value,
            0.0
        );
        let reuse = find(&families, "http_sentinel_connection_reuse_ratio", &[]).value;
        assert!((reuse - (1.0 - 1.0 / 7.0)).abs() < 1e-12);
    }

    #[test]
    fn prometheus_without_hosts_is_still_valid() {
        let families = validate(&Stats::default().to_prometheus());
        assert!(!families.contains_key("http_sentinel_calls_total"));
        assert!(!families.contains_key("http_sentinel_breaker_open"));
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
