//! Telemetry: OpenTelemetry's HTTP client metrics, per-attempt timings, trace propagation and
//! (feature `tracing`) the spans of a call, against the fault server on loopback.

mod support;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_sentinel::events::{AttemptEvent, BodyEvent};
use http_sentinel::telemetry::{TraceParent, W3cPropagator};
use http_sentinel::{EventHandler, RetryPolicy};

use support::server::{Behaviour, Reply, TestServer};
use support::{config, pool, scenario};

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// (method, status, error.type, count) of every `http.client.request.duration` series to
/// `port`, after checking the attributes every series must carry.
fn duration_series(
    stats: &http_sentinel::Stats,
    port: u16,
) -> Vec<(String, Option<u16>, Option<String>, u64)> {
    stats
        .otel_request_durations()
        .iter()
        .filter(|s| s.server_port() == port)
        .map(|s| {
            assert_eq!(s.server_address(), "127.0.0.1");
            assert_eq!(s.url_scheme(), "http");
            assert_eq!(s.protocol_version(), "1.1");
            assert!(s.bucket_counts().iter().sum::<u64>() <= s.count());
            (
                s.method().to_owned(),
                s.status_code(),
                s.error_type(),
                s.count(),
            )
        })
        .collect()
}

#[test]
fn otel_duration_attributes_follow_the_conventions_for_a_mixed_workload() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/ok", Behaviour::Respond(Reply::text(200, "ok")))
            .route("/missing", Behaviour::Respond(Reply::text(404, "no")))
            .route("/fail", Behaviour::Respond(Reply::text(503, "down")))
            .route("/stall", Behaviour::Stall)
            .start();
        let once = RetryPolicy::new().with_max_attempts(1);
        let pool = pool(
            config(Duration::from_secs(5))
                .retry(once)
                .otel_metrics(true),
        );
        let client = pool.checkout().unwrap();
        let port = server.addr().port();
        for path in ["/ok", "/ok", "/missing", "/fail"] {
            client
                .get(&server.url(path))
                .send()
                .unwrap()
                .bytes()
                .unwrap();
        }
        client
            .request("PURGE", &server.url("/ok"))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        let stalled = client
            .get(&server.url("/stall"))
            .timeout(Duration::from_millis(200))
            .send()
            .unwrap_err();
        assert!(stalled.is_timeout(), "{stalled:?}");
        let refused_port = closed_port();
        let refused = client
            .get(&format!("http://127.0.0.1:{refused_port}/"))
            .send()
            .unwrap_err();
        assert!(refused.is_connect(), "{refused:?}");
        // The stalled call took the pooled connection down with it: a new one, kept alive.
        client
            .get(&server.url("/ok"))
            .send()
            .unwrap()
            .bytes()
            .unwrap();

        let stats = pool.stats();
        let mut got = duration_series(&stats, port);
        got.sort();
        let s = |m: &str, st: Option<u16>, e: Option<&str>, n| {
            (m.to_owned(), st, e.map(str::to_owned), n)
        };
        assert_eq!(
            got,
            vec![
                s("GET", None, Some("timeout"), 1),
                s("GET", Some(200), None, 3),
                s("GET", Some(404), Some("404"), 1),
                s("GET", Some(503), Some("503"), 1),
                s("_OTHER", Some(200), None, 1),
            ]
        );
        assert_eq!(
            duration_series(&stats, refused_port),
            vec![s("GET", None, Some("connect"), 1)]
        );

        // The same in Prometheus text, next to the crate's own families.
        let text = stats.to_prometheus();
        assert!(text.contains("# TYPE http_client_request_duration_seconds histogram\n"));
        assert!(text.contains("# TYPE http_sentinel_calls_total counter\n"));
        let labels = format!(
            "http_request_method=\"GET\",http_response_status_code=\"404\",error_type=\"404\",\
             network_protocol_version=\"1.1\",server_address=\"127.0.0.1\",server_port=\"{port}\",\
             url_scheme=\"http\""
        );
        assert!(
            text.contains(&format!(
                "http_client_request_duration_seconds_count{{{labels}}} 1\n"
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            "http_client_request_duration_seconds_bucket{{{labels},le=\"0.005\"}}"
        )));
        assert!(text.contains(&format!(
            "http_client_request_duration_seconds_bucket{{{labels},le=\"7.5\"}}"
        )));
        assert!(text.contains(&format!(
            "http_client_request_duration_seconds_count{{http_request_method=\"GET\",error_type=\"connect\",\
             network_protocol_version=\"1.1\",server_address=\"127.0.0.1\",server_port=\"{refused_port}\",\
             url_scheme=\"http\"}} 1\n"
        )));

        // The client's one kept-alive connection is idle.
        let open: Vec<_> = stats
            .otel_open_connections()
            .iter()
            .filter(|c| c.server_port() == port)
            .map(|c| (c.active(), c.idle()))
            .collect();
        assert_eq!(open, vec![(0, 1)]);
        assert!(text.contains(&format!(
            "http_client_open_connections{{http_connection_state=\"idle\",server_address=\"127.0.0.1\",\
             server_port=\"{port}\",url_scheme=\"http\"}} 1\n"
        )));
        drop(client);
        drop(pool);
        server.shutdown();
    });
}

#[test]
fn without_the_option_no_otel_family_is_rendered() {
    scenario(|| {
        let server = TestServer::start_default();
        let pool = pool(config(Duration::from_secs(5)));
        pool.checkout()
            .unwrap()
            .get(&server.url("/"))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        let stats = pool.stats();
        assert!(stats.otel_request_durations().is_empty());
        assert!(!stats.to_prometheus().contains("http_client_"));
        drop(pool);
        server.shutdown();
    });
}

