//! Fetch a list of URLs with a few workers; each worker takes the next URL as soon as it is
//! free (a shared cursor, so one slow URL does not hold up the others), and results print in
//! input order.
//!
//! ```text
//! cargo run --release --example concurrent_requests
//! cargo run --release --example concurrent_requests -- --workers 4 --url http://127.0.0.1:8080/a --url http://127.0.0.1:8080/b
//! ```
//!
//! Without `--url` it starts an embedded loopback server with a few fast, slow and failing paths.

#[path = "../tests/support/server.rs"]
mod server;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_sentinel::{ClientPool, Error, PoolConfig};
use server::{Behaviour, Reply, TestServer};

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let workers: usize = args
        .iter()
        .position(|a| a == "--workers")
        .and_then(|i| args.get(i + 1))
        .map_or(4, |v| v.parse().expect("--workers N"));
    let mut urls: Vec<String> = args
        .windows(2)
        .filter(|w| w[0] == "--url")
        .map(|w| w[1].clone())
        .collect();
    let embedded = urls.is_empty().then(|| {
        TestServer::builder()
            .route("/fast", Behaviour::Respond(Reply::text(200, "fast")))
            .route(
                "/slow",
                Behaviour::Delay {
                    reply: Reply::text(200, "slow"),
                    delay: Duration::from_millis(300),
                },
            )
            .route(
                "/missing",
                Behaviour::Respond(Reply::text(404, "no such thing")),
            )
            .start()
    });
    if let Some(server) = &embedded {
        for path in [
            "/slow", "/fast", "/fast", "/missing", "/fast", "/fast", "/fast", "/fast",
        ] {
            urls.push(server.url(path));
        }
    }

    let pool = ClientPool::new(PoolConfig::builder().max_clients(workers).build())?;
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let per_worker = pool.scope(workers, |worker| {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(url) = urls.get(i) else { break };
            let t = Instant::now();
            let outcome = worker.get(url).send().and_then(|r| {
                let status = r.status();
                r.bytes().map(|b| (status, b.len()))
            });
            done.push((i, worker.id(), t.elapsed(), outcome));
        }
        done
    });
    let mut rows: Vec<_> = per_worker
        .into_iter()
        .filter_map(Result::ok)
        .flatten()
        .collect();
    rows.sort_by_key(|r| r.0);
    for (i, worker, took, outcome) in rows {
        match outcome {
            Ok((status, bytes)) => {
                println!(
                    "{:<40} worker {worker}  {status}  {bytes:>5} B  {took:>9.1?}",
                    urls[i]
                )
            }
            Err(e) => println!("{:<40} worker {worker}  error: {e}", urls[i]),
        }
    }
    println!("all {} URLs in {:.1?}", urls.len(), started.elapsed());
    Ok(())
}
