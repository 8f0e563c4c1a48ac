//! Adaptive per-host concurrency limits (`AdaptiveLimit`) over loopback, against the fault
//! server, with a ledger at the server of the requests it is working on at once.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use http_sentinel::error::ErrorClass;
use http_sentinel::{AdaptiveLimit, ClientPool, ErrorKind, RetryPolicy, WorkerPool};
use support::server::{Behaviour, LoggedRequest, Reply, TestServer};
use support::{config, pool, scenario};

/// Requests the server is working on now, and the most it ever was.
#[derive(Default)]
struct Ledger {
    now: AtomicUsize,
    most: AtomicUsize,
    seen: AtomicUsize,
}

impl Ledger {
    /// A server whose every request counts in the ledger while it is "worked on" (`work` is
    /// the server's service time, the behaviour under test, not a synchronisation), then is
    /// answered 200. The ledger is left before the reply is written, so it never counts more
    /// than the client had waiting for a response head.
    fn server(self: &Arc<Self>, work: Duration) -> TestServer {
        let ledger = self.clone();
        TestServer::builder()
            .fallback(Behaviour::Handler(Arc::new(move |_: &LoggedRequest| {
                let now = ledger.now.fetch_add(1, SeqCst) + 1;
                ledger.most.fetch_max(now, SeqCst);
                ledger.seen.fetch_add(1, SeqCst);
                std::thread::sleep(work);
                ledger.now.fetch_sub(1, SeqCst);
                Behaviour::Respond(Reply::text(200, "ok"))
            })))
            .start()
    }
}

fn limited(limit: AdaptiveLimit, clients: usize, deadline: Duration) -> ClientPool {
    pool(
        config(deadline)
            .max_clients(clients)
            .retry(RetryPolicy::new().with_max_attempts(1))
            .adaptive_concurrency(limit),
    )
}

/// A gate the test opens: requests to the server wait behind it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait(&self) {
        let open = self.open.lock().unwrap();
        let _open = self
            .opened
            .wait_timeout_while(open, Duration::from_secs(10), |open| !*open)
            .unwrap();
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

#[test]
fn the_limiter_never_admits_more_than_its_limit() {
    scenario(|| {
        let ledger = Arc::new(Ledger::default());
        let server = ledger.server(Duration::from_millis(5));
        // The limit may learn, but never past 4; 16 workers want more.
        let limit = AdaptiveLimit::new().with_initial_limit(2).with_bounds(1, 4);
        let pool = limited(limit, 16, Duration::from_secs(20));
        let items: Vec<usize> = (0..320).collect();
        let url = server.url("/");
        let results = pool.fan_out(&items, 16, |client, _| {
            client.get(&url).send().map(|r| r.status().as_u16())
        });
        assert!(results.iter().all(|r| matches!(r, Ok(Ok(200)))));
        assert_eq!(ledger.seen.load(SeqCst), 320);
        let most = ledger.most.load(SeqCst);
        assert!(most <= 4, "the server worked on {most} requests at once");
        // The limit was learnt up to its bound and used: the ledger can see it.
        assert!(most >= 3, "the server never had more than {most} at once");
        let stats = pool.stats();
        let host = &stats.hosts()[0];
        assert_eq!(host.concurrency_limit(), Some(4));
        assert_eq!(host.in_flight(), Some(0));
        drop(pool);
        server.shutdown();
    });
}

#[test]
fn a_worker_pool_is_held_to_the_limit_without_extra_code() {
    scenario(|| {
        let ledger = Arc::new(Ledger::default());
        let server = ledger.server(Duration::from_millis(5));
        let limit = AdaptiveLimit::new().with_initial_limit(3).with_bounds(3, 3);
        let pool = limited(limit, 12, Duration::from_secs(20));
        let workers = WorkerPool::new(&pool, 12, 200).unwrap();
        let url = server.url("/");
        let jobs: Vec<_> = (0..120)
            .map(|_| {
                let url = url.clone();
                workers
                    .submit(move |client| client.get(&url).send().map(|r| r.status().as_u16()))
                    .unwrap_or_else(|_| panic!("queue full"))
            })
            .collect();
        for job in jobs {
            assert_eq!(job.wait().unwrap().unwrap(), 200);
        }
        workers.shutdown();
        let most = ledger.most.load(SeqCst);
        assert!(
            (2..=3).contains(&most),
            "the server worked on {most} at once"
        );
        drop(pool);
        server.shutdown();
    });
}

