//! Retry-After, the retry budget under load, non-retryable statuses and the circuit breaker
//! over loopback (fault scenarios 11-14, tests/README.md), checked against the server's
//! request log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_sentinel::http::StatusCode;
use http_sentinel::{
    retry::Jitter, BreakerConfig, ClientPool, Error, ErrorKind, PoolConfigBuilder, RetryPolicy,
};

mod support;

use support::server::{Behaviour, LoggedRequest, Reply, TestServer};
use support::{fast, pool, scenario};

/// Slack allowed past an expected duration: scheduling, not a performance target.
const MARGIN: Duration = Duration::from_millis(1500);
/// Bound on any wait for another thread or the server.
const STEP: Duration = Duration::from_secs(10);

fn config() -> PoolConfigBuilder {
    support::config(Duration::from_secs(10))
}

fn count_by_request_id(log: &[LoggedRequest]) -> HashMap<String, u32> {
    let mut counts = HashMap::new();
    for request in log {
        let id = request
            .header("x-request-id")
            .expect("every request carries an id");
        *counts.entry(id.to_owned()).or_insert(0) += 1;
    }
    counts
}

// 11. Retry-After

#[test]
fn retry_after_seconds_on_503_is_waited_for_then_the_call_succeeds() {
    scenario(|| {
        let server = TestServer::builder()
            .route(
                "/",
                Behaviour::Sequence(vec![
                    Behaviour::Respond(Reply::new(503).header("retry-after", "2")),
                    Behaviour::Respond(Reply::text(200, "recovered")),
                ]),
            )
            .start();
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let started = Instant::now();
        let response = client.get(&server.url("/")).send().unwrap();
        let took = started.elapsed();
        assert_eq!(response.status(), 200);
        assert_eq!(response.attempts(), 2);
        assert_eq!(response.text().unwrap(), "recovered");
        assert!(took >= Duration::from_secs(2), "{took:?}");
        assert!(took < Duration::from_secs(2) + MARGIN, "{took:?}");
        assert_eq!(server.requests_to("/"), 2);
    });
}

#[test]
fn retry_after_http_date_on_429_is_waited_for_then_the_call_succeeds() {
    scenario(|| {
        // Two to three seconds ahead, on a whole second as an HTTP-date has no fraction.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let at = now.as_secs() + 3;
        let server = TestServer::builder()
            .route(
                "/",
                Behaviour::Sequence(vec![
                    Behaviour::Respond(Reply::new(429).header("retry-after", http_date(at))),
                    Behaviour::Respond(Reply::text(200, "recovered")),
                ]),
            )
            .start();
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let response = client.get(&server.url("/")).send().unwrap();
        let done = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.attempts(), 2);
        assert!(
            done >= Duration::from_secs(at),
            "retried {:?} before the date",
            Duration::from_secs(at) - done
        );
        assert!(done < Duration::from_secs(at) + MARGIN, "{done:?}");
        assert_eq!(server.requests_to("/"), 2);
    });
}

