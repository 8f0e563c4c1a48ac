//! 32 workers against a server that drops 10 % of connections at random points
//! (fault scenario 20, tests/README.md): every call ends with exactly one outcome in the caller's
//! ledger, failures are typed, nothing hangs, and the server's log agrees with the ledger.
//!
//! The tests of this file run one at a time and check that the process has as many open file
//! descriptors afterwards as before.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http_sentinel::{
    retry::Jitter, BreakerConfig, Client, ClientPool, Error, ErrorKind, PoolConfig, RetryPolicy,
};

mod support;

use support::server::{Behaviour, LoggedRequest, Reply, TestServer};

const WORKERS: usize = 32;
const DROP_PERCENT: u32 = 10;
const DEADLINE: Duration = Duration::from_secs(5);
/// Slack allowed past the deadline: scheduling, not a performance target.
const MARGIN: Duration = Duration::from_millis(1500);
/// A run that is still going after this is hung: its remaining calls are not made, and the
/// ledger comes up short.
const GIVE_UP: Duration = Duration::from_secs(45);

static SERIAL: Mutex<()> = Mutex::new(());

fn open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|dir| dir.count())
}

fn policy() -> RetryPolicy {
    RetryPolicy::new()
        .with_base_delay(Duration::from_millis(5))
        .with_jitter(Jitter::Full)
}

fn pool() -> ClientPool {
    ClientPool::new(
        PoolConfig::builder()
            .max_clients(WORKERS)
            .deadline(DEADLINE)
            .retry(policy())
            // Random drops are not an outage; a breaker would only blur the ledger.
            .breaker(BreakerConfig::disabled())
            .build(),
    )
    .unwrap()
}

/// A server that drops connections and otherwise answers with a body naming the call, so a
/// caller can tell its own response from anyone else's. GETs get the id and padding (long
/// enough for drops to land inside the body); other methods get their request body back.
fn dropping_server(seed: u64) -> TestServer {
    let answer = |request: &LoggedRequest| {
        let id = request.header("x-request-id").unwrap_or("none").to_owned();
        let body = if request.method == "GET" {
            expected_get_body(&id)
        } else {
            request.body.clone()
        };
        Behaviour::Respond(Reply::new(200).header("x-request-id", id).body(body))
    };
    TestServer::builder()
        .fallback(Behaviour::Handler(Arc::new(answer)))
        .drop_rate(DROP_PERCENT, seed)
        .start()
}

fn expected_get_body(id: &str) -> Vec<u8> {
    format!("{id}:{}", "x".repeat(1500)).into_bytes()
}

/// One line of the caller's ledger.
struct Entry {
    id: String,
    outcome: Result<Vec<u8>, Error>,
    took: Duration,
}

/// Runs `per_worker` calls on each of the 32 workers; `call` sends one request with the id
/// and returns the body it read. Returns the ledger and the run's duration.
fn run(
    pool: &ClientPool,
    per_worker: usize,
    call: impl Fn(&Client, &str) -> Result<Vec<u8>, Error> + Sync,
) -> (Vec<Entry>, Duration) {
    let started = Instant::now();
    let give_up = started + GIVE_UP;
    let results = pool.scope(WORKERS, |worker| {
        let mut ledger = Vec::with_capacity(per_worker);
        for n in 0..per_worker {
            if Instant::now() > give_up {
                break;
            }
            let id = format!("w{}-{n}", worker.id());
            let call_started = Instant::now();
            let outcome = call(worker, &id);
            ledger.push(Entry {
                id,
                outcome,
                took: call_started.elapsed(),
            });
        }
        ledger
    });
    let ledger = results
        .into_iter()
        .flat_map(|r| r.expect("worker ran"))
        .collect();
    (ledger, started.elapsed())
}

/// Checks what holds for every run: one outcome per call, ids unique, nothing slower than the
/// deadline, failures of the kinds a dropped connection can cause, and no request at the
/// server that the ledger does not know. Returns the failures by kind.
fn check_ledger(ledger: &[Entry], calls: usize, server: &TestServer) -> BTreeMap<String, usize> {
    assert_eq!(ledger.len(), calls, "calls without an outcome (hung?)");
    let ids: HashSet<&str> = ledger.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), calls, "an id with two outcomes");
    let mut failures = BTreeMap::new();
    for entry in ledger {
        assert!(
            entry.took < DEADLINE + MARGIN,
            "{} took {:?}",
            entry.id,
            entry.took
        );
        if let Err(e) = &entry.outcome {
            let typed = matches!(
                e.kind(),
                ErrorKind::Io { .. } | ErrorKind::Protocol | ErrorKind::Timeout(_)
            );
            assert!(typed, "{}: untyped failure {e:?}", entry.id);
            let kind = match e.kind() {
                ErrorKind::Io { kind, .. } => format!("io {kind:?}"),
                other => format!("{other:?}"),
            };
            *failures.entry(kind).or_insert(0) += 1;
        }
    }
    for request in server.requests() {
        let id = request.header("x-request-id").unwrap_or("none");
        assert!(ids.contains(id), "request {id} that no call made");
    }
    failures
}

fn per_id(server: &TestServer) -> HashMap<String, Vec<LoggedRequest>> {
    let mut map: HashMap<String, Vec<LoggedRequest>> = HashMap::new();
    for request in server.requests() {
        let id = request.header("x-request-id").unwrap_or("none").to_owned();
        map.entry(id).or_default().push(request);
    }
    map
}