#[test]
fn a_503_a_429_and_a_slow_answer_each_decrease_the_limit() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/503", Behaviour::Respond(Reply::new(503)))
            .route("/429", Behaviour::Respond(Reply::new(429)))
            .route(
                "/slow",
                Behaviour::Handler(Arc::new(|_: &LoggedRequest| {
                    std::thread::sleep(Duration::from_millis(60));
                    Behaviour::Respond(Reply::text(200, "late"))
                })),
            )
            .route("/ok", Behaviour::Respond(Reply::text(200, "ok")))
            .start();
        let limit = AdaptiveLimit::new()
            .with_initial_limit(10)
            .with_latency_target(Duration::from_millis(30));
        let pool = limited(limit, 1, Duration::from_secs(5));
        let client = pool.checkout().unwrap();
        let learnt = || pool.stats().hosts()[0].concurrency_limit();
        assert_eq!(client.get(&server.url("/ok")).send().unwrap().status(), 200);
        // One call in flight does not fill a limit of 10: a success does not raise it.
        assert_eq!(learnt(), Some(10));
        assert_eq!(
            client.get(&server.url("/503")).send().unwrap().status(),
            503
        );
        assert_eq!(learnt(), Some(9));
        assert_eq!(
            client.get(&server.url("/429")).send().unwrap().status(),
            429
        );
        assert_eq!(learnt(), Some(8));
        assert_eq!(
            client.get(&server.url("/slow")).send().unwrap().status(),
            200
        );
        assert_eq!(learnt(), Some(7));
        let text = pool.stats().to_prometheus();
        let host = format!("127.0.0.1:{}", server.addr().port());
        assert!(
            text.contains(&format!(
                "http_sentinel_concurrency_limit{{host=\"{host}\"}} 7\n"
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            "http_sentinel_concurrency_in_flight{{host=\"{host}\"}} 0\n"
        )));
        assert!(pool.stats().to_string().contains("limit"));
        drop(client);
        drop(pool);
        server.shutdown();
    });
}

#[test]
fn a_call_over_the_limit_waits_then_fails_overloaded_within_its_deadline() {
    scenario(|| {
        let gate = Arc::new(Gate::default());
        let held = gate.clone();
        let server = TestServer::builder()
            .route(
                "/held",
                Behaviour::Handler(Arc::new(move |_: &LoggedRequest| {
                    held.wait();
                    Behaviour::Respond(Reply::text(200, "released"))
                })),
            )
            .route("/ok", Behaviour::Respond(Reply::text(200, "ok")))
            .start();
        let limit = AdaptiveLimit::new().with_initial_limit(1).with_bounds(1, 1);
        let pool = limited(limit, 2, Duration::from_secs(10));
        let held_url = server.url("/held");
        std::thread::scope(|s| {
            let holder = s.spawn(|| pool.with_client(|c| c.get(&held_url).send()?.text()));
            assert!(server.wait_for_requests(1, Duration::from_secs(10)));
            let deadline = Duration::from_millis(300);
            let client = pool.checkout().unwrap();
            let start = Instant::now();
            let err = client
                .get(&server.url("/ok"))
                .timeout(deadline)
                .send()
                .unwrap_err();
            let took = start.elapsed();
            let ErrorKind::Overloaded { limit, waited } = *err.kind() else {
                panic!("expected Overloaded, got {err:?}");
            };
            assert_eq!(limit, 1);
            assert!(waited >= deadline - Duration::from_millis(5), "{waited:?}");
            assert!(took >= deadline && took < deadline + Duration::from_millis(500));
            assert_eq!(err.class(), ErrorClass::Overloaded);
            assert!(err.to_string().contains("overloaded"), "{err}");
            // Nothing was sent for the refused call.
            assert_eq!(server.requests_to("/ok"), 0);
            gate.open();
            assert_eq!(holder.join().unwrap().unwrap().unwrap(), "released");
            // The slot is back: the next call goes through.
            assert_eq!(client.get(&server.url("/ok")).send().unwrap().status(), 200);
        });
        assert_eq!(pool.stats().calls_with_error(ErrorClass::Overloaded), 1);
        drop(pool);
        server.shutdown();
    });
}
