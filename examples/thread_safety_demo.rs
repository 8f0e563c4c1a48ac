//! Many threads, one pool, no shared client: each worker owns the client it checked out, so no
//! request ever takes a lock shared with another worker. Every response is checked to be the
//! one its request asked for.
//!
//! ```text
//! cargo run --release --example thread_safety_demo -- --workers 32 --requests 500
//! cargo run --release --example thread_safety_demo -- --url http://127.0.0.1:8080/echo
//! ```
//!
//! Without `--url` it starts an embedded loopback echo server. With `--url`, the server must
//! echo the request's query string in the `x-echo-query` header (the embedded server does).

#[path = "../tests/support/server.rs"]
mod server;

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Instant;

use http_sentinel::{ClientPool, Error, PoolConfig};

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let workers: usize = flag(&args, "--workers").map_or(16, |v| v.parse().expect("--workers N"));
    let requests: usize =
        flag(&args, "--requests").map_or(200, |v| v.parse().expect("--requests M"));
    let embedded = flag(&args, "--url").is_none().then(|| {
        server::TestServer::builder()
            .fallback(server::Behaviour::Echo)
            .start()
    });
    let url = flag(&args, "--url").unwrap_or_else(|| {
        embedded
            .as_ref()
            .map(|s| s.url("/echo"))
            .unwrap_or_default()
    });

    let pool = ClientPool::new(PoolConfig::builder().max_clients(workers).build())?;
    let clients_seen = Mutex::new(HashSet::new());
    let started = Instant::now();
    let results = pool.scope(workers, |worker| -> Result<usize, Error> {
        clients_seen
            .lock()
            .unwrap()
            .insert(http_sentinel::Client::id(worker));
        let mut mismatches = 0;
        for i in 0..requests {
            let tag = format!("worker={}&seq={i}", worker.id());
            let response = worker.get(&format!("{url}?{tag}")).send()?;
            if response.header("x-echo-query") != Some(tag.as_str()) {
                mismatches += 1;
            }
            response.bytes()?;
        }
        Ok(mismatches)
    });
    let elapsed = started.elapsed();
    let (mut mismatches, mut failed) = (0, 0);
    for r in results {
        match r {
            Ok(Ok(m)) => mismatches += m,
            Ok(Err(e)) | Err(e) => {
                eprintln!("worker failed: {e}");
                failed += 1;
            }
        }
    }
    let stats = pool.stats();
    println!(
        "workers            {workers} (each with its own client: {})",
        clients_seen.lock().unwrap().len()
    );
    println!("requests           {}", workers * requests);
    println!("mismatched replies {mismatches}");
    println!("failed workers     {failed}");
    println!("connections opened {}", stats.connections_opened());
    println!(
        "throughput         {:.0} req/s",
        (workers * requests) as f64 / elapsed.as_secs_f64()
    );
    if mismatches + failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
