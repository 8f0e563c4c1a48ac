//! `WorkerPool`: one client per worker, panics, backpressure, resize under load with a ledger,
//! shutdown draining, shutdown_now, checkout failure.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use http_sentinel::{workers::JobHandle, ClientPool, Error, ErrorKind, PoolConfig, WorkerPool};

mod support;

use support::server::{Behaviour, LoggedRequest, Reply, TestServer};

/// Upper bound for any single wait in these tests.
const STEP: Duration = Duration::from_secs(10);

fn pool(clients: usize) -> ClientPool {
    ClientPool::new(PoolConfig::builder().max_clients(clients).build()).unwrap()
}

/// Polls `cond` until it holds; fails the test after `STEP`.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

fn wait<R>(handle: JobHandle<R>) -> Result<R, Error> {
    handle
        .wait_timeout(STEP)
        .unwrap_or_else(|_| panic!("job did not finish within {STEP:?}"))
}

/// A job that reports when it starts and then blocks until the gate is opened (dropped).
fn gate() -> (
    impl FnOnce(&http_sentinel::Client) + Send + 'static,
    mpsc::Receiver<()>,
    mpsc::Sender<()>,
) {
    let (started_tx, started) = mpsc::channel();
    let (open, gate_rx) = mpsc::channel::<()>();
    let job = move |_: &http_sentinel::Client| {
        started_tx.send(()).unwrap();
        // Returns when the sender is dropped; bounded so a broken test cannot hang.
        let _ = gate_rx.recv_timeout(STEP);
    };
    (job, started, open)
}

fn thread_name() -> String {
    thread::current().name().unwrap_or("?").to_owned()
}

#[test]
fn each_worker_owns_one_client() {
    let pool = pool(3);
    let workers = WorkerPool::new(&pool, 3, 32).unwrap();
    let handles: Vec<_> = (0..60)
        .map(|_| {
            workers
                .submit(|client| (thread_name(), client.id()))
                .unwrap()
        })
        .collect();
    let mut clients_of: HashMap<String, HashSet<u64>> = HashMap::new();
    for h in handles {
        let (name, id) = wait(h).unwrap();
        clients_of.entry(name).or_default().insert(id);
    }
    assert!(clients_of.len() <= 3);
    let mut all = HashSet::new();
    for (name, ids) in &clients_of {
        assert_eq!(ids.len(), 1, "{name} kept one client: {ids:?}");
        assert!(all.insert(*ids.iter().next().unwrap()), "no client shared");
    }
}

#[test]
fn a_panicking_job_is_an_error_on_its_handle_and_the_worker_carries_on() {
    let pool = pool(1);
    let workers = WorkerPool::new(&pool, 1, 8).unwrap();
    let first = workers.submit(|c| (thread_name(), c.id())).unwrap();
    let boom = workers.submit(|_| -> u8 { panic!("boom") }).unwrap();
    let after = workers.submit(|c| (thread_name(), c.id())).unwrap();

    let (thread_before, client_before) = wait(first).unwrap();
    assert_eq!(
        wait(boom).unwrap_err().kind(),
        &ErrorKind::Panicked("boom".into())
    );
    let (thread_after, client_after) = wait(after).unwrap();
    assert_eq!(thread_before, thread_after, "the same worker carried on");
    assert_ne!(client_before, client_after, "with a fresh client");
    let state = workers.state();
    assert_eq!((state.live, state.completed, state.panicked), (1, 3, 1));
    assert_eq!(pool.state().clients, 1, "the panicked client was discarded");
}

