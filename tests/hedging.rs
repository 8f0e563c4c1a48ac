//! Hedged requests over loopback (fault scenarios 58-69, tests/README.md): which requests are
//! hedged, the deadline, the loser's connection, the budget under 32 threads, the breaker.
//! Checked against the fault server's request and connection logs.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use http_sentinel::events::{HedgeEvent, HedgeOutcome};
use http_sentinel::{
    AdaptiveLimit, BreakerConfig, EventHandler, HedgeDelay, HedgePolicy, Pacing, PoolConfigBuilder,
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

/// Ends slow (400 ms, "slow") for the first request to its route, then answers `reply` at once.
fn slow_then(reply: Reply) -> Behaviour {
    Behaviour::Sequence(vec![slow_reply("slow", 400), Behaviour::Respond(reply)])
}

/// One hedge thread, a budget that never refuses: each call below gets its hedge.
fn one_thread(delay_ms: u64) -> PoolConfigBuilder {
    support::config(Duration::from_secs(5))
        .retry(RetryPolicy::new().with_max_attempts(1))
        .hedge(
            HedgePolicy::new()
                .with_threads(1)
                .with_budget(1.0, 100)
                .with_delay(HedgeDelay::Fixed(Duration::from_millis(delay_ms))),
        )
}

#[cfg(feature = "cookies")]
#[test]
fn a_hedge_carries_its_callers_cookies_and_stores_what_it_is_sent_in_the_callers_jar() {
    use http_sentinel::CookieJar;
    scenario(|| {
        let login = Reply::text(200, "ok").header("set-cookie", "sid=alice; Path=/");
        let relogin = Reply::text(200, "fast").header("set-cookie", "sid=bob; Path=/");
        let server = TestServer::builder()
            .route("/login", Behaviour::Respond(login))
            .route("/me", slow_then(Reply::text(200, "fast")))
            .route("/relogin", slow_then(relogin))
            .route("/check", Behaviour::EchoHeaders)
            .route("/carol", slow_then(Reply::text(200, "fast")))
            .start();
        let pool = pool(one_thread(20).cookie_store(CookieJar::per_client()));
        let cookies_to = |path: &str| -> Vec<Option<String>> {
            let requests = server.requests();
            let to = requests.iter().filter(|r| r.path == path);
            to.map(|r| r.header("cookie").map(str::to_owned)).collect()
        };
        let alice = pool.checkout().unwrap();
        alice.get(&server.url("/login")).send().unwrap();
        assert_eq!(
            alice
                .get(&server.url("/me"))
                .send()
                .unwrap()
                .text()
                .unwrap(),
            "fast"
        );
        let alice_cookie = Some("sid=alice".to_owned());
        assert_eq!(cookies_to("/me"), vec![alice_cookie.clone(), alice_cookie]);
        // The hedge's response renews the session: in alice's jar, not the hedge thread's.
        let relogin = alice.get(&server.url("/relogin")).send().unwrap();
        assert_eq!(relogin.text().unwrap(), "fast");
        let echoed = alice
            .get(&server.url("/check"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(echoed.contains("sid=bob"), "{echoed}");
        // Another client of the pool, hedged on the same thread, sends no one's cookie.
        let carol = pool.checkout().unwrap();
        carol.get(&server.url("/carol")).send().unwrap();
        assert_eq!(cookies_to("/carol"), vec![None, None]);
        drop((alice, carol, pool));
        server.shutdown();
    });
}

/// A handler that panics when it is called on a hedge thread.
struct PanicsOnHedgeThreads;

impl EventHandler for PanicsOnHedgeThreads {
    fn on_attempt(&self, _: &http_sentinel::events::AttemptEvent) {
        if thread::current().name() == Some("sentinel-hedge") {
            panic!("a handler that fails on hedge threads");
        }
    }
}

#[test]
fn an_event_handler_that_panics_on_a_hedge_thread_does_not_stop_hedging() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/a", slow_then(Reply::text(200, "fast")))
            .route("/b", slow_then(Reply::text(200, "fast")))
            .start();
        let pool = pool(one_thread(20).event_handler(Arc::new(PanicsOnHedgeThreads)));
        let client = pool.checkout().unwrap();
        // Both hedges are sent on the one hedge thread and win, the handler's panic and all.
        for path in ["/a", "/b"] {
            let body = client
                .get(&server.url(path))
                .send()
                .unwrap()
                .text()
                .unwrap();
            assert_eq!(body, "fast", "{path}");
            assert_eq!(server.requests_to(path), 2, "{path}");
        }
        assert_eq!(pool.stats().hedges_won(), 2);
        drop((client, pool));
        server.shutdown();
    });
}

