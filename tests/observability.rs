//! Metrics: exact counters for known traffic, latency bucket placement, connection reuse,
//! Prometheus exposition, event hooks, and the service example's `/metrics`.

// The example brings the support server with it (one copy of the module per test crate).
#[allow(dead_code)]
#[path = "../examples/service.rs"]
mod service;

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_sentinel::{
    breaker::BreakerState, error::ErrorClass, events::BreakerEvent, events::RetryEvent,
    events::RetryReason, metrics::StatusClass, retry::Jitter, BreakerConfig, ClientPool,
    EventHandler, PoolConfig, RetryPolicy,
};
use service::server::{Behaviour, Reply, TestServer};

/// 503 the first time an `id` is seen, 200 after.
fn flaky_server() -> TestServer {
    let seen = Arc::new(Mutex::new(HashSet::new()));
    TestServer::builder()
        .route("/ok", Behaviour::Respond(Reply::text(200, "ok")))
        .route(
            "/flaky",
            Behaviour::Handler(Arc::new(move |req| {
                let first = seen.lock().unwrap().insert(req.query.clone());
                Behaviour::Respond(if first {
                    Reply::text(503, "busy")
                } else {
                    Reply::text(200, "fine")
                })
            })),
        )
        .start()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy::new()
        .with_base_delay(Duration::from_millis(1))
        .with_jitter(Jitter::None)
}

#[derive(Default)]
struct Recorded {
    retries: AtomicU32,
    retry_reasons: Mutex<Vec<RetryReason>>,
    transitions: Mutex<Vec<(String, String)>>,
}

impl EventHandler for Recorded {
    fn on_retry(&self, e: &RetryEvent) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        self.retry_reasons.lock().unwrap().push(e.reason().clone());
    }
    fn on_breaker_transition(&self, e: &BreakerEvent) {
        self.transitions
            .lock()
            .unwrap()
            .push((e.from().to_string(), e.to().to_string()));
    }
}

/// Every transition reaches the event handler, the open -> half-open one included, once.
#[test]
fn events_carry_every_breaker_transition_including_open_to_half_open() {
    let healthy = Arc::new(AtomicU32::new(0));
    let server = {
        let healthy = healthy.clone();
        TestServer::builder()
            .fallback(Behaviour::Handler(Arc::new(move |_| {
                Behaviour::Respond(if healthy.load(Ordering::SeqCst) == 1 {
                    Reply::text(200, "ok")
                } else {
                    Reply::text(500, "down")
                })
            })))
            .start()
    };
    let events = Arc::new(Recorded::default());
    let pool = ClientPool::new(
        PoolConfig::builder()
            .retry(RetryPolicy::none())
            .breaker(
                BreakerConfig::new()
                    .with_min_calls(2)
                    .with_failure_ratio(0.5)
                    .with_break_duration(Duration::from_millis(100)),
            )
            .event_handler(events.clone())
            .build(),
    )
    .unwrap();
    let client = pool.checkout().unwrap();
    for _ in 0..2 {
        assert_eq!(client.get(&server.url("/")).send().unwrap().status(), 500);
    }
    let open = client.get(&server.url("/")).send().unwrap_err();
    let http_sentinel::error::ErrorKind::CircuitOpen { retry_in } = *open.kind() else {
        panic!("expected the breaker open: {open:?}");
    };
    healthy.store(1, Ordering::SeqCst);
    // The break is a deadline, not a signal: wait it out, then the next call is the probe.
    std::thread::sleep(retry_in + Duration::from_millis(10));
    assert_eq!(client.get(&server.url("/")).send().unwrap().status(), 200);
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        *events.transitions.lock().unwrap(),
        vec![
            pair("closed", "open"),
            pair("open", "half-open"),
            pair("half-open", "closed")
        ]
    );
    assert_eq!(server.request_count(), 3);
}

