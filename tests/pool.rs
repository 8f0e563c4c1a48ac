//! Checkout, LIFO reuse, guard return on panic, thread-local access, scoped workers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use std::time::{Duration, Instant};

use http_sentinel::{ClientPool, ErrorKind, PoolConfig};
use httpmock::prelude::*;

fn pool(max: usize) -> ClientPool {
    ClientPool::new(
        PoolConfig::builder()
            .max_clients(max)
            .checkout_timeout(Duration::from_millis(200))
            .build(),
    )
    .unwrap()
}

fn addr(c: &http_sentinel::Client) -> u64 {
    c.id()
}

#[test]
fn clients_are_created_lazily_and_state_is_reported() {
    let pool = pool(3);
    assert_eq!(pool.state().clients, 0);
    let a = pool.checkout().unwrap();
    let b = pool.try_checkout().unwrap();
    let state = pool.state();
    assert_eq!(
        (
            state.clients,
            state.idle,
            state.checked_out,
            state.waiting,
            state.max_clients
        ),
        (2, 0, 2, 0, 3)
    );
    drop(a);
    drop(b);
    assert_eq!(pool.state().idle, 2);
    assert_eq!(pool.state().checked_out, 0);
}

#[test]
fn try_checkout_never_blocks_and_checkout_times_out_saying_how_long() {
    let pool = pool(1);
    let held = pool.checkout().unwrap();
    assert!(pool.try_checkout().is_none());
    let start = Instant::now();
    let err = pool
        .checkout_timeout(Duration::from_millis(100))
        .unwrap_err();
    let waited = start.elapsed();
    match err.kind() {
        ErrorKind::PoolTimeout(d) => assert!(*d >= Duration::from_millis(100) && *d <= waited),
        other => panic!("{other:?}"),
    }
    assert!(err.is_pool_timeout());
    drop(held);
    assert!(pool.try_checkout().is_some());
}

#[test]
fn checkout_blocks_until_a_client_is_returned() {
    let pool = pool(1);
    let held = pool.checkout().unwrap();
    let first = addr(&held);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let c = pool.checkout_timeout(Duration::from_secs(10)).unwrap();
            addr(&c)
        });
        // Wait until the other thread is parked in checkout: a state change, not a sleep.
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.state().waiting == 0 {
            assert!(Instant::now() < deadline, "waiter never blocked");
            std::thread::yield_now();
        }
        drop(held);
        assert_eq!(waiter.join().unwrap(), first);
    });
}

#[test]
fn returned_clients_are_reused_last_in_first_out() {
    let pool = pool(3);
    let a = pool.checkout().unwrap();
    let b = pool.checkout().unwrap();
    let c = pool.checkout().unwrap();
    let (pa, pb, pc) = (addr(&a), addr(&b), addr(&c));
    drop(a);
    drop(c);
    drop(b);
    assert_eq!(addr(&pool.checkout().unwrap()), pb);
    let x = pool.checkout().unwrap();
    let y = pool.checkout().unwrap();
    assert_eq!((addr(&x), addr(&y)), (pb, pc));
    let z = pool.checkout().unwrap();
    assert_eq!(addr(&z), pa);
}

#[test]
fn a_client_dropped_by_a_panic_is_discarded_not_returned() {
    let pool = pool(2);
    let p = pool.clone();
    let r = std::thread::spawn(move || {
        let _c = p.checkout().unwrap();
        panic!("worker failed mid-request");
    })
    .join();
    assert!(r.is_err());
    let s = pool.state();
    assert_eq!((s.clients, s.idle, s.checked_out), (0, 0, 0));
    let mut c = pool.checkout().unwrap();
    c.discard();
    drop(c);
    assert_eq!(pool.state().clients, 0);
}

#[test]
fn with_client_keeps_one_client_per_thread_and_returns_it_when_the_thread_ends() {
    let pool = pool(4);
    let a = pool.with_client(addr).unwrap();
    assert_eq!(pool.with_client(addr).unwrap(), a);
    let p = pool.clone();
    let other = std::thread::spawn(move || p.with_client(addr).unwrap())
        .join()
        .unwrap();
    assert_ne!(other, a);
    // The other thread has ended: its client is back in the pool.
    let s = pool.state();
    assert_eq!((s.clients, s.idle), (2, 1));
    assert!(pool.release_local());
    assert!(!pool.release_local());
    assert_eq!(pool.state().idle, 2);
}

#[test]
fn scoped_workers_have_stable_ids_and_a_panic_is_that_workers_error() {
    let pool = pool(4);
    // All four hold a client at once, so four are created.
    let all_in = Barrier::new(4);
    let results = pool.scope(4, |w| {
        all_in.wait();
        if w.id() == 2 {
            panic!("boom in worker 2");
        }
        w.id() * 10
    });
    assert_eq!(results.len(), 4);
    for (id, r) in results.into_iter().enumerate() {
        match (id, r) {
            (2, Err(e)) => assert_eq!(e.kind(), &ErrorKind::Panicked("boom in worker 2".into())),
            (id, Ok(v)) => assert_eq!(v, id * 10),
            (id, r) => panic!("worker {id}: {r:?}"),
        }
    }
    let s = pool.state();
    assert_eq!(
        (s.clients, s.idle),
        (3, 3),
        "panicked worker's client discarded"
    );
    // The pool is not poisoned: it serves again.
    assert_eq!(
        pool.scope(4, |w| w.id())
            .into_iter()
            .filter(Result::is_ok)
            .count(),
        4
    );
}

#[test]
fn workers_beyond_max_clients_time_out_with_a_typed_error() {
    let pool = pool(1);
    let ran = AtomicUsize::new(0);
    let results = pool.scope(2, |_| {
        ran.fetch_add(1, Ordering::SeqCst);
        // Hold the only client until the other worker has waited in checkout and given up.
        let limit = Instant::now() + Duration::from_secs(10);
        while pool.state().waiting == 0 && Instant::now() < limit {
            std::thread::yield_now();
        }
        while pool.state().waiting > 0 && Instant::now() < limit {
            std::thread::yield_now();
        }
    });
    let timeouts = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e.is_pool_timeout()))
        .count();
    assert_eq!(
        (ran.load(Ordering::SeqCst), timeouts),
        (1, 1),
        "{results:?}"
    );
}

#[test]
fn hundred_workers_times_fifty_requests_open_exactly_one_connection_each() {
    let server = MockServer::start();
    let mock = server.mock(|when, then| {
        when.path("/");
        then.status(200).body("hello, world!");
    });
    let pool = ClientPool::new(PoolConfig::builder().max_clients(100).build()).unwrap();
    let url = server.url("/");
    let errors = Arc::new(AtomicUsize::new(0));
    // All workers hold their client at once: otherwise a fast worker could finish and hand its
    // client (and connection) to a late one.
    let all_in = Barrier::new(100);
    let results = pool.scope(100, |w| {
        all_in.wait();
        for _ in 0..50 {
            match w.get(&url).send().and_then(|r| r.text()) {
                Ok(body) => assert_eq!(body, "hello, world!"),
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        w.connections_opened()
    });
    let opened: u64 = results.into_iter().map(Result::unwrap).sum();
    assert_eq!(errors.load(Ordering::Relaxed), 0);
    assert_eq!(opened, 100);
    mock.assert_hits(5000);
}