#[derive(Default)]
struct Recorded {
    attempts: Mutex<Vec<AttemptEvent>>,
    bodies: Mutex<Vec<BodyEvent>>,
}

impl EventHandler for Recorded {
    fn on_attempt(&self, event: &AttemptEvent) {
        self.attempts.lock().unwrap().push(event.clone());
    }
    fn on_body(&self, event: &BodyEvent) {
        self.bodies.lock().unwrap().push(event.clone());
    }
}

#[test]
fn attempt_timings_show_a_new_connection_then_its_reuse() {
    scenario(|| {
        let server = TestServer::builder()
            .route(
                "/flaky",
                Behaviour::Sequence(vec![
                    Behaviour::Respond(Reply::text(503, "busy")),
                    Behaviour::Respond(Reply::text(200, "fine")),
                ]),
            )
            .route("/body", Behaviour::Respond(Reply::text(200, "0123456789")))
            .start();
        let events = Arc::new(Recorded::default());
        let pool = pool(config(Duration::from_secs(5)).event_handler(events.clone()));
        let client = pool.checkout().unwrap();
        // By name: the first attempt looks the name up and connects.
        let url = format!("http://localhost:{}/flaky", server.addr().port());
        let response = client.get(&url).send().unwrap();
        let t = *response.timings();
        assert_eq!((t.attempt(), t.reused_connection()), (2, true), "{t:?}");
        assert_eq!((t.connect(), t.tls_handshake()), (None, None));
        let first_byte = t.time_to_first_byte().expect("a response came");
        assert!(first_byte <= t.total(), "{t:?}");
        response.bytes().unwrap();

        let attempts = events.attempts.lock().unwrap().clone();
        assert_eq!(attempts.len(), 2);
        let first = attempts[0].timings();
        assert_eq!((first.attempt(), first.reused_connection()), (1, false));
        assert!(first.dns().is_some(), "localhost was looked up: {first:?}");
        assert!(first.connect().is_some(), "{first:?}");
        assert_eq!(first.tls_handshake(), None, "plain http");
        assert!(first.time_to_first_byte().is_some());
        assert_eq!(
            attempts[1].timings(),
            &t,
            "the response carries the last attempt's"
        );

        // An IP literal needs no lookup; the body's time is reported once it is read.
        let response = client.get(&server.url("/body")).send().unwrap();
        assert_eq!(response.timings().dns(), None);
        assert_eq!(response.text().unwrap(), "0123456789");
        let bodies = events.bodies.lock().unwrap().clone();
        assert_eq!(bodies.len(), 2);
        assert_eq!(
            (bodies[1].bytes(), bodies[1].ok(), bodies[1].attempt()),
            (10, true, 1)
        );
        drop(client);
        drop(pool);
        server.shutdown();
    });
}

/// Sets `Host` as a routing layer might: the only `Host` the server may see.
struct RoutingHost;

impl http_sentinel::telemetry::Propagator for RoutingHost {
    fn inject(
        &self,
        _: &http_sentinel::telemetry::PropagationContext<'_>,
        headers: &mut http_sentinel::http::HeaderMap,
    ) {
        headers.append(
            "host",
            http_sentinel::http::HeaderValue::from_static("routed.test"),
        );
    }
}

#[test]
fn a_host_header_set_by_the_propagator_is_the_only_one_sent() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/", Behaviour::Respond(Reply::text(200, "fine")))
            .start();
        let pool = pool(config(Duration::from_secs(5)).propagator(Arc::new(RoutingHost)));
        let client = pool.checkout().unwrap();
        for _ in 0..2 {
            assert_eq!(client.get(&server.url("/")).send().unwrap().status(), 200);
        }
        let seen = server.requests();
        assert_eq!(seen.len(), 2);
        for request in &seen {
            let hosts: Vec<&str> = request
                .headers
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case("host"))
                .map(|(_, value)| value.as_str())
                .collect();
            assert_eq!(hosts, ["routed.test"], "{request:?}");
        }
    });
}

#[test]
fn the_w3c_propagator_sends_a_traceparent_per_attempt_in_the_entered_trace() {
    scenario(|| {
        let server = TestServer::builder()
            .route(
                "/",
                Behaviour::Sequence(vec![
                    Behaviour::Respond(Reply::text(503, "busy")),
                    Behaviour::Respond(Reply::text(200, "fine")),
                ]),
            )
            .start();
        let pool = pool(config(Duration::from_secs(5)).propagator(Arc::new(W3cPropagator)));
        let client = pool.checkout().unwrap();
        let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .unwrap()
            .with_tracestate("vendor=abc".parse().unwrap());
        {
            let _entered = parent.enter();
            client
                .get(&server.url("/"))
                .send()
                .unwrap()
                .bytes()
                .unwrap();
        }
        let seen: Vec<(String, String)> = server
            .requests()
            .iter()
            .map(|r| {
                (
                    r.header("traceparent").unwrap_or_default().to_owned(),
                    r.header("tracestate").unwrap_or_default().to_owned(),
                )
            })
            .collect();
        assert_eq!(seen.len(), 2);
        for (tp, ts) in &seen {
            assert!(
                tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{tp}"
            );
            assert!(tp.ends_with("-01") && tp.len() == 55, "{tp}");
            assert_eq!(ts, "vendor=abc");
        }
        assert_ne!(seen[0].0, seen[1].0, "each attempt is its own span");
        drop(client);
        drop(pool);
        server.shutdown();
    });
}