fn report(
    what: &str,
    ledger: &[Entry],
    failures: &BTreeMap<String, usize>,
    server: &TestServer,
    took: Duration,
) {
    let ok = ledger.iter().filter(|e| e.outcome.is_ok()).count();
    println!(
        "{what}: {} calls in {took:?}: {ok} ok, failures {failures:?}; server read {} requests \
         on {} connections",
        ledger.len(),
        server.request_count(),
        server.connections_accepted()
    );
}

/// Runs `test` alone and checks that the sockets it opened are all closed afterwards.
fn serial(test: impl FnOnce()) {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let before = open_fds();
    test();
    assert_eq!(open_fds(), before, "file descriptors leaked");
}

#[test]
fn gets_under_random_drops_each_end_with_exactly_one_outcome() {
    const PER_WORKER: usize = 1000; // fault scenario 20 (tests/README.md): 32 workers x 1000 GETs
    serial(|| {
        let server = dropping_server(0x5eed_0001);
        let pool = pool();
        let (ledger, took) = run(&pool, PER_WORKER, |client, id| {
            client
                .get(&server.url("/item"))
                .header("x-request-id", id)
                .send()?
                .bytes()
        });
        let failures = check_ledger(&ledger, WORKERS * PER_WORKER, &server);
        report("GET", &ledger, &failures, &server, took);

        let sent = per_id(&server);
        let max = policy().max_attempts() as usize + 1;
        let mut ok = 0;
        for entry in &ledger {
            let requests = sent.get(&entry.id).map_or(0, Vec::len);
            // Attempts, plus one replay of a stale pooled connection.
            assert!(requests <= max, "{}: sent {requests} times", entry.id);
            if let Ok(body) = &entry.outcome {
                ok += 1;
                assert_eq!(
                    *body,
                    expected_get_body(&entry.id),
                    "{}: wrong body",
                    entry.id
                );
                assert!(
                    requests >= 1,
                    "{}: a success the server never saw",
                    entry.id
                );
            }
        }
        // Three attempts against one-in-ten drops: failures are the exception (mostly drops
        // after the head, which are never retried).
        assert!(
            ok * 10 >= ledger.len() * 8,
            "only {ok} of {} succeeded",
            ledger.len()
        );
        assert!(
            server.connections_accepted() > WORKERS,
            "no connection was dropped"
        );
        let stats = pool.stats();
        assert_eq!(stats.calls(), ledger.len() as u64);
        drop(pool);
    });
}

#[test]
fn posts_with_an_idempotency_key_are_retried_under_random_drops() {
    const PER_WORKER: usize = 50;
    serial(|| {
        let server = dropping_server(0x5eed_0002);
        let pool = pool();
        let (ledger, took) = run(&pool, PER_WORKER, |client, id| {
            client
                .post(&server.url("/orders"))
                .header("x-request-id", id)
                .header("idempotency-key", id)
                .body(format!("order {id}"))
                .send()?
                .bytes()
        });
        let failures = check_ledger(&ledger, WORKERS * PER_WORKER, &server);
        report(
            "POST with Idempotency-Key",
            &ledger,
            &failures,
            &server,
            took,
        );

        let sent = per_id(&server);
        let max = policy().max_attempts() as usize + 1;
        let mut resent = 0;
        for entry in &ledger {
            let requests = sent.get(&entry.id).map(Vec::as_slice).unwrap_or_default();
            assert!(
                requests.len() <= max,
                "{}: sent {} times",
                entry.id,
                requests.len()
            );
            let body = format!("order {}", entry.id).into_bytes();
            for request in requests {
                assert_eq!(
                    request.body, body,
                    "{}: a resend changed the body",
                    entry.id
                );
                assert_eq!(request.header("idempotency-key"), Some(entry.id.as_str()));
            }
            if requests.len() > 1 {
                resent += 1;
            }
            if let Ok(echoed) = &entry.outcome {
                assert_eq!(*echoed, body, "{}: wrong body", entry.id);
            }
        }
        assert!(resent > 0, "no keyed POST was ever resent");
    });
}

#[test]
fn posts_without_a_key_are_never_sent_twice_under_random_drops() {
    const PER_WORKER: usize = 50;
    serial(|| {
        let server = dropping_server(0x5eed_0003);
        let pool = pool();
        let (ledger, took) = run(&pool, PER_WORKER, |client, id| {
            client
                .post(&server.url("/payments"))
                .header("x-request-id", id)
                .body(format!("payment {id}"))
                .send()?
                .bytes()
        });
        let failures = check_ledger(&ledger, WORKERS * PER_WORKER, &server);
        report("POST without key", &ledger, &failures, &server, took);

        let sent = per_id(&server);
        let mut failed = 0;
        for entry in &ledger {
            let requests = sent.get(&entry.id).map_or(0, Vec::len);
            assert!(
                requests <= 1,
                "{}: a plain POST sent {requests} times",
                entry.id
            );
            match &entry.outcome {
                Ok(echoed) => {
                    assert_eq!(requests, 1, "{}", entry.id);
                    assert_eq!(*echoed, format!("payment {}", entry.id).into_bytes());
                }
                Err(e) => {
                    failed += 1;
                    // The server read it: the caller must not be told it did nothing.
                    if requests == 1 {
                        assert!(e.may_have_been_processed(), "{}: {e:?}", entry.id);
                    }
                }
            }
        }
        assert!(failed > 0, "no drop reached a plain POST");
    });
}
