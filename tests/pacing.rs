//! Scenario 29: rate-limit pacing shared by every client of a pool, over loopback against the
//! fault server, which logs when each request arrived.

mod support;

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use http_sentinel::events::PacedEvent;
use http_sentinel::{ClientPool, ErrorKind, EventHandler, Pacing, RetryPolicy};
use support::server::{Behaviour, LoggedRequest, Reply, TestServer};
use support::{config, pool, scenario};

/// When each request arrived, with its `authorization`, and the reply it gets from `answer`.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<(Instant, String)>>>);

impl Arrivals {
    fn server(
        &self,
        answer: impl Fn(usize, &LoggedRequest) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        let log = self.clone();
        TestServer::builder()
            .fallback(Behaviour::Handler(Arc::new(move |req: &LoggedRequest| {
                let mut log = log.0.lock().unwrap();
                let key = req.header("authorization").unwrap_or("").to_owned();
                log.push((Instant::now(), key));
                Behaviour::Respond(answer(log.len(), req))
            })))
            .start()
    }

    fn times(&self) -> Vec<Instant> {
        let mut t: Vec<Instant> = self.0.lock().unwrap().iter().map(|(t, _)| *t).collect();
        t.sort();
        t
    }
}

fn paced_pool(pacing: Pacing, deadline: Duration) -> ClientPool {
    pool(
        config(deadline)
            .retry(RetryPolicy::new().with_max_attempts(1))
            .pacing(pacing),
    )
}

/// `threads` threads, each with its own client, one GET each; all start together.
fn burst(pool: &ClientPool, url: &str, threads: usize) {
    let gate = Arc::new(std::sync::Barrier::new(threads));
    thread::scope(|s| {
        for _ in 0..threads {
            let gate = gate.clone();
            s.spawn(move || {
                let client = pool.checkout().unwrap();
                gate.wait();
                let status = client.get(url).send().unwrap().status();
                assert_eq!(status, 200);
            });
        }
    });
}

#[derive(Default)]
struct Paced(Mutex<Vec<(Duration, bool)>>);

impl EventHandler for Paced {
    fn on_paced(&self, e: &PacedEvent) {
        self.0.lock().unwrap().push((e.wait(), e.sent()));
    }
}

#[test]
fn a_retry_after_seen_by_one_thread_holds_the_next_thread_until_it_is_over() {
    scenario(|| {
        let arrivals = Arrivals::default();
        let server = arrivals.server(|n, _| match n {
            1 => Reply::new(429)
                .header("retry-after", "1")
                .header("retry-after-ms", "400"),
            _ => Reply::text(200, "ok"),
        });
        let events = Arc::new(Paced::default());
        let pool = pool(
            config(Duration::from_secs(5))
                .retry(RetryPolicy::new().with_max_attempts(1))
                .pacing(Pacing::new())
                .event_handler(events.clone()),
        );
        let url = server.url("/v1/chat");
        let first = thread::scope(|s| {
            s.spawn(|| pool.checkout().unwrap().get(&url).send().unwrap().status())
                .join()
                .unwrap()
        });
        assert_eq!(first, 429);
        // Another thread, another client: it waits out the server's 400 ms.
        let second = thread::scope(|s| {
            s.spawn(|| pool.checkout().unwrap().get(&url).send().unwrap().status())
                .join()
                .unwrap()
        });
        assert_eq!(second, 200);
        let t = arrivals.times();
        assert_eq!(t.len(), 2);
        let gap = t[1] - t[0];
        assert!(
            gap >= Duration::from_millis(400),
            "second request {gap:?} after the 429"
        );
        let stats = pool.stats();
        assert_eq!(stats.paced_requests(), 1);
        assert!(stats.paced_micros() >= 390_000, "{}", stats.paced_micros());
        assert!(stats
            .to_prometheus()
            .contains("http_sentinel_paced_requests_total{host=\""));
        let seen = events.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].1, "the paced attempt was sent");
    });
}