#[test]
fn retry_after_beyond_the_cap_fails_fast_with_the_servers_wait() {
    scenario(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let server = TestServer::builder()
            .route(
                "/seconds",
                Behaviour::Respond(Reply::new(503).header("retry-after", "120")),
            )
            .route(
                "/date",
                Behaviour::Respond(Reply::new(429).header("retry-after", http_date(now + 3600))),
            )
            .start();
        let policy = fast().with_max_retry_after(Duration::from_secs(5));
        let pool = pool(config().retry(policy));
        let client = pool.checkout().unwrap();

        let started = Instant::now();
        let err = client.get(&server.url("/seconds")).send().unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::RetryAfterTooLong {
                wait: Duration::from_secs(120),
                status: StatusCode::SERVICE_UNAVAILABLE
            },
            "{err:?}"
        );
        assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert!(err.to_string().contains("120s"), "{err}");
        assert_eq!(server.requests_to("/seconds"), 1);

        let err = client.get(&server.url("/date")).send().unwrap_err();
        match err.kind() {
            ErrorKind::RetryAfterTooLong { wait, status } if *status == 429 => {
                let wait = wait.as_secs();
                assert!((3590..=3600).contains(&wait), "{wait}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(server.requests_to("/date"), 1);
        assert!(started.elapsed() < MARGIN, "{:?}", started.elapsed());
    });
}

#[test]
fn retry_after_past_the_deadline_fails_fast_with_the_servers_wait() {
    scenario(|| {
        let server = TestServer::builder()
            .route(
                "/",
                Behaviour::Respond(Reply::new(503).header("retry-after", "3")),
            )
            .start();
        let pool = pool(config().deadline(Duration::from_secs(1)));
        let client = pool.checkout().unwrap();
        let started = Instant::now();
        let err = client.get(&server.url("/")).send().unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::RetryAfterTooLong {
                wait: Duration::from_secs(3),
                status: StatusCode::SERVICE_UNAVAILABLE
            },
            "{err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "did not fail fast"
        );
        assert_eq!(server.requests_to("/"), 1);
    });
}

/// IMF-fixdate (RFC 9110 §5.6.7) for `secs` after the epoch.
fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn http_date_formats_the_rfc_example() {
    scenario(|| {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    });
}

// 12. 500 to everything from 32 threads

const THREADS: usize = 32;

/// Retries that the budget must cap well below what `max_attempts` alone allows.
fn budgeted() -> RetryPolicy {
    RetryPolicy::new()
        .with_max_attempts(4)
        .with_base_delay(Duration::from_millis(1))
        .with_jitter(Jitter::None)
        .with_budget_ratio(0.2)
        .with_budget_min_per_sec(2)
        .with_budget_window(Duration::from_secs(10))
}

/// The most requests the budget allows for `calls` calls within one budget window.
fn budget_bound(policy: &RetryPolicy, calls: usize) -> f64 {
    let floor = f64::from(policy.budget_min_per_sec()) * policy.budget_window().as_secs_f64();
    calls as f64 * (1.0 + policy.budget_ratio()) + floor
}

/// One call's outcome in the caller's ledger.
#[derive(Debug)]
enum Outcome {
    Status { status: u16, attempts: u32 },
    Failed(Error),
}

impl Outcome {
    fn attempts(&self) -> u32 {
        match self {
            Outcome::Status { attempts, .. } => *attempts,
            Outcome::Failed(e) => e.attempts(),
        }
    }
}

/// Runs `calls_per_thread` GETs from each of 32 threads (released together), each call with
/// its own `X-Request-Id`, and returns the ledger. A thread stops early once `stop` says so.
fn hammer(
    pool: &ClientPool,
    url: &str,
    tag: &str,
    calls_per_thread: usize,
    stop: impl Fn(&Outcome) -> bool + Sync,
) -> Vec<(String, Outcome)> {
    let barrier = Barrier::new(THREADS);
    let give_up = Instant::now() + Duration::from_secs(30);
    let results = pool.scope(THREADS, |worker| {
        barrier.wait();
        let mut ledger = Vec::new();
        for n in 0..calls_per_thread {
            if Instant::now() > give_up {
                break;
            }
            let id = format!("{tag}-{}-{n}", worker.id());
            let outcome = match worker.get(url).header("x-request-id", &id).send() {
                Ok(response) => {
                    let (status, attempts) = (response.status().as_u16(), response.attempts());
                    let _ = response.bytes();
                    Outcome::Status { status, attempts }
                }
                Err(e) => Outcome::Failed(e),
            };
            let done = stop(&outcome);
            ledger.push((id, outcome));
            if done {
                break;
            }
        }
        ledger
    });
    results
        .into_iter()
        .flat_map(|r| r.expect("worker ran"))
        .collect()
}