#[test]
fn a_paced_host_gets_no_hedge_its_pace_does_not_allow() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/p", slow_then(Reply::text(200, "fast")))
            .start();
        // One request per 10 s: the call's own, so no hedge.
        let pacing = Pacing::new().with_limit(1, Duration::from_secs(10));
        let pool = pool(one_thread(20).pacing(pacing));
        let client = pool.checkout().unwrap();
        assert_eq!(
            client
                .get(&server.url("/p"))
                .send()
                .unwrap()
                .text()
                .unwrap(),
            "slow"
        );
        assert_eq!(server.requests_to("/p"), 1);
        assert_eq!(pool.stats().hedges_sent(), 0);
        drop((client, pool));
        server.shutdown();
    });
}

#[test]
fn a_fast_409_or_503_does_not_beat_a_slow_success() {
    scenario(|| {
        // The hedge of a keyed POST is told its key is in progress (409, as the
        // Idempotency-Key draft and Stripe answer); the hedge of a GET gets a fast 503.
        let conflict = Reply::text(409, "a request with this key is in progress");
        let server = TestServer::builder()
            .route("/charge", slow_then(conflict))
            .route("/busy", slow_then(Reply::text(503, "busy")))
            .start();
        let pool = pool(one_thread(20));
        let client = pool.checkout().unwrap();
        let charge = client
            .post(&server.url("/charge"))
            .header("Idempotency-Key", "k-42")
            .body("amount=10")
            .send()
            .unwrap();
        assert_eq!(
            (charge.status().as_u16(), charge.text().unwrap()),
            (200, "slow".into())
        );
        let busy = client.get(&server.url("/busy")).send().unwrap();
        assert_eq!(
            (busy.status().as_u16(), busy.text().unwrap()),
            (200, "slow".into())
        );
        assert_eq!(
            server.requests_to("/charge") + server.requests_to("/busy"),
            4
        );
        assert_eq!(pool.stats().hedges_won(), 0);
        drop((client, pool));
        server.shutdown();
    });
}

#[test]
fn a_body_read_under_its_own_idle_timeout_is_not_hedged() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/dl", slow_reply("body", 200))
            .start();
        let pool = pool(one_thread(20));
        let client = pool.checkout().unwrap();
        let response = client
            .get(&server.url("/dl"))
            .body_idle_timeout(Duration::from_secs(1))
            .send()
            .unwrap();
        assert_eq!(response.text().unwrap(), "body");
        assert_eq!(server.requests_to("/dl"), 1);
        assert_eq!(pool.stats().hedges_sent(), 0);
        drop((client, pool));
        server.shutdown();
    });
}

/// Every attempt's outcome, as the events tell it.
#[derive(Default)]
struct Outcomes(Mutex<Vec<String>>);

impl EventHandler for Outcomes {
    fn on_attempt(&self, event: &http_sentinel::events::AttemptEvent) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{:?}", event.outcome()));
    }
}

#[test]
fn a_hedge_cut_short_by_the_primarys_win_is_not_an_error_of_the_host() {
    scenario(|| {
        // Every response takes 150 ms: the primary wins, the hedge (sent at 20 ms) is cut.
        let server = TestServer::builder()
            .fallback(slow_reply("ok", 150))
            .start();
        let events = Arc::new(Outcomes::default());
        let pool = pool(one_thread(20).event_handler(events.clone()));
        let client = pool.checkout().unwrap();
        assert_eq!(
            client
                .get(&server.url("/x"))
                .send()
                .unwrap()
                .text()
                .unwrap(),
            "ok"
        );
        assert_eq!(pool.stats().hedges_sent(), 1);
        // Dropping the pool waits for its hedge threads: the hedge has ended by then. One
        // attempt is told of, the primary's; the hedge was cut, not refused by the host.
        drop((client, pool));
        let outcomes = events.0.lock().unwrap().clone();
        assert_eq!(outcomes, vec!["Ok(200)".to_owned()]);
        server.shutdown();
    });
}
