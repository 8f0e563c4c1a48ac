//! Hedged requests over loopback (fault scenarios 58-63, tests/README.md): which requests are
//! hedged, the deadline, the loser's connection, the budget under 32 threads, the breaker.
//! Checked against the fault server's request and connection logs.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use http_sentinel::events::{HedgeEvent, HedgeOutcome};
use http_sentinel::{
    AdaptiveLimit, BreakerConfig, EventHandler, HedgeDelay, HedgePolicy, PoolConfigBuilder,
    RetryPolicy,
};

mod support;

use support::server::{Behaviour, Reply, TestServer};
use support::{pool, scenario};

/// Slack allowed past a deadline: scheduling and the server's 100 ms stall poll, not a
/// performance target.
const MARGIN: Duration = Duration::from_millis(700);
/// Bound on any wait for the server's logs.
const STEP: Duration = Duration::from_secs(10);

fn hedged(delay_ms: u64, deadline: Duration) -> PoolConfigBuilder {
    support::config(deadline)
        .retry(RetryPolicy::new().with_max_attempts(1))
        .hedge(HedgePolicy::new().with_delay(HedgeDelay::Fixed(Duration::from_millis(delay_ms))))
}

fn fast_reply(body: &str) -> Behaviour {
    Behaviour::Respond(Reply::text(200, body))
}

fn slow_reply(body: &str, ms: u64) -> Behaviour {
    Behaviour::Delay {
        reply: Reply::text(200, body),
        delay: Duration::from_millis(ms),
    }
}

/// The connection ids the server saw requests to `path` on, in arrival order.
fn connections_of(server: &TestServer, path: &str) -> Vec<usize> {
    server
        .requests()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| r.connection)
        .collect()
}

#[derive(Default)]
struct Hedges(Mutex<Vec<HedgeOutcome>>);

impl EventHandler for Hedges {
    fn on_hedge(&self, event: &HedgeEvent) {
        self.0.lock().unwrap().push(event.outcome());
    }
}

#[test]
fn a_post_is_never_hedged_but_a_get_or_a_post_with_an_idempotency_key_is() {
    scenario(|| {
        // The first request to each route is slow, the next fast: a hedge would win.
        let race = || Behaviour::Sequence(vec![slow_reply("slow", 400), fast_reply("fast")]);
        let server = TestServer::builder()
            .route("/post", race())
            .route("/keyed", race())
            .route("/get", race())
            .route("/events", race())
            .start();
        let pool = pool(hedged(20, Duration::from_secs(10)));
        let client = pool.checkout().unwrap();

        let post = client
            .post(&server.url("/post"))
            .body("order")
            .send()
            .unwrap();
        assert_eq!(post.text().unwrap(), "slow", "waited for its only attempt");
        assert_eq!(server.requests_to("/post"), 1, "a POST went out once");
        assert_eq!(pool.stats().hedges_sent(), 0);
        // An event stream neither: its idle timeout is kept by the caller's client.
        let events = client
            .get(&server.url("/events"))
            .header("Accept", "text/event-stream")
            .send()
            .unwrap();
        assert_eq!(events.text().unwrap(), "slow");
        assert_eq!(server.requests_to("/events"), 1);

        let keyed = client
            .post(&server.url("/keyed"))
            .header("Idempotency-Key", "k-1")
            .body("order")
            .send()
            .unwrap();
        assert_eq!(keyed.text().unwrap(), "fast", "the hedge won");
        let get = client.get(&server.url("/get")).send().unwrap();
        assert_eq!(get.text().unwrap(), "fast");
        assert_eq!(server.requests_to("/keyed"), 2);
        assert_eq!(server.requests_to("/get"), 2);
        let copies = server.requests();
        let keyed: Vec<_> = copies.iter().filter(|r| r.path == "/keyed").collect();
        assert_eq!(
            keyed[0].body, keyed[1].body,
            "the hedge carries the same body"
        );
        assert_eq!(keyed[1].header("idempotency-key"), Some("k-1"));
        let stats = pool.stats();
        assert_eq!((stats.hedges_sent(), stats.hedges_won()), (2, 2));
    });
}

