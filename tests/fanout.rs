//! Fan-out over a `ClientPool`: input order, exactly one result per item under panics and
//! server faults, work stealing, cancellation, progress, checkout failure.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use http_sentinel::{ClientPool, Error, ErrorKind, FanOut, PoolConfig};

mod support;

use support::server::{Behaviour, LoggedRequest, Reply, TestServer};

/// Upper bound for any single wait in these tests.
const STEP: Duration = Duration::from_secs(10);

fn pool(clients: usize) -> ClientPool {
    ClientPool::new(PoolConfig::builder().max_clients(clients).build()).unwrap()
}

/// Answers `/item?i=N` with the body `i=N`.
fn echo_query() -> Behaviour {
    Behaviour::Handler(Arc::new(|r: &LoggedRequest| {
        Behaviour::Respond(Reply::text(200, r.query.as_deref().unwrap_or("")))
    }))
}

fn counters(n: usize) -> Vec<AtomicUsize> {
    (0..n).map(|_| AtomicUsize::new(0)).collect()
}

#[test]
fn results_come_back_in_input_order_one_per_item_under_panics_and_dropped_connections() {
    let server = TestServer::builder()
        .route("/item", echo_query())
        .drop_rate(10, 0x5eed)
        .start();
    let pool = pool(6);
    let items: Vec<usize> = (0..300).collect();
    let calls = counters(items.len());
    let injected = |i: usize| i % 13 == 5;

    let results = pool.fan_out(&items, 6, |client, &i| -> Result<String, Error> {
        calls[i].fetch_add(1, Ordering::SeqCst);
        if injected(i) {
            panic!("injected {i}");
        }
        client
            .get(&server.url(&format!("/item?i={i}")))
            .send()?
            .text()
    });

    assert_eq!(results.len(), items.len());
    let (mut ok, mut network) = (0, 0);
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(calls[i].load(Ordering::SeqCst), 1, "item {i} ran once");
        match result {
            Err(e) => {
                assert!(injected(i), "item {i} failed as a whole: {e:?}");
                assert_eq!(e.kind(), &ErrorKind::Panicked(format!("injected {i}")));
            }
            Ok(Ok(body)) => {
                assert!(!injected(i));
                assert_eq!(body, format!("i={i}"), "result {i} is item {i}'s");
                ok += 1;
            }
            Ok(Err(e)) => {
                // A drop the engine may not retry (a cut body, a protocol error) is a typed
                // network error of this item, never another item's result.
                assert!(!injected(i));
                assert!(
                    matches!(
                        e.kind(),
                        ErrorKind::Io { .. } | ErrorKind::Protocol | ErrorKind::Timeout(_)
                    ),
                    "item {i}: {e:?}"
                );
                network += 1;
            }
        }
    }
    let panicked = items.iter().filter(|&&i| injected(i)).count();
    assert_eq!(ok + network + panicked, items.len());
    assert!(
        ok >= items.len() * 8 / 10,
        "{ok} ok, {network} network errors"
    );
    assert!(
        server.connections_accepted() > 6,
        "dropped connections forced reconnects"
    );
    let state = pool.state();
    assert_eq!(state.checked_out, 0, "every client went back: {state:?}");
    assert!(
        state.clients <= 6,
        "panicked clients were replaced, not added: {state:?}"
    );
}

#[test]
fn a_slow_item_does_not_hold_back_the_others() {
    let server = TestServer::start_default();
    let pool = pool(2);
    let items: Vec<usize> = (0..20).collect();
    let others_done = (Mutex::new(0usize), Condvar::new());
    let taken_by = Mutex::new(Vec::new());

    let results = pool.fan_out(&items, 2, |client, &i| -> Result<bool, Error> {
        taken_by.lock().unwrap().push((i, client.id()));
        if i == 0 {
            // The slow item: it finishes only after every other item has, which it can only
            // see if the other worker takes them all instead of some waiting behind it.
            let (done, changed) = &others_done;
            let deadline = Instant::now() + STEP;
            let mut done = done.lock().unwrap();
            while *done < items.len() - 1 {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                done = changed.wait_timeout(done, left).unwrap().0;
            }
            return Ok(true);
        }
        client.get(&server.url("/")).send()?.text()?;
        *others_done.0.lock().unwrap() += 1;
        others_done.1.notify_all();
        Ok(true)
    });

    let results: Vec<bool> = results.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert!(results[0], "the slow item saw all the others finish first");
    let taken_by = taken_by.into_inner().unwrap();
    let slow_worker = taken_by.iter().find(|(i, _)| *i == 0).unwrap().1;
    let others: HashSet<u64> = taken_by
        .iter()
        .filter(|(i, _)| *i != 0)
        .map(|&(_, c)| c)
        .collect();
    assert_eq!(others.len(), 1, "one worker took every other item");
    assert!(
        !others.contains(&slow_worker),
        "the busy worker took nothing else"
    );
}