#[test]
fn always_500_from_32_threads_stays_within_max_attempts_and_the_retry_budget() {
    scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(500, "down")))
            .start();
        let policy = budgeted();
        let pool = pool(config().max_clients(THREADS).retry(policy.clone()));
        let ledger = hammer(&pool, &server.url("/"), "c", 50, |_| false);

        let calls = ledger.len();
        assert_eq!(calls, THREADS * 50, "every call has one outcome");
        let sent = count_by_request_id(&server.requests());
        for (id, outcome) in &ledger {
            let Outcome::Status {
                status: 500,
                attempts,
            } = outcome
            else {
                panic!("{id}: {outcome:?}");
            };
            assert!(
                (1..=policy.max_attempts()).contains(attempts),
                "{id}: {attempts}"
            );
            assert_eq!(
                sent.get(id),
                Some(attempts),
                "{id}: server log and ledger disagree"
            );
        }
        assert_eq!(sent.len(), calls, "requests the caller never made");

        let requests = server.request_count();
        let bound = budget_bound(&policy, calls);
        let amplification = requests as f64 / calls as f64;
        println!(
            "always-500, breaker off: {calls} calls from {THREADS} threads -> {requests} requests, \
             amplification {amplification:.3} (budget bound {:.3}, max_attempts alone {})",
            bound / calls as f64,
            policy.max_attempts()
        );
        assert!(requests as f64 <= bound, "{requests} requests > {bound}");
        let stats = pool.stats();
        assert_eq!(stats.calls(), calls as u64);
        assert_eq!(stats.attempts(), requests as u64);
        assert!(
            stats.retries_refused() > 0,
            "the budget never refused a retry"
        );
    });
}

#[test]
fn always_500_from_32_threads_opens_the_breaker_then_calls_fail_without_connecting() {
    scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(500, "down")))
            .start();
        let policy = budgeted();
        let breaker = BreakerConfig::new()
            .with_min_calls(20)
            .with_failure_ratio(0.5)
            .with_window(Duration::from_secs(10))
            // Stays open for the rest of the test.
            .with_break_duration(Duration::from_secs(60));
        let pool = pool(
            config()
                .max_clients(THREADS)
                .retry(policy.clone())
                .breaker(breaker),
        );
        let url = server.url("/");

        // Until the breaker opens: every call is a 500 after at most max_attempts, or rejected.
        let ledger = hammer(&pool, &url, "open", 200, |o| {
            matches!(o, Outcome::Failed(_))
        });
        let sent = count_by_request_id(&server.requests());
        let mut rejected = 0;
        for (id, outcome) in &ledger {
            assert!(
                outcome.attempts() <= policy.max_attempts(),
                "{id}: {outcome:?}"
            );
            assert_eq!(
                sent.get(id).copied().unwrap_or(0),
                outcome.attempts(),
                "{id}: server log and ledger disagree"
            );
            match outcome {
                Outcome::Status { status: 500, .. } => {}
                Outcome::Failed(e) if e.is_circuit_open() => rejected += 1,
                other => panic!("{id}: {other:?}"),
            }
        }
        assert!(rejected > 0, "the breaker never opened");
        let calls = ledger.len();
        let requests = server.request_count();
        let bound = budget_bound(&policy, calls);
        println!(
            "always-500, breaker on: {calls} calls from {THREADS} threads -> {requests} requests, \
             amplification {:.3} (budget bound {:.3}); {rejected} calls rejected by the open breaker",
            requests as f64 / calls as f64,
            bound / calls as f64
        );
        assert!(requests as f64 <= bound, "{requests} requests > {bound}");

        // Open: nothing reaches the server, not even a connection.
        let connections = server.connections_accepted();
        let ledger = hammer(&pool, &url, "shut", 10, |_| false);
        assert_eq!(ledger.len(), THREADS * 10);
        for (id, outcome) in &ledger {
            match outcome {
                Outcome::Failed(e) => match e.kind() {
                    ErrorKind::CircuitOpen { retry_in } => {
                        assert!(*retry_in > Duration::from_secs(30), "{id}: {retry_in:?}");
                        assert_eq!(e.attempts(), 0, "{id}");
                    }
                    other => panic!("{id}: {other:?}"),
                },
                other => panic!("{id}: {other:?}"),
            }
        }
        assert_eq!(server.request_count(), requests);
        assert_eq!(server.connections_accepted(), connections);
        assert!(pool.stats().breaker_rejections() >= (THREADS * 10) as u64);
    });
}