#[test]
fn known_traffic_gives_exact_counters() {
    let server = flaky_server();
    let events = Arc::new(Recorded::default());
    let pool = ClientPool::new(
        PoolConfig::builder()
            .retry(fast_retries())
            .event_handler(events.clone())
            .build(),
    )
    .unwrap();
    let client = pool.checkout().unwrap();
    // 1000 calls: every tenth is flaky (503 once, then 200), spread out so the breaker's
    // failure ratio stays low.
    for i in 0..1000 {
        let url = if i % 10 == 9 {
            server.url(&format!("/flaky?id={i}"))
        } else {
            server.url("/ok")
        };
        let r = client.get(&url).send().unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().unwrap();
    }
    let stats = pool.stats();
    assert_eq!(stats.calls(), 1000);
    assert_eq!(stats.attempts(), 1100);
    assert_eq!(stats.retries(), 100);
    assert_eq!(stats.calls_succeeded(), 1000);
    assert_eq!(stats.calls_errored(), 0);
    assert_eq!(stats.calls_with_status(StatusClass::Success), 1000);
    assert_eq!(
        stats.calls_with_status(StatusClass::ServerError),
        0,
        "final responses only"
    );
    assert_eq!(stats.responses(StatusClass::Success), 1000);
    assert_eq!(
        stats.responses(StatusClass::ServerError),
        100,
        "every attempt's response"
    );
    assert_eq!(stats.retries_refused(), 0);
    assert_eq!(stats.connections_opened(), 1);
    assert_eq!(stats.reuse_ratio(), Some(1.0 - 1.0 / 1100.0));
    // "ok" x 900 + "fine" x 100 (503 bodies are drained, not delivered)
    assert_eq!(stats.bytes_received(), 900 * 2 + 100 * 4);
    assert_eq!(stats.call_latency().count(), 1000);
    assert_eq!(stats.attempt_latency().count(), 1100);
    assert_eq!(server.request_count(), 1100);
    assert_eq!(events.retries.load(Ordering::Relaxed), 100);
    assert!(events
        .retry_reasons
        .lock()
        .unwrap()
        .iter()
        .all(|r| *r == RetryReason::Status(http_sentinel::http::StatusCode::SERVICE_UNAVAILABLE)));
    let host = stats
        .host(&format!("127.0.0.1:{}", server.addr().port()))
        .unwrap();
    assert_eq!(host.calls(), 1000);
    assert!(events.transitions.lock().unwrap().is_empty());

    // A delta over a further 10 calls sees only those.
    for _ in 0..10 {
        client
            .get(&server.url("/ok"))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
    }
    let delta = pool.stats().delta(&stats);
    assert_eq!(
        (delta.calls(), delta.attempts(), delta.retries()),
        (10, 10, 0)
    );
}

#[test]
fn failures_are_counted_by_kind_and_breaker_rejections_by_host() {
    let server = TestServer::builder()
        .route("/down", Behaviour::Respond(Reply::text(500, "down")))
        .route("/gone", Behaviour::CloseWithoutResponse)
        .start();
    let events = Arc::new(Recorded::default());
    let pool = ClientPool::new(
        PoolConfig::builder()
            .retry(RetryPolicy::none())
            .breaker(
                BreakerConfig::new()
                    .with_min_calls(5)
                    .with_failure_ratio(0.5)
                    .with_break_duration(Duration::from_secs(60)),
            )
            .event_handler(events.clone())
            .build(),
    )
    .unwrap();
    let client = pool.checkout().unwrap();
    for _ in 0..5 {
        assert_eq!(
            client.get(&server.url("/down")).send().unwrap().status(),
            500
        );
    }
    for _ in 0..3 {
        assert!(client
            .get(&server.url("/down"))
            .send()
            .unwrap_err()
            .is_circuit_open());
    }
    let stats = pool.stats();
    assert_eq!(stats.calls(), 8);
    assert_eq!(stats.attempts(), 5);
    assert_eq!(stats.responses(StatusClass::ServerError), 5);
    assert_eq!(stats.calls_with_status(StatusClass::ServerError), 5);
    assert_eq!(stats.calls_succeeded(), 0);
    assert_eq!(stats.breaker_rejections(), 3);
    assert_eq!(stats.calls_with_error(ErrorClass::CircuitOpen), 3);
    assert_eq!(server.request_count(), 5);
    assert_eq!(
        *events.transitions.lock().unwrap(),
        vec![("closed".to_owned(), "open".to_owned())]
    );
    assert_eq!(stats.breakers()[0].1, BreakerState::Open);
    assert!(stats
        .to_prometheus()
        .lines()
        .any(|l| l.starts_with("http_sentinel_breaker_open{") && l.ends_with(" 1")));
}

