//! Metrics and outcomes that tell the truth, over loopback against the fault server: retries
//! counted when sent, a retry refused by an open breaker, `stats()` snapshots taken while
//! threads send, refused requests, nested `with_client` and the reuse ratio of a host that
//! never connected (fault scenarios at the end of the table in tests/README.md).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use http_sentinel::error::ErrorClass;
use http_sentinel::events::AttemptEvent;
use http_sentinel::metrics::StatusClass;
use http_sentinel::{BreakerConfig, ErrorKind, EventHandler};

mod support;

use support::server::{Behaviour, Reply, TestServer};
use support::{pool, scenario};

/// A breaker that opens on the first failure and stays open for the rest of the test.
fn hair_trigger() -> BreakerConfig {
    BreakerConfig::new()
        .with_min_calls(1)
        .with_failure_ratio(0.5)
        .with_window(Duration::from_secs(10))
        .with_break_duration(Duration::from_secs(60))
}

#[test]
fn a_retry_refused_by_an_open_breaker_returns_the_5xx_and_is_no_retry() {
    scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(503, "down")))
            .start();
        let pool = pool(support::config(Duration::from_secs(10)).breaker(hair_trigger()));
        let client = pool.checkout().unwrap();

        // The first 503 opens the breaker; the retry it warrants is refused: the call is the
        // 503 that happened, with its body, after one attempt.
        let response = client.get(&server.url("/")).send().unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.attempts(), 1);
        assert_eq!(response.text().unwrap(), "down");
        assert_eq!(server.request_count(), 1, "one request reached the wire");

        let stats = pool.stats();
        assert_eq!(stats.calls(), 1);
        assert_eq!(stats.attempts(), 1);
        assert_eq!(stats.retries(), 0, "a refused retry is no retry");
        assert_eq!(stats.retries_refused(), 1);
        assert_eq!(stats.calls_with_status(StatusClass::ServerError), 1);
        assert_eq!(stats.calls_errored(), 0);
        assert_eq!(stats.breaker_rejections(), 0, "the call itself was sent");

        // The next call's first attempt is refused: that one is CircuitOpen, with no attempt.
        let open = client.get(&server.url("/")).send().unwrap_err();
        assert!(
            matches!(open.kind(), ErrorKind::CircuitOpen { .. }),
            "{open:?}"
        );
        assert_eq!(open.attempts(), 0);
        assert_eq!(server.request_count(), 1);
        let stats = pool.stats();
        assert_eq!((stats.calls(), stats.retries()), (2, 0));
        assert_eq!(stats.breaker_rejections(), 1);
    });
}

#[test]
fn a_connect_failure_whose_retry_the_breaker_refuses_is_that_connect_error() {
    scenario(|| {
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pool = pool(support::config(Duration::from_secs(10)).breaker(hair_trigger()));
        let client = pool.checkout().unwrap();
        let e = client
            .get(&format!("http://127.0.0.1:{port}/"))
            .send()
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Connect(_)), "{e:?}");
        assert_eq!(e.attempts(), 1);
        let stats = pool.stats();
        assert_eq!((stats.retries(), stats.retries_refused()), (0, 1));
        assert_eq!(stats.breaker_rejections(), 0);
    });
}

/// Checks the invariants one snapshot must keep, whatever is being recorded meanwhile.
fn assert_consistent(stats: &http_sentinel::Stats, n: usize) {
    let calls = stats.calls();
    let ended = stats.calls_succeeded() + stats.calls_errored();
    let by_status: u64 = StatusClass::ALL
        .iter()
        .map(|&c| stats.calls_with_status(c))
        .sum();
    let responses: u64 = StatusClass::ALL.iter().map(|&c| stats.responses(c)).sum();
    assert_eq!(
        stats.call_latency().count(),
        calls,
        "snapshot {n}: {stats:?}"
    );
    assert!(ended <= calls, "snapshot {n}: {stats:?}");
    assert_eq!(
        by_status + stats.calls_errored(),
        calls,
        "snapshot {n}: {stats:?}"
    );
    assert_eq!(
        stats.attempt_latency().count(),
        stats.attempts(),
        "snapshot {n}: {stats:?}"
    );
    assert!(responses <= stats.attempts(), "snapshot {n}: {stats:?}");
    assert!(
        stats.retries() <= stats.attempts(),
        "snapshot {n}: {stats:?}"
    );
}