#[test]
fn a_hedge_never_outlives_the_call_deadline() {
    scenario(|| {
        let server = TestServer::builder().fallback(Behaviour::Stall).start();
        let deadline = Duration::from_millis(400);
        let pool = pool(hedged(50, deadline));
        let client = pool.checkout().unwrap();
        let started = Instant::now();
        let err = client.get(&server.url("/hang")).send().unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(started.elapsed() < deadline + MARGIN);
        assert!(server.wait_for_requests(2, STEP), "the hedge was sent");
        let conns = connections_of(&server, "/hang");
        assert_eq!(conns.len(), 2);
        for id in conns {
            let closed = server
                .wait_for_client_close(id, STEP)
                .expect("the client closed the connection");
            assert!(
                closed.saturating_duration_since(started) < deadline + MARGIN,
                "connection {id} closed {:?} after the call started",
                closed - started
            );
        }
        assert_eq!(pool.stats().hedges_sent(), 1);

        // A hedge whose delay ends past the deadline is not sent at all.
        let short = support::pool(hedged(300, Duration::from_millis(150)));
        let err = short
            .checkout()
            .unwrap()
            .get(&server.url("/late"))
            .send()
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert_eq!(server.requests_to("/late"), 1);
        assert_eq!(short.stats().hedges_sent(), 0);
        drop((client, pool, short));
        server.shutdown();
    });
}

#[test]
fn the_losing_connection_is_closed_whichever_attempt_loses() {
    scenario(|| {
        let server = TestServer::builder()
            // The primary stalls, the hedge answers at once.
            .route(
                "/hedge-wins",
                Behaviour::Sequence(vec![Behaviour::Stall, fast_reply("hedge")]),
            )
            // The primary answers after 200 ms, the hedge stalls.
            .route(
                "/primary-wins",
                Behaviour::Sequence(vec![slow_reply("primary", 200), Behaviour::Stall]),
            )
            .fallback(fast_reply("next"))
            .start();
        let events = Arc::new(Hedges::default());
        let pool = pool(hedged(30, Duration::from_secs(10)).event_handler(events.clone()));
        let client = pool.checkout().unwrap();

        // The deadline is 10 s: a loser left to run would end (and close) only then.
        let half = Duration::from_secs(5);
        let started = Instant::now();
        let won = client.get(&server.url("/hedge-wins")).send().unwrap();
        assert!(
            started.elapsed() < half,
            "the hedge's head did not wait for the primary"
        );
        assert_eq!(won.text().unwrap(), "hedge");
        let conns = connections_of(&server, "/hedge-wins");
        assert_eq!(conns.len(), 2);
        let closed = server.wait_for_client_close(conns[0], STEP);
        let closed = closed.expect("the stalled primary's connection was closed");
        assert!(closed - started < half, "closed when the hedge won");

        let started = Instant::now();
        let kept = client.get(&server.url("/primary-wins")).send().unwrap();
        assert_eq!(kept.text().unwrap(), "primary");
        let conns = connections_of(&server, "/primary-wins");
        assert_eq!(conns.len(), 2);
        let closed = server.wait_for_client_close(conns[1], STEP);
        let closed = closed.expect("the stalled hedge's connection was closed");
        assert!(closed - started < half, "closed when the primary won");

        // Nothing half-read was pooled: the next calls on both clients work.
        for _ in 0..3 {
            let next = client.get(&server.url("/next")).send().unwrap();
            assert_eq!(next.text().unwrap(), "next");
        }
        let stats = pool.stats();
        assert_eq!((stats.hedges_sent(), stats.hedges_won()), (2, 1));
        let prometheus = stats.to_prometheus();
        assert!(
            prometheus.contains("http_sentinel_hedges_won_total"),
            "{prometheus}"
        );
        let seen = events.0.lock().unwrap().clone();
        let count = |o| seen.iter().filter(|s| **s == o).count();
        assert_eq!(
            (count(HedgeOutcome::Sent), count(HedgeOutcome::Won)),
            (2, 1)
        );
        drop((client, pool));
        server.shutdown();
    });
}