// 13. Statuses that are never retried

#[test]
fn client_errors_and_501_are_sent_exactly_once() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/400", Behaviour::Respond(Reply::text(400, "bad")))
            .route("/404", Behaviour::Respond(Reply::text(404, "missing")))
            .route("/501", Behaviour::Respond(Reply::text(501, "nope")))
            .route("/409", Behaviour::Respond(Reply::text(409, "conflict")))
            .start();
        let pool = pool(config().retry(fast().with_max_attempts(5)));
        let client = pool.checkout().unwrap();
        for path in ["/400", "/404", "/501", "/409"] {
            let response = client.get(&server.url(path)).send().unwrap();
            assert_eq!(response.status().as_str(), &path[1..]);
            assert_eq!(response.attempts(), 1, "{path}");
            let _ = response.bytes().unwrap();

            let response = client
                .post(&server.url(path))
                .header("idempotency-key", "k")
                .body("x")
                .send()
                .unwrap();
            assert_eq!(response.attempts(), 1, "{path}");
            let err = response.error_for_status().unwrap_err();
            assert_eq!(
                err.status().map(|s| s.as_u16().to_string()).as_deref(),
                Some(&path[1..])
            );
            assert_eq!(server.requests_to(path), 2, "{path} retried");
        }
    });
}

#[test]
fn retryable_status_on_a_plain_post_is_not_retried() {
    scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(503, "busy")))
            .start();
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let response = client.post(&server.url("/")).body("x").send().unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.attempts(), 1);
        assert_eq!(server.request_count(), 1);

        // The same with an Idempotency-Key is retried up to max_attempts.
        let response = client
            .post(&server.url("/"))
            .header("idempotency-key", "k")
            .body("x")
            .send()
            .unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.attempts(), 3);
        assert_eq!(server.request_count(), 4);
    });
}

// 14. Half-open breaker

/// A gate the server's handler waits at until the test opens it (bounded by `STEP`).
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait(&self) {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = self
            .opened
            .wait_timeout_while(open, STEP, |open| !*open)
            .unwrap_or_else(PoisonError::into_inner);
    }

    fn set(&self, value: bool) {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner) = value;
        self.opened.notify_all();
    }
}

/// Opens the gate when dropped, so that a failed assertion never leaves a request held.
struct OpenOnDrop<'a>(&'a Gate);

impl Drop for OpenOnDrop<'_> {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// Sends one GET from each of 32 threads at once while the breaker is half-open: the probe
/// is held at the server until the other 31 calls have their outcome, which must be a
/// rejection. Returns the probe's status.
fn probe_round(pool: &ClientPool, server: &TestServer, gate: &Gate) -> u16 {
    gate.set(false);
    let before = server.request_count();
    let barrier = Barrier::new(THREADS);
    let (tx, rx) = mpsc::channel();
    thread::scope(|s| {
        // Dropped before the scope joins its threads, also when an assertion fails.
        let _release = OpenOnDrop(gate);
        for _ in 0..THREADS {
            let tx = tx.clone();
            let barrier = &barrier;
            let client = pool.checkout().unwrap();
            let url = server.url("/");
            s.spawn(move || {
                barrier.wait();
                let outcome = client.get(&url).send().map(|r| {
                    let status = r.status().as_u16();
                    let _ = r.bytes();
                    status
                });
                let _ = tx.send(outcome);
            });
        }
        let mut outcomes = Vec::new();
        let give_up = Instant::now() + STEP;
        while outcomes.len() < THREADS - 1 {
            let left = give_up.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(outcome) => outcomes.push(outcome),
                Err(_) => panic!("only {} calls finished: {outcomes:?}", outcomes.len()),
            }
        }
        for outcome in &outcomes {
            match outcome {
                Err(e) if e.is_circuit_open() => assert_eq!(e.attempts(), 0),
                other => panic!("a second call went through while half-open: {other:?}"),
            }
        }
        assert!(server.wait_for_requests(before + 1, STEP), "no probe sent");
        assert_eq!(server.request_count(), before + 1, "exactly one probe");
        gate.set(true);
        let probe = rx.recv_timeout(STEP).expect("the probe finishes");
        probe.expect("the probe gets the server's answer")
    })
}