#[test]
fn a_deadline_shorter_than_the_wait_fails_rate_limited_without_sending() {
    scenario(|| {
        let arrivals = Arrivals::default();
        let server = arrivals.server(|_, _| Reply::new(429).header("retry-after", "10"));
        let pool = paced_pool(Pacing::new(), Duration::from_millis(300));
        let client = pool.checkout().unwrap();
        let url = server.url("/");
        assert_eq!(client.get(&url).send().unwrap().status(), 429);
        let started = Instant::now();
        let err = client.get(&url).send().unwrap_err();
        let took = started.elapsed();
        match err.kind() {
            ErrorKind::RateLimited { wait } => {
                assert!(*wait > Duration::from_secs(9) && *wait <= Duration::from_secs(10))
            }
            other => panic!("expected RateLimited, got {other:?}"),
        }
        // It fails at once instead of sleeping into its deadline.
        assert!(took < Duration::from_millis(300), "took {took:?}");
        assert_eq!(arrivals.times().len(), 1, "nothing sent while blocked");
        let errors = pool
            .stats()
            .calls_with_error(http_sentinel::error::ErrorClass::RateLimited);
        assert_eq!(errors, 1);
    });
}

#[test]
fn remaining_quota_is_spread_over_the_time_to_reset_across_threads() {
    scenario(|| {
        let arrivals = Arrivals::default();
        // 4 left, reset in 400 ms: one request every 100 ms, not a burst of 4.
        let server = arrivals.server(|_, _| {
            Reply::text(200, "ok")
                .header("x-ratelimit-remaining-requests", "4")
                .header("x-ratelimit-reset-requests", "400ms")
        });
        let pool = paced_pool(Pacing::new(), Duration::from_secs(5));
        let url = server.url("/v1/completions");
        assert_eq!(
            pool.checkout().unwrap().get(&url).send().unwrap().status(),
            200
        );
        burst(&pool, &url, 4);
        let t = arrivals.times();
        assert_eq!(t.len(), 5);
        // Slots 100 ms apart from the second request on (less a late sleeper's slack).
        let span = t[4] - t[1];
        assert!(
            span >= Duration::from_millis(280),
            "4 requests spread over {span:?}"
        );
        assert!(pool.stats().paced_requests() >= 3);
    });
}

#[test]
fn a_configured_limit_is_a_token_bucket_shared_by_the_pool() {
    scenario(|| {
        let arrivals = Arrivals::default();
        let server = arrivals.server(|_, _| Reply::text(200, "ok"));
        // 2 per 300 ms: a burst of 2, then one every 150 ms.
        let pacing = Pacing::new().with_limit(2, Duration::from_millis(300));
        let pool = paced_pool(pacing, Duration::from_secs(5));
        burst(&pool, &server.url("/"), 5);
        let t = arrivals.times();
        assert_eq!(t.len(), 5);
        let span = t[4] - t[0];
        assert!(
            span >= Duration::from_millis(440),
            "5 requests within {span:?}"
        );
        assert_eq!(pool.stats().paced_requests(), 3);
    });
}

#[test]
fn each_api_key_has_its_own_limiter_and_the_key_is_never_shown() {
    scenario(|| {
        let arrivals = Arrivals::default();
        let server = arrivals.server(|_, req| match req.header("authorization") {
            Some("Bearer sk-alpha-secret") => Reply::new(429).header("retry-after", "30"),
            _ => Reply::text(200, "ok"),
        });
        let pool = paced_pool(Pacing::new().with_per_key(true), Duration::from_millis(500));
        let client = pool.checkout().unwrap();
        let url = server.url("/");
        let alpha = "Bearer sk-alpha-secret";
        let beta = "Bearer sk-beta-secret";
        let status = client
            .get(&url)
            .header("authorization", alpha)
            .send()
            .unwrap()
            .status();
        assert_eq!(status, 429);
        // The other key is not held by alpha's Retry-After.
        let status = client
            .get(&url)
            .header("authorization", beta)
            .send()
            .unwrap()
            .status();
        assert_eq!(status, 200);
        let err = client
            .get(&url)
            .header("authorization", alpha)
            .send()
            .unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::RateLimited { .. }),
            "{err:?}"
        );
        for text in [
            format!("{err}"),
            format!("{err:?}"),
            format!("{}", pool.stats()),
        ] {
            assert!(!text.contains("sk-alpha"), "{text}");
        }
        // x-api-key counts as a key too, separate from both.
        let status = client
            .get(&url)
            .header("x-api-key", "k3")
            .send()
            .unwrap()
            .status();
        assert_eq!(status, 200);
        assert_eq!(arrivals.times().len(), 3);
    });
}