#[test]
fn the_hedge_budget_holds_under_32_threads() {
    scenario(|| {
        // Every response takes 20 ms and the hedge is due after 1 ms: every call wants one.
        let server = TestServer::builder().fallback(slow_reply("ok", 20)).start();
        let threads = 32;
        let calls_each = 10;
        let pool = pool(hedged(1, Duration::from_secs(10)).max_clients(threads));
        let url = server.url("/item");
        thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let client = pool.checkout().unwrap();
                    for _ in 0..calls_each {
                        client.get(&url).send().unwrap().bytes().unwrap();
                    }
                });
            }
        });
        let calls = (threads * calls_each) as u64;
        let stats = pool.stats();
        assert_eq!(stats.calls_succeeded(), calls);
        // 5 % of the calls plus 1 per second over the 10 s window.
        let bound = calls * 5 / 100 + 10;
        let extra = server.request_count() as u64 - calls;
        assert!(
            stats.hedges_sent() <= bound,
            "{} hedges sent",
            stats.hedges_sent()
        );
        assert!(extra <= stats.hedges_sent(), "{extra} extra requests");
        assert!(
            stats.hedges_sent() > 0,
            "the budget's floor lets a cold host hedge"
        );
        assert!(stats.hedges_refused() > 0, "refusals are counted");
        // A losing hedge's attempt is recorded by its thread, maybe just after its call ended.
        assert!(stats.attempts() >= calls && stats.attempts() <= calls + stats.hedges_sent());
        drop(pool);
        server.shutdown();
    });
}

#[test]
fn no_hedge_is_sent_to_a_host_whose_breaker_is_open() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/fail", Behaviour::Respond(Reply::text(500, "down")))
            .fallback(slow_reply("slow", 300))
            .start();
        let breaker = BreakerConfig::new()
            .with_min_calls(2)
            .with_failure_ratio(0.5)
            .with_break_duration(Duration::from_millis(150));
        let pool = pool(hedged(20, Duration::from_secs(10)).breaker(breaker));
        let client = pool.checkout().unwrap();
        for _ in 0..2 {
            let _ = client.get(&server.url("/fail")).send().unwrap();
        }
        // Open: the call is rejected, nothing is sent or hedged. After the break one probe
        // goes out (half-open): its slow answer is not hedged either.
        assert!(client
            .get(&server.url("/slow"))
            .send()
            .unwrap_err()
            .is_circuit_open());
        thread::sleep(Duration::from_millis(200));
        let probe = client.get(&server.url("/slow")).send().unwrap();
        assert_eq!(probe.text().unwrap(), "slow");
        assert_eq!(server.requests_to("/slow"), 1, "no hedge of the probe");
        assert_eq!(pool.stats().hedges_sent(), 0);
        drop((client, pool));
        server.shutdown();
    });
}

#[test]
fn a_hedge_needs_a_free_slot_under_the_concurrency_limit() {
    scenario(|| {
        let server = TestServer::builder()
            .fallback(slow_reply("slow", 300))
            .start();
        // One slot per host: the call holds it, so its hedge is not sent (and does not wait).
        // Two slots: the same call gets its hedge.
        for (slots, requests) in [(1, 1), (2, 2)] {
            let limit = AdaptiveLimit::new()
                .with_initial_limit(slots)
                .with_bounds(slots, slots);
            let pool = pool(hedged(20, Duration::from_secs(10)).adaptive_concurrency(limit));
            let client = pool.checkout().unwrap();
            let path = format!("/slots-{slots}");
            let body = client
                .get(&server.url(&path))
                .send()
                .unwrap()
                .text()
                .unwrap();
            assert_eq!(body, "slow");
            let hedges = pool.stats().hedges_sent();
            assert_eq!(hedges, requests as u64 - 1, "{slots} slot(s)");
            assert_eq!(server.requests_to(&path), requests, "{slots} slot(s)");
            drop((client, pool));
        }
        server.shutdown();
    });
}