/// Waits out the break the breaker reported. Waiting for the breaker's own clock to run is
/// the point here; nothing is synchronised by it.
fn wait_out(err: &Error) {
    match err.kind() {
        ErrorKind::CircuitOpen { retry_in } => thread::sleep(*retry_in),
        other => panic!("expected an open breaker: {other:?}"),
    }
}

#[test]
fn half_open_breaker_sends_exactly_one_probe_and_reopens_or_closes_on_its_result() {
    scenario(|| {
        let status = Arc::new(AtomicU16::new(500));
        let holding = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(Gate::default());
        let handler = {
            let (status, holding, gate) = (status.clone(), holding.clone(), gate.clone());
            move |_: &LoggedRequest| {
                if holding.load(Ordering::SeqCst) {
                    gate.wait();
                }
                Behaviour::Respond(Reply::new(status.load(Ordering::SeqCst)))
            }
        };
        let server = TestServer::builder()
            .fallback(Behaviour::Handler(Arc::new(handler)))
            .start();
        let break_duration = Duration::from_secs(1);
        let breaker = BreakerConfig::new()
            .with_min_calls(2)
            .with_failure_ratio(0.5)
            .with_window(Duration::from_secs(10))
            .with_break_duration(break_duration);
        let pool = pool(
            config()
                .max_clients(THREADS)
                .retry(RetryPolicy::none())
                .breaker(breaker),
        );
        let url = server.url("/");
        {
            let client = pool.checkout().unwrap();
            for _ in 0..2 {
                let response = client.get(&url).send().unwrap();
                assert_eq!(response.status(), 500);
                let _ = response.bytes();
            }
        }
        let open = pool.checkout().unwrap().get(&url).send().unwrap_err();
        assert!(open.is_circuit_open(), "{open:?}");
        assert_eq!(server.request_count(), 2);

        // A failed probe reopens the breaker for a whole new break.
        wait_out(&open);
        holding.store(true, Ordering::SeqCst);
        assert_eq!(probe_round(&pool, &server, &gate), 500);
        let reopened = pool.checkout().unwrap().get(&url).send().unwrap_err();
        match reopened.kind() {
            ErrorKind::CircuitOpen { retry_in } => assert!(*retry_in > break_duration / 2),
            other => panic!("expected the breaker to reopen: {other:?}"),
        }
        assert_eq!(server.request_count(), 3);

        // A successful probe closes it: every call goes through again.
        wait_out(&reopened);
        status.store(200, Ordering::SeqCst);
        assert_eq!(probe_round(&pool, &server, &gate), 200);
        holding.store(false, Ordering::SeqCst);
        assert_eq!(server.request_count(), 4);
        let client = pool.checkout().unwrap();
        for _ in 0..THREADS {
            let response = client.get(&url).send().unwrap();
            assert_eq!(response.status(), 200);
            let _ = response.bytes();
        }
        assert_eq!(server.request_count(), 4 + THREADS);
    });
}