#[test]
fn a_full_queue_refuses_try_submit_and_blocks_submit() {
    let pool = pool(2);
    let workers = WorkerPool::new(&pool, 1, 2).unwrap();
    let (job, started, open) = gate();
    let busy = workers.submit(job).unwrap();
    started.recv_timeout(STEP).unwrap();
    let queued: Vec<_> = (1..=2)
        .map(|n| workers.try_submit(move |_| n).unwrap())
        .collect();
    assert_eq!(workers.state().queued, 2);

    let refused = workers.try_submit(|_| 99).unwrap_err();
    assert!(refused.is_full());
    assert_eq!(
        refused.into_job()(&pool.try_checkout().unwrap_or_else(|| panic!("no client"))),
        99
    );
    let timed_out = workers
        .submit_timeout(|_| 98, Duration::from_millis(20))
        .unwrap_err();
    assert!(timed_out.is_full());

    thread::scope(|s| {
        let blocked = s.spawn(|| workers.submit(|_| 3).map_err(|e| e.to_string()));
        eventually("the submitter to block", || {
            workers.state().submitters_waiting == 1
        });
        // The queue cannot drain while the only worker is held at the gate.
        assert!(!blocked.is_finished());
        drop(open);
        let third = blocked.join().unwrap().unwrap();
        wait(busy).unwrap();
        let values: Vec<i32> = queued.into_iter().map(|h| wait(h).unwrap()).collect();
        assert_eq!(values, [1, 2]);
        assert_eq!(wait(third).unwrap(), 3);
    });
    assert_eq!(workers.state().completed, 4);
}

#[test]
fn resize_up_and_down_under_load_loses_and_duplicates_nothing() {
    const JOBS: usize = 600;
    let server = TestServer::builder()
        .route(
            "/job",
            Behaviour::Handler(Arc::new(|r: &LoggedRequest| {
                Behaviour::Respond(Reply::text(200, r.query.as_deref().unwrap_or("")))
            })),
        )
        .start();
    let url = server.url("/job");
    let pool = pool(8);
    let workers = WorkerPool::new(&pool, 2, 16).unwrap();
    let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..JOBS).map(|_| AtomicUsize::new(0)).collect());
    let threads_seen = Arc::new(Mutex::new(HashSet::new()));

    let handles = thread::scope(|s| {
        let producer = s.spawn(|| {
            (0..JOBS)
                .map(|i| {
                    let (runs, seen, url) = (runs.clone(), threads_seen.clone(), url.clone());
                    // Blocks while the queue is full: the producer is paced by the workers.
                    workers
                        .submit(move |client| -> Result<String, Error> {
                            runs[i].fetch_add(1, Ordering::SeqCst);
                            seen.lock().unwrap().insert(thread_name());
                            client.get(&format!("{url}?i={i}")).send()?.text()
                        })
                        .unwrap()
                })
                .collect::<Vec<_>>()
        });
        for (after, size) in [(100, 6), (250, 1), (350, 4), (450, 2)] {
            eventually(&format!("{after} jobs done"), || {
                workers.state().completed >= after
            });
            workers.resize(size).unwrap();
            eventually(&format!("{size} live workers"), || {
                workers.state().live == size
            });
        }
        producer.join().unwrap()
    });

    let mut outcomes = 0;
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(wait(h).unwrap().unwrap(), format!("i={i}"));
        outcomes += 1;
    }
    assert_eq!(outcomes, JOBS);
    for (i, n) in runs.iter().enumerate() {
        assert_eq!(n.load(Ordering::SeqCst), 1, "job {i} ran once");
    }
    let mut at_server: HashMap<String, usize> = HashMap::new();
    for r in server.requests() {
        *at_server.entry(r.query.unwrap_or_default()).or_default() += 1;
    }
    assert_eq!(at_server.len(), JOBS);
    assert!(at_server.values().all(|&n| n == 1), "one request per job");
    // 2 initial + 4 grown + 3 regrown after shrinking to 1 (the 2 left after the last shrink
    // are among them).
    assert!(threads_seen.lock().unwrap().len() >= 6);
    assert_eq!(workers.state().completed, JOBS as u64);
    workers.shutdown();
    assert_eq!(
        pool.state().checked_out,
        0,
        "retired workers returned their clients"
    );
}