#[test]
fn stats_snapshots_taken_while_8_threads_send_are_consistent() {
    const THREADS: usize = 8;
    const CALLS: usize = 300;
    scenario(|| {
        // A mix: most calls a 200, every fifth a 503 that is retried to a 503 again.
        let server = TestServer::builder()
            .route("/ok", Behaviour::Respond(Reply::text(200, "ok")))
            .route("/busy", Behaviour::Respond(Reply::text(503, "busy")))
            .start();
        let pool = pool(
            support::config(Duration::from_secs(10))
                .max_clients(THREADS)
                .retry(support::fast().with_base_delay(Duration::from_millis(1))),
        );
        let done = AtomicBool::new(false);
        let snapshots = thread::scope(|s| {
            let senders: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (pool, server) = (&pool, &server);
                    s.spawn(move || {
                        let client = pool.checkout().unwrap();
                        for i in 0..CALLS {
                            let path = if (i + t) % 5 == 0 { "/busy" } else { "/ok" };
                            let r = client.get(&server.url(path)).send().unwrap();
                            r.bytes().unwrap();
                        }
                    })
                })
                .collect();
            let snapshotter = s.spawn(|| {
                let started = Instant::now();
                let mut n = 0;
                // Bounded in count and in time; it stops early once the senders are done.
                while n < 1_000_000 && started.elapsed() < Duration::from_secs(60) {
                    let finished = done.load(Ordering::Acquire);
                    assert_consistent(&pool.stats(), n);
                    n += 1;
                    if finished {
                        break;
                    }
                }
                n
            });
            for sender in senders {
                sender.join().unwrap();
            }
            done.store(true, Ordering::Release);
            snapshotter.join().unwrap()
        });
        let stats = pool.stats();
        assert_consistent(&stats, snapshots);
        assert_eq!(stats.calls(), (THREADS * CALLS) as u64);
        println!(
            "{snapshots} consistent snapshots while {THREADS} threads sent {CALLS} calls each"
        );
    });
}

#[test]
fn a_nested_with_client_reuses_the_threads_client_and_later_calls_keep_to_it() {
    scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(200, "ok")))
            .start();
        let pool = pool(support::config(Duration::from_secs(10)).max_clients(4));
        let url = server.url("/");
        let get = |c: &http_sentinel::Client| c.get(&url).send().unwrap().bytes().unwrap();
        let (outer, inner) = pool
            .with_client(|outer| {
                get(outer);
                let inner = pool
                    .with_client(|inner| {
                        get(inner);
                        inner.id()
                    })
                    .unwrap();
                (outer.id(), inner)
            })
            .unwrap();
        assert_eq!(inner, outer, "the nested call got the thread's client");
        let s = pool.state();
        assert_eq!(
            (s.clients, s.checked_out),
            (1, 1),
            "one checkout per thread"
        );
        // Later calls all go to that one client, on its one connection.
        for _ in 0..6 {
            assert_eq!(pool.with_client(|c| (get(c), c.id()).1).unwrap(), outer);
        }
        assert_eq!(server.request_count(), 8);
        assert_eq!(
            server.connections_accepted(),
            1,
            "one client, one connection"
        );
        assert!(pool.release_local());
        assert!(!pool.release_local(), "the thread held one client");
        assert_eq!(pool.state().idle, 1);
    });
}

#[test]
fn a_panic_in_a_nested_with_client_discards_the_threads_client() {
    scenario(|| {
        let pool = pool(support::config(Duration::from_secs(10)).max_clients(4));
        let caught = pool
            .with_client(|_| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    pool.with_client(|_| panic!("inner")).unwrap();
                }))
                .is_err()
            })
            .unwrap();
        assert!(caught);
        // The client went with the panic: not held by the thread, not back in the pool.
        assert!(!pool.release_local());
        let s = pool.state();
        assert_eq!((s.clients, s.idle, s.checked_out), (0, 0, 0));
    });
}

#[test]
fn requests_refused_before_sending_are_calls_with_their_failure_kind() {
    scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(200, "ok")))
            .start();
        let pool = pool(support::config(Duration::from_secs(10)));
        let client = pool.checkout().unwrap();
        let host = format!("127.0.0.1:{}", server.addr().port());
        // A header value with CR/LF: the URL is fine, so the call counts under its host.
        let e = client
            .get(&server.url("/"))
            .header("x-note", "a\r\nInjected: yes")
            .send()
            .unwrap_err();
        assert!(e.is_invalid_request(), "{e:?}");
        assert_eq!(e.host(), Some(host.as_str()));
        // URLs that do not parse (a space in the host, a scheme other than http(s)) have no
        // host to count under: they count under "-".
        for url in ["http://exa mple.test/", "ftp://127.0.0.1/"] {
            let e = client.get(url).send().unwrap_err();
            assert!(e.is_invalid_request(), "{url}: {e:?}");
        }
        assert_eq!(server.request_count(), 0, "nothing reached the wire");
        assert_eq!(server.connections_accepted(), 0);

        let stats = pool.stats();
        assert_eq!(stats.calls(), 3);
        assert_eq!(stats.attempts(), 0);
        assert_eq!(stats.calls_errored(), 3);
        assert_eq!(stats.calls_with_error(ErrorClass::InvalidRequest), 3);
        assert_eq!(stats.host(&host).unwrap().calls(), 1);
        assert_eq!(stats.host("-").unwrap().calls(), 2);
        let text = stats.to_prometheus();
        for line in [
            format!(
                "http_sentinel_calls_with_error_total{{host=\"{host}\",kind=\"invalid_request\"}} 1"
            ),
            "http_sentinel_calls_with_error_total{host=\"-\",kind=\"invalid_request\"} 2".into(),
            "http_sentinel_calls_total{host=\"-\"} 2".into(),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        // A good request afterwards is unaffected.
        assert_eq!(client.get(&server.url("/")).send().unwrap().status(), 200);
    });
}

