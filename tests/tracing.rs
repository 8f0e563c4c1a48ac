//! The `tracing` spans of a call (feature `tracing`): one call span, one attempt span per
//! request sent, parented to it, with the W3C ids the server saw; retry events; no secret in
//! any field.

#![cfg(feature = "tracing")]

mod support;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use http_sentinel::telemetry::W3cPropagator;

use support::server::{Behaviour, Reply, TestServer};
use support::{config, pool, scenario};

#[derive(Debug, Clone)]
struct SpanRec {
    id: u64,
    name: &'static str,
    parent: Option<u64>,
    fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct EventRec {
    span: Option<u64>,
    fields: BTreeMap<String, String>,
}

/// Captures every span and event, with the parent each span was opened under.
#[derive(Default, Clone)]
struct Capture {
    next: Arc<AtomicU64>,
    spans: Arc<Mutex<Vec<SpanRec>>>,
    events: Arc<Mutex<Vec<EventRec>>>,
}

thread_local! {
    static STACK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let parent = if attrs.is_root() {
            None
        } else if let Some(p) = attrs.parent() {
            Some(p.into_u64())
        } else {
            STACK.with(|s| s.borrow().last().copied())
        };
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        self.spans.lock().unwrap().push(SpanRec {
            id,
            name: attrs.metadata().name(),
            parent,
            fields,
        });
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().unwrap();
        if let Some(s) = spans.iter_mut().find(|s| s.id == span.into_u64()) {
            values.record(&mut Fields(&mut s.fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let span = STACK.with(|s| s.borrow().last().copied());
        self.events.lock().unwrap().push(EventRec { span, fields });
    }
    fn enter(&self, span: &Id) {
        STACK.with(|s| s.borrow_mut().push(span.into_u64()));
    }
    fn exit(&self, _: &Id) {
        STACK.with(|s| s.borrow_mut().pop());
    }
}

#[test]
fn one_call_span_one_attempt_span_per_attempt_and_a_traceparent_on_each() {
    scenario(|| {
        let server = TestServer::builder()
            .route(
                "/items",
                Behaviour::Sequence(vec![
                    Behaviour::Respond(Reply::text(503, "busy")),
                    Behaviour::Respond(Reply::text(503, "busy")),
                    Behaviour::Respond(Reply::text(200, "fine")),
                ]),
            )
            .start();
        let pool = pool(config(Duration::from_secs(5)).propagator(Arc::new(W3cPropagator)));
        let client = pool.checkout().unwrap();
        let capture = Capture::default();
        let url = format!(
            "http://user:url-secret@127.0.0.1:{}/items?token=query-secret",
            server.addr().port()
        );
        tracing::subscriber::with_default(capture.clone(), || {
            client
                .get(&url)
                .sensitive_query("token")
                .header("Authorization", "Bearer header-secret")
                .send()
                .unwrap()
                .bytes()
                .unwrap();
        });
        let spans = capture.spans.lock().unwrap().clone();
        let calls: Vec<&SpanRec> = spans.iter().filter(|s| s.name == "call").collect();
        let attempts: Vec<&SpanRec> = spans.iter().filter(|s| s.name == "attempt").collect();
        assert_eq!(calls.len(), 1, "{spans:#?}");
        assert_eq!(attempts.len(), 3, "{spans:#?}");
        let call = calls[0];
        assert_eq!(call.parent, None);
        assert_eq!(call.fields["http.request.method"], "GET");
        assert_eq!(call.fields["server.address"], "127.0.0.1");
        assert_eq!(call.fields["server.port"], server.addr().port().to_string());
        assert_eq!(call.fields["http.response.status_code"], "200");
        let trace_id = &call.fields["trace_id"];

        let requests = server.requests();
        assert_eq!(requests.len(), 3);
        for (i, (attempt, request)) in attempts.iter().zip(&requests).enumerate() {
            assert_eq!(
                attempt.parent,
                Some(call.id),
                "attempt {i} is a child of the call"
            );
            assert_eq!(attempt.fields["http.request.resend_count"], i.to_string());
            let status = if i < 2 { "503" } else { "200" };
            assert_eq!(attempt.fields["http.response.status_code"], status);
            let traceparent = request
                .header("traceparent")
                .expect("a traceparent on every attempt");
            let expected = format!("00-{trace_id}-{}-01", attempt.fields["span_id"]);
            assert_eq!(traceparent, expected, "attempt {i}");
        }
        assert_eq!(attempts[0].fields["error.type"], "503");

        // One retry event per retry, in the call's span.
        let events = capture.events.lock().unwrap().clone();
        let retries: Vec<&EventRec> = events
            .iter()
            .filter(|e| e.fields.get("message").map(String::as_str) == Some("retry"))
            .collect();
        assert_eq!(retries.len(), 2, "{events:#?}");
        assert!(retries.iter().all(|e| e.span == Some(call.id)));
        assert_eq!(retries[0].fields["reason"], "status 503");

        // The same redaction as the logs: no credential, no path, no query in any field.
        let all = format!("{spans:?}{events:?}");
        for secret in [
            "url-secret",
            "query-secret",
            "header-secret",
            "/items",
            "user",
        ] {
            assert!(!all.contains(secret), "{secret} in {all}");
        }
        drop(client);
        drop(pool);
        server.shutdown();
    });
}

#[test]
fn without_a_subscriber_calls_work_and_record_nothing() {
    scenario(|| {
        let server = TestServer::start_default();
        let pool = pool(config(Duration::from_secs(5)));
        let status = pool
            .checkout()
            .unwrap()
            .get(&server.url("/"))
            .send()
            .unwrap()
            .status();
        assert_eq!(status, 200);
        drop(pool);
        server.shutdown();
    });
}

#[test]
fn a_breaker_transition_is_an_event_in_the_call_span() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/", Behaviour::Respond(Reply::text(500, "down")))
            .start();
        let breaker = http_sentinel::BreakerConfig::new()
            .with_min_calls(2)
            .with_failure_ratio(0.5);
        let once = http_sentinel::RetryPolicy::new().with_max_attempts(1);
        let pool = pool(config(Duration::from_secs(5)).retry(once).breaker(breaker));
        let client = pool.checkout().unwrap();
        let capture = Capture::default();
        tracing::subscriber::with_default(capture.clone(), || {
            for _ in 0..2 {
                client
                    .get(&server.url("/"))
                    .send()
                    .unwrap()
                    .bytes()
                    .unwrap();
            }
        });
        let events = capture.events.lock().unwrap().clone();
        let transitions: Vec<&EventRec> = events
            .iter()
            .filter(|e| e.fields.get("message").map(String::as_str) == Some("breaker"))
            .collect();
        assert_eq!(transitions.len(), 1, "{events:#?}");
        assert_eq!(transitions[0].fields["from"], "Closed");
        assert_eq!(transitions[0].fields["to"], "Open");
        let spans = capture.spans.lock().unwrap().clone();
        let second_call = spans.iter().filter(|s| s.name == "call").nth(1).unwrap();
        assert_eq!(transitions[0].span, Some(second_call.id));
        drop(client);
        drop(pool);
        server.shutdown();
    });
}