#[test]
fn cancelling_stops_handing_out_items_and_the_rest_are_cancelled() {
    let pool = pool(4);
    let items: Vec<usize> = (0..200).collect();
    let calls = counters(items.len());
    let cancel = AtomicBool::new(false);
    let stop_at_20 = |done: usize, _total: usize| {
        if done >= 20 {
            cancel.store(true, Ordering::SeqCst);
        }
    };

    let results =
        FanOut::new(4)
            .progress(&stop_at_20)
            .cancel(&cancel)
            .run(&pool, &items, |_client, &i| {
                calls[i].fetch_add(1, Ordering::SeqCst);
                i
            });

    assert_eq!(results.len(), items.len());
    let mut ran = 0;
    for (i, result) in results.iter().enumerate() {
        match (result, calls[i].load(Ordering::SeqCst)) {
            (Ok(v), 1) => {
                assert_eq!(*v, i);
                ran += 1;
            }
            (Err(e), 0) => assert_eq!(e.kind(), &ErrorKind::Cancelled),
            (other, n) => panic!("item {i}: {other:?} after {n} calls"),
        }
    }
    // Items already taken when the flag went up still finish: at most one per other worker.
    assert!((20..=23).contains(&ran), "{ran} items ran");
}

#[test]
fn progress_counts_up_to_the_total_one_call_at_a_time() {
    let pool = pool(4);
    let items = vec![(); 50];
    let seen = Mutex::new(Vec::new());
    let in_call = AtomicBool::new(false);
    let overlapped = AtomicBool::new(false);
    // Recorded, not asserted inside: a panic in the callback would be caught and ignored.
    let record = |done: usize, total: usize| {
        if in_call.swap(true, Ordering::SeqCst) {
            overlapped.store(true, Ordering::SeqCst);
        }
        seen.lock().unwrap().push((done, total));
        in_call.store(false, Ordering::SeqCst);
    };
    let results = FanOut::new(4)
        .progress(&record)
        .run(&pool, &items, |_, _| ());
    assert!(results.iter().all(Result::is_ok));
    assert!(
        !overlapped.load(Ordering::SeqCst),
        "progress calls overlapped"
    );
    let expected: Vec<(usize, usize)> = (1..=50).map(|d| (d, 50)).collect();
    assert_eq!(seen.into_inner().unwrap(), expected);
}

#[test]
fn a_panicking_progress_callback_costs_no_result() {
    let pool = pool(2);
    let items: Vec<u32> = (0..10).collect();
    let results =
        FanOut::new(2)
            .progress(&|_, _| panic!("progress bug"))
            .run(&pool, &items, |_, n| n + 1);
    let values: Vec<u32> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(values, (1..=10).collect::<Vec<_>>());
}

#[test]
fn a_worker_that_panicked_continues_on_a_fresh_client() {
    let pool = pool(1);
    let items: Vec<usize> = (0..10).collect();
    let results = pool.fan_out(&items, 1, |client, &i| {
        assert_ne!(i, 3, "boom");
        client.id()
    });
    let ids: Vec<Option<u64>> = results.iter().map(|r| r.as_ref().ok().copied()).collect();
    assert!(
        matches!(results[3].as_ref().unwrap_err().kind(), ErrorKind::Panicked(m) if m.contains("boom"))
    );
    let before: HashSet<_> = ids[..3].iter().flatten().collect();
    let after: HashSet<_> = ids[4..].iter().flatten().collect();
    assert_eq!((before.len(), after.len()), (1, 1), "{ids:?}");
    assert!(
        before.is_disjoint(&after),
        "the panicked client was discarded"
    );
    assert_eq!(pool.state().clients, 1);
}

#[test]
fn every_item_gets_the_checkout_error_when_no_client_is_free() {
    let pool = ClientPool::new(
        PoolConfig::builder()
            .max_clients(1)
            .checkout_timeout(Duration::from_millis(50))
            .build(),
    )
    .unwrap();
    let held = pool.checkout().unwrap();
    let calls = AtomicUsize::new(0);
    let results = pool.fan_out(&[1, 2, 3, 4, 5], 3, |_, n| {
        calls.fetch_add(1, Ordering::SeqCst);
        *n
    });
    assert_eq!(results.len(), 5);
    for r in &results {
        assert!(r.as_ref().unwrap_err().is_pool_timeout(), "{r:?}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    drop(held);
}

#[test]
fn no_items_no_results() {
    let results = pool(2).fan_out(&[] as &[u8], 4, |_, b| *b);
    assert!(results.is_empty());
}