#[test]
fn shutdown_stops_intake_and_drains_the_queue() {
    let pool = pool(1);
    let workers = WorkerPool::new(&pool, 1, 8).unwrap();
    let (job, started, open) = gate();
    let busy = workers.submit(job).unwrap();
    started.recv_timeout(STEP).unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let queued: Vec<_> = (0..5)
        .map(|i| {
            let order = order.clone();
            workers
                .submit(move |_| order.lock().unwrap().push(i))
                .unwrap()
        })
        .collect();

    thread::scope(|s| {
        let shutting = s.spawn(|| workers.shutdown());
        eventually("intake to close", || !workers.state().open);
        let refused = workers.submit(|_| ()).unwrap_err();
        assert!(refused.is_shut_down());
        // Draining waits for the gated job and the five behind it.
        assert!(!shutting.is_finished());
        drop(open);
        shutting.join().unwrap();
    });
    wait(busy).unwrap();
    for h in queued {
        wait(h).unwrap();
    }
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
    let state = workers.state();
    assert_eq!((state.live, state.queued, state.completed), (0, 0, 6));
    workers.shutdown(); // idempotent
}

#[test]
fn shutdown_now_hands_back_unstarted_jobs() {
    let pool = pool(2);
    let workers = WorkerPool::new(&pool, 1, 8).unwrap();
    let (job, started, open) = gate();
    let busy = workers.submit(job).unwrap();
    started.recv_timeout(STEP).unwrap();
    let queued: Vec<_> = (0..4)
        .map(|i| workers.submit(move |_| i).unwrap())
        .collect();

    let mut unstarted = workers.shutdown_now();
    assert_eq!(unstarted.len(), 4);
    assert!(workers.submit(|_| 0).unwrap_err().is_shut_down());
    let client = pool.checkout().unwrap();
    unstarted.remove(1).run(&client);
    drop(unstarted);
    let results: Vec<_> = queued.into_iter().map(wait).collect();
    assert_eq!(results[1].as_ref().unwrap(), &1);
    for i in [0, 2, 3] {
        assert_eq!(
            results[i].as_ref().unwrap_err().kind(),
            &ErrorKind::Cancelled
        );
    }
    drop(open);
    wait(busy).unwrap();
    workers.shutdown();
    assert_eq!(workers.state().live, 0);
}

#[test]
fn wait_timeout_gives_the_handle_back_until_the_job_finishes() {
    let pool = pool(1);
    let workers = WorkerPool::new(&pool, 1, 1).unwrap();
    let (job, started, open) = gate();
    let handle = workers.submit(job).unwrap();
    started.recv_timeout(STEP).unwrap();
    let handle = handle
        .wait_timeout(Duration::from_millis(10))
        .expect_err("still gated");
    assert!(!handle.is_finished());
    drop(open);
    wait(handle).unwrap();
}

#[test]
fn a_job_whose_worker_gets_no_client_fails_with_the_checkout_error() {
    let pool = ClientPool::new(
        PoolConfig::builder()
            .max_clients(1)
            .checkout_timeout(Duration::from_millis(50))
            .build(),
    )
    .unwrap();
    let workers = WorkerPool::new(&pool, 1, 4).unwrap();
    let held = pool.checkout().unwrap();
    let starved = workers.submit(|c| c.id()).unwrap();
    assert!(wait(starved).unwrap_err().is_pool_timeout());
    drop(held);
    let fed = workers.submit(|c| c.id()).unwrap();
    assert!(wait(fed).is_ok(), "the worker carried on");
}

#[test]
fn dropping_the_pool_runs_what_was_queued() {
    let pool = pool(2);
    let workers = WorkerPool::new(&pool, 2, 16).unwrap();
    let handles: Vec<_> = (0..16)
        .map(|i| workers.submit(move |_| i * 2).unwrap())
        .collect();
    drop(workers);
    for (i, h) in handles.into_iter().enumerate() {
        assert!(h.is_finished());
        assert_eq!(h.wait().unwrap(), i * 2);
    }
}
