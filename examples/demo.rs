//! The main demo: 100 workers x 100 requests through one `ClientPool`, against a loopback server
//! embedded in this process (no network needed), then the pool's statistics.
//!
//! ```text
//! cargo run --release --example demo
//! cargo run --release --example demo -- --workers 8 --requests 1000
//! ```

#[path = "../tests/support/server.rs"]
mod server;

use std::time::Instant;

use http_sentinel::{ClientPool, Error, PoolConfig};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
        .unwrap_or(default)
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let workers = arg(&args, "--workers", 100);
    let requests = arg(&args, "--requests", 100);

    let server = server::TestServer::start_default();
    let url = server.url("/");
    let pool = ClientPool::new(PoolConfig::builder().max_clients(workers).build())?;

    println!("http-sentinel demo: {workers} workers x {requests} requests -> {url}");
    let started = Instant::now();
    let results = pool.scope(workers, |worker| {
        let mut errors = 0usize;
        for _ in 0..requests {
            let ok = worker
                .get(&url)
                .send()
                .and_then(|r| r.error_for_status())
                .and_then(|r| r.bytes());
            if ok.is_err() {
                errors += 1;
            }
        }
        errors
    });
    let elapsed = started.elapsed();
    let errors: usize = results
        .iter()
        .map(|r| r.as_ref().map_or(requests, |e| *e))
        .sum();
    let total = workers * requests;
    let stats = pool.stats();

    println!();
    println!("requests           {total}");
    println!("errors             {errors}");
    println!("elapsed            {:.2?}", elapsed);
    println!(
        "throughput         {:.0} req/s",
        total as f64 / elapsed.as_secs_f64()
    );
    println!("connections opened {}", stats.connections_opened());
    println!(
        "server saw         {} connections",
        server.connections_accepted()
    );
    let reuse = stats
        .reuse_ratio()
        .map_or("-".to_owned(), |r| format!("{r:.4}"));
    println!("reuse ratio        {reuse}");
    println!();
    println!("{stats}");
    if errors > 0 {
        std::process::exit(1);
    }
    Ok(())
}
