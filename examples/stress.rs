//! Stress: N threads x M orders, POSTed through a fan-out against the embedded fault server,
//! which drops a share of connections at random points (before the request is read, after it,
//! in the middle of the response head or body). Each order carries its own Idempotency-Key; a
//! retried order carries the same key, and the server executes a key at most once, answering a
//! repeat with the first result. At the end a ledger is printed and checked: every order has
//! exactly one outcome at the caller, no key is executed twice, and every request is accounted
//! for.
//!
//! ```text
//! cargo run --release --example stress -- --threads 100 --orders-per-thread 1000
//! ```
//!
//! Options: `--threads N` (default 100), `--orders-per-thread N` (default 1000),
//! `--drop-percent P` (default 10), `--seed S` (default 42). Exits with status 1 when a ledger
//! check fails.

#[path = "../tests/support/server.rs"]
mod server;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_sentinel::{Client, ClientPool, Error, ErrorKind, FanOut, PoolConfig};
use server::{Behaviour, LoggedRequest, Reply, TestServer};

/// The most times the caller sends one order (each send may itself make several attempts).
const MAX_SENDS: u32 = 10;

struct Args {
    threads: usize,
    orders_per_thread: usize,
    drop_percent: u32,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        threads: 100,
        orders_per_thread: 1000,
        drop_percent: 10,
        seed: 42,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(format!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--threads" => args.threads = value()?.max(1) as usize,
            "--orders-per-thread" => args.orders_per_thread = value()? as usize,
            "--drop-percent" => args.drop_percent = value()?.min(100) as u32,
            "--seed" => args.seed = value()?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(args)
}

/// The server's side of the ledger: what it executed, per key.
#[derive(Default)]
struct ServerLedger {
    /// Key -> (first answer, times executed).
    executed: Mutex<HashMap<String, (Reply, u32)>>,
    requests: AtomicU64,
    replays: AtomicU64,
    /// Requests whose body names another order than their key: a key reused across orders.
    mismatched: AtomicU64,
    keyless: AtomicU64,
}

impl ServerLedger {
    fn handle(&self, req: &LoggedRequest) -> Behaviour {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let Some(key) = req.header("idempotency-key") else {
            self.keyless.fetch_add(1, Ordering::SeqCst);
            return Behaviour::Respond(Reply::text(400, "idempotency-key required"));
        };
        let body = String::from_utf8_lossy(&req.body);
        if !body.contains(&format!("\"order\":\"{key}\"")) {
            self.mismatched.fetch_add(1, Ordering::SeqCst);
        }
        let mut executed = self.executed.lock().unwrap();
        if let Some((first, _)) = executed.get(key) {
            self.replays.fetch_add(1, Ordering::SeqCst);
            return Behaviour::Respond(first.clone().header("idempotent-replayed", "true"));
        }
        // "Executing" the order: the answer names the execution, so a replayed answer can be
        // told from a second execution.
        let seq = executed.len() + 1;
        let reply = Reply::text(201, &format!("{key} executed as #{seq}"));
        executed.insert(key.to_owned(), (reply.clone(), 1));
        Behaviour::Respond(reply)
    }
}

/// What the caller ended up with for one order.
#[derive(Debug)]
enum Outcome {
    Confirmed {
        key: String,
        answer: String,
        replayed: bool,
        sends: u32,
    },
    Failed {
        key: String,
        error: String,
        sends: u32,
    },
}

fn place_order(client: &Client, url: &str, i: usize) -> Outcome {
    let key = format!("order-{i:07}");
    let body = format!("{{\"order\":\"{key}\",\"qty\":{}}}", i % 5 + 1);
    let mut sends = 0;
    loop {
        sends += 1;
        let sent = client
            .post(url)
            .header("Idempotency-Key", &key)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .and_then(|r| {
                let replayed = r.header("idempotent-replayed").is_some();
                let status = r.status().as_u16();
                Ok((status, replayed, r.text()?))
            });
        let error = match sent {
            Ok((201, replayed, answer)) => {
                return Outcome::Confirmed {
                    key,
                    answer,
                    replayed,
                    sends,
                }
            }
            Ok((status, _, _)) => format!("unexpected status {status}"),
            Err(e) => {
                // The engine retries what it may; what is left (an answer cut mid-body, a
                // protocol error, an exhausted retry budget) the caller re-sends with the same
                // key: the server replays the first result if the order was executed.
                if let ErrorKind::CircuitOpen { retry_in } = e.kind() {
                    std::thread::sleep((*retry_in).min(Duration::from_secs(1)));
                }
                e.to_string()
            }
        };
        if sends >= MAX_SENDS {
            return Outcome::Failed { key, error, sends };
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("stress: {e}");
            return ExitCode::from(2);
        }
    };
    let ledger = Arc::new(ServerLedger::default());
    let handler = ledger.clone();
    let server = TestServer::builder()
        .route(
            "/orders",
            Behaviour::Handler(Arc::new(move |r: &LoggedRequest| handler.handle(r))),
        )
        .drop_rate(args.drop_percent, args.seed)
        .start();
    let url = server.url("/orders");
    let pool = ClientPool::new(PoolConfig::builder().max_clients(args.threads).build())
        .expect("valid config");
    let orders: Vec<usize> = (0..args.threads * args.orders_per_thread).collect();
    let total = orders.len();
    let started = Instant::now();
    let tenth = (total / 10).max(1);
    let progress = |done: usize, total: usize| {
        if done % tenth == 0 {
            eprintln!(
                "stress: {done}/{total} orders, {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    };
    let results: Vec<Result<Outcome, Error>> =
        FanOut::new(args.threads)
            .progress(&progress)
            .run(&pool, &orders, |client, &i| place_order(client, &url, i));
    let elapsed = started.elapsed();
    let stats = pool.stats();
    server.shutdown();

    // The caller's side.
    let mut outcomes = 0u64;
    let (mut confirmed, mut confirmed_by_replay, mut failed, mut lost) = (0u64, 0u64, 0u64, 0u64);
    let mut sends = 0u64;
    let mut wrong_order = 0u64;
    let mut answers: HashMap<String, String> = HashMap::new();
    let mut failures: Vec<String> = Vec::new();
    for (i, result) in results.iter().enumerate() {
        outcomes += 1;
        let expected_key = format!("order-{i:07}");
        match result {
            Ok(Outcome::Confirmed {
                key,
                answer,
                replayed,
                sends: n,
            }) => {
                wrong_order += u64::from(*key != expected_key);
                sends += u64::from(*n);
                if *replayed {
                    confirmed_by_replay += 1;
                } else {
                    confirmed += 1;
                }
                answers.insert(key.clone(), answer.clone());
            }
            Ok(Outcome::Failed {
                key,
                error,
                sends: n,
            }) => {
                wrong_order += u64::from(*key != expected_key);
                sends += u64::from(*n);
                failed += 1;
                failures.push(format!("{key}: {error}"));
            }
            Err(e) => {
                lost += 1;
                failures.push(format!("order {i}: {e}"));
            }
        }
    }

    // The server's side.
    let executed = ledger.executed.lock().unwrap();
    let executions: u64 = executed.values().map(|(_, n)| u64::from(*n)).sum();
    let twice = executed.values().filter(|(_, n)| *n > 1).count() as u64;
    let mut answer_mismatch = 0u64;
    for (key, answer) in &answers {
        match executed.get(key) {
            Some((first, 1)) if first.body == answer.as_bytes() => {}
            _ => answer_mismatch += 1,
        }
    }
    let requests = ledger.requests.load(Ordering::SeqCst);
    let replays = ledger.replays.load(Ordering::SeqCst);
    let mismatched = ledger.mismatched.load(Ordering::SeqCst);
    let keyless = ledger.keyless.load(Ordering::SeqCst);
    let executed_unconfirmed = executed
        .keys()
        .filter(|k| !answers.contains_key(*k))
        .count();

    println!(
        "stress: {} threads x {} orders = {total} orders, {}% of connections dropped \
         (seed {}), {:.1} s\n",
        args.threads,
        args.orders_per_thread,
        args.drop_percent,
        args.seed,
        elapsed.as_secs_f64()
    );
    let rows: Vec<(&str, u64)> = vec![
        ("orders", total as u64),
        ("outcomes at the caller", outcomes),
        ("  confirmed, first answer received", confirmed),
        ("  confirmed by a replayed answer", confirmed_by_replay),
        ("  failed after re-sending", failed),
        ("  lost (no outcome)", lost),
        ("sends by the caller", sends),
        (
            "  re-sends, same key",
            sends.saturating_sub(outcomes - lost),
        ),
        ("attempts by the client engine", stats.attempts()),
        ("  engine retries, same key", stats.retries()),
        (
            "  stale-connection replays, same key",
            stats.stale_replays(),
        ),
        ("requests read by the server", requests),
        ("  executions", executions),
        ("  replays of an executed key", replays),
        ("  without a key", keyless),
        ("keys executed more than once", twice),
        (
            "keys executed, never confirmed",
            executed_unconfirmed as u64,
        ),
        ("requests whose key and body disagree", mismatched),
        (
            "connections accepted by the server",
            server.connections_accepted() as u64,
        ),
    ];
    let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    println!("{:<width$}  {:>9}", "ledger", "count");
    for (label, n) in &rows {
        println!("{label:<width$}  {n:>9}");
    }

    let checks = [
        (
            "every order has exactly one outcome at the caller, in order",
            outcomes == total as u64 && lost == 0 && wrong_order == 0,
        ),
        ("no key executed more than once at the server", twice == 0),
        (
            "every confirmed order executed once; its answer is the first result",
            answer_mismatch == 0 && executions >= confirmed + confirmed_by_replay,
        ),
        (
            "every request read is one execution or one replay",
            requests == executions + replays + keyless && keyless == 0,
        ),
        (
            "retries and replays carried their order's key",
            mismatched == 0,
        ),
        ("every order confirmed", failed == 0 && lost == 0),
    ];
    println!("\nchecks");
    let mut ok = true;
    for (what, passed) in checks {
        println!("  {}  {what}", if passed { "PASS" } else { "FAIL" });
        ok &= passed;
    }
    println!("\nclient pool\n{stats}");
    for f in failures.iter().take(10) {
        eprintln!("stress: {f}");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