/// Records whether each attempt's event says it reused a connection.
#[derive(Default)]
struct ReusedFlags(Mutex<Vec<bool>>);

impl EventHandler for ReusedFlags {
    fn on_attempt(&self, e: &AttemptEvent) {
        self.0.lock().unwrap().push(e.reused_connection());
    }
}

#[test]
fn a_host_whose_connects_all_failed_shows_no_reuse_ratio() {
    scenario(|| {
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let down = format!("127.0.0.1:{port}");
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(200, "ok")))
            .start();
        let up = format!("127.0.0.1:{}", server.addr().port());
        let events = Arc::new(ReusedFlags::default());
        let pool = pool(support::config(Duration::from_secs(10)).event_handler(events.clone()));
        let client = pool.checkout().unwrap();
        for _ in 0..2 {
            let e = client.get(&format!("http://{down}/")).send().unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::Connect(_)), "{e:?}");
            assert_eq!(e.attempts(), 3, "connect failures are retried");
        }
        assert_eq!(
            *events.0.lock().unwrap(),
            [false; 6],
            "a refused connect reused nothing"
        );
        let stats = pool.stats();
        let never = stats.host(&down).unwrap();
        assert_eq!(never.attempts(), 6);
        assert_eq!(never.connections_opened(), 0);
        assert_eq!(never.reuse_ratio(), None, "not 1.000 and not 0");
        assert_eq!(stats.reuse_ratio(), None, "nothing connected anywhere yet");
        let row = stats
            .to_string()
            .lines()
            .find(|l| l.starts_with(&down))
            .map(str::to_owned)
            .unwrap();
        assert_eq!(row.split_whitespace().nth(9), Some("-"), "{row}");
        assert!(!stats
            .to_prometheus()
            .contains("http_sentinel_connection_reuse_ratio"));

        // Two calls on one connection: the ratio is over the attempts that connected.
        for _ in 0..2 {
            client
                .get(&server.url("/"))
                .send()
                .unwrap()
                .bytes()
                .unwrap();
        }
        assert_eq!(server.connections_accepted(), 1);
        let stats = pool.stats();
        assert_eq!(stats.host(&up).unwrap().reuse_ratio(), Some(0.5));
        assert_eq!(stats.host(&down).unwrap().reuse_ratio(), None);
        assert_eq!(
            stats.reuse_ratio(),
            Some(0.5),
            "the refused connects do not count"
        );
    });
}

#[test]
fn the_retry_budget_floor_builds_up_per_second_instead_of_bursting() {
    scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(503, "busy")))
            .start();
        // The floor only: no ratio, 10/s over 10 s (the defaults otherwise).
        let policy = support::fast()
            .with_base_delay(Duration::from_millis(1))
            .with_budget_ratio(0.0)
            .with_budget_min_per_sec(10)
            .with_budget_window(Duration::from_secs(10));
        let pool = pool(support::config(Duration::from_secs(10)).retry(policy));
        let client = pool.checkout().unwrap();
        // Measured from before the host's budget exists (it is made on the first call).
        let started = Instant::now();
        for _ in 0..20 {
            let r = client.get(&server.url("/")).send().unwrap();
            assert_eq!(r.status(), 503);
            r.bytes().unwrap();
        }
        let elapsed = started.elapsed();
        let stats = pool.stats();
        // 40 retries were warranted (2 per call). The floor allows 10 per second begun since
        // the first call: 10 if the calls took under a second, never the window's 100.
        let allowed = 10 * (elapsed.as_secs() + 1);
        println!(
            "{} retries sent, {} refused in {elapsed:?} (floor allows {allowed})",
            stats.retries(),
            stats.retries_refused()
        );
        assert!(stats.retries() >= 10, "the first second's floor is usable");
        assert!(
            stats.retries() <= allowed,
            "{} retries in {elapsed:?}: more than 10 per second begun",
            stats.retries()
        );
        // A call stops at its first refused retry.
        assert!(stats.retries_refused() >= 10, "{}", stats.retries_refused());
        assert_eq!(server.request_count() as u64, 20 + stats.retries());
    });
}