#[test]
fn controlled_latencies_land_in_their_buckets() {
    let server = TestServer::builder()
        .route("/fast", Behaviour::Respond(Reply::text(200, "f")))
        .route(
            "/slow",
            Behaviour::Delay {
                reply: Reply::text(200, "s"),
                delay: Duration::from_millis(200),
            },
        )
        .start();
    let pool = ClientPool::new(PoolConfig::default()).unwrap();
    let client = pool.checkout().unwrap();
    for i in 0..20 {
        let path = if i < 18 { "/fast" } else { "/slow" };
        client
            .get(&server.url(path))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
    }
    let lat = pool.stats().call_latency();
    assert_eq!(lat.count(), 20);
    // 18 of 20 are fast: p50 is far below the delay, p99 and max at or above it.
    assert!(lat.p50() < Duration::from_millis(200), "{lat:?}");
    assert!(lat.p99() >= Duration::from_millis(200), "{lat:?}");
    assert!(lat.max() >= Duration::from_millis(200), "{lat:?}");
}

/// Checks the Prometheus text format rules this crate relies on and returns the samples.
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut helped = HashSet::new();
    let mut finished = HashSet::new();
    let mut current = String::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_owned();
            assert!(helped.insert(name), "HELP twice: {line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice"
            );
            if !current.is_empty() {
                finished.insert(current.clone());
            }
            current = name.to_owned();
        } else if !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| typed.get(*f).map(String::as_str) == Some("histogram"))
                })
                .unwrap_or(name);
            assert_eq!(family, current, "sample outside its family block: {line}");
            assert!(!finished.contains(family));
            let v: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value: {line}"));
            samples.insert(series.to_owned(), v);
        }
    }
    assert_eq!(typed.len(), helped.len());
    samples
}

#[test]
fn the_service_example_serves_parseable_metrics_after_traffic() {
    let upstream = TestServer::builder()
        .route("/quote/abc", Behaviour::Respond(Reply::text(200, "42.00")))
        .route(
            "/quote/busy",
            Behaviour::Sequence(vec![
                Behaviour::Respond(Reply::text(503, "busy")),
                Behaviour::Respond(Reply::text(200, "7.00")),
            ]),
        )
        .start();
    let pool = ClientPool::new(PoolConfig::builder().retry(fast_retries()).build()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream_base = format!("http://{}", upstream.addr());
    std::thread::spawn(move || service::serve(listener, pool, upstream_base));

    let caller = ClientPool::new(PoolConfig::default()).unwrap();
    let client = caller.checkout().unwrap();
    for _ in 0..10 {
        let r = client
            .get(&format!("http://{addr}/quote/abc"))
            .send()
            .unwrap();
        assert_eq!(
            (r.status().as_u16(), r.text().unwrap().as_str()),
            (200, "42.00")
        );
    }
    let r = client
        .get(&format!("http://{addr}/quote/busy"))
        .send()
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().unwrap().as_str()),
        (200, "7.00")
    );

    let text = client
        .get(&format!("http://{addr}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let samples = parse_prometheus(&text);
    let host = format!("127.0.0.1:{}", upstream.addr().port());
    let get = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("missing {series} in\n{text}"))
    };
    assert_eq!(
        get(&format!("http_sentinel_calls_total{{host=\"{host}\"}}")),
        11.0
    );
    assert_eq!(
        get(&format!("http_sentinel_attempts_total{{host=\"{host}\"}}")),
        12.0
    );
    assert_eq!(
        get(&format!("http_sentinel_retries_total{{host=\"{host}\"}}")),
        1.0
    );
    // Histogram: cumulative buckets ending in +Inf equal to _count.
    let prefix = format!("http_sentinel_call_duration_seconds_bucket{{host=\"{host}\",le=\"");
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|(k, v)| {
            let le = k.strip_prefix(&prefix)?.strip_suffix("\"}")?;
            Some((
                if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                },
                *v,
            ))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    assert!(buckets.len() > 2);
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    assert_eq!(buckets.last().unwrap().0, f64::INFINITY);
    assert_eq!(
        buckets.last().unwrap().1,
        get(&format!(
            "http_sentinel_call_duration_seconds_count{{host=\"{host}\"}}"
        ))
    );
}
