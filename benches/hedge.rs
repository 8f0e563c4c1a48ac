//! Hedged requests against a server with a slow tail, hedging off and on side by side.
//!
//! An embedded loopback server answers every request after 5 ms, except 1 % of them (drawn
//! per request from a seeded generator, hedges included) which take 1 s: the tail of
//! "The Tail at Scale". The same closed-loop load (W workers, N GETs in all) runs once
//! without hedging and once per hedging setting, each on a fresh server and pool. Latency
//! percentiles are exact (nearest rank over every call's latency, measured by the caller);
//! extra requests are the server's count over the calls made.
//!
//! ```sh
//! bash benches/hedge.sh                      # or: cargo bench --bench hedge -- --requests 20000 --workers 16 --slow-one-in 100
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use http_sentinel::{ClientPool, HedgeDelay, HedgePolicy, PoolConfig, RetryPolicy};

const FAST: Duration = Duration::from_millis(5);
const SLOW: Duration = Duration::from_secs(1);
/// One request in this many is slow, unless `--slow-one-in N` says otherwise.
const SLOW_ONE_IN: u64 = 100;

#[derive(Default)]
struct Log {
    /// One request in this many is slow.
    slow_one_in: u64,
    requests: AtomicU64,
    slow: AtomicU64,
}

struct Server {
    addr: SocketAddr,
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

/// splitmix64: the n-th draw of a fixed sequence.
fn draw(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn start_server(slow_one_in: u64) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Log {
        slow_one_in,
        ..Log::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let (l, s) = (log.clone(), stop.clone());
    thread::spawn(move || {
        for conn in listener.incoming() {
            if s.load(Relaxed) {
                break;
            }
            let Ok(conn) = conn else { continue };
            let l = l.clone();
            thread::spawn(move || serve(conn, &l));
        }
    });
    Server { addr, log, stop }
}

fn serve(conn: TcpStream, log: &Log) {
    let _ = conn.set_nodelay(true);
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    let mut line = String::new();
    loop {
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        let n = log.requests.fetch_add(1, Relaxed);
        let slow = draw(n) % log.slow_one_in == 0;
        if slow {
            log.slow.fetch_add(1, Relaxed);
        }
        thread::sleep(if slow { SLOW } else { FAST });
        if out
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .is_err()
        {
            return;
        }
    }
}

/// What one setting's run measured.
struct Figures {
    latencies: Vec<Duration>,
    requests: u64,
    slow: u64,
    errors: u64,
    hedges_sent: u64,
    hedges_won: u64,
    hedges_refused: u64,
    elapsed: Duration,
}

fn run(hedge: Option<HedgePolicy>, requests: usize, workers: usize, slow_one_in: u64) -> Figures {
    let server = start_server(slow_one_in);
    let url = format!("http://{}/item", server.addr);
    let mut config = PoolConfig::builder()
        .max_clients(workers)
        .deadline(Duration::from_secs(10))
        .retry(RetryPolicy::new().with_max_attempts(1));
    if let Some(h) = hedge {
        config = config.hedge(h);
    }
    let pool = ClientPool::new(config.build()).unwrap();
    let next = AtomicU64::new(0);
    let errors = AtomicU64::new(0);
    let latencies = Mutex::new(Vec::with_capacity(requests));
    let started = Instant::now();
    thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let client = pool.checkout().unwrap();
                let mut mine = Vec::new();
                while next.fetch_add(1, Relaxed) < requests as u64 {
                    let t = Instant::now();
                    match client.get(&url).send().and_then(|r| r.bytes()) {
                        Ok(_) => mine.push(t.elapsed()),
                        Err(_) => {
                            errors.fetch_add(1, Relaxed);
                        }
                    }
                }
                latencies.lock().unwrap().extend(mine);
            });
        }
    });
    let elapsed = started.elapsed();
    let stats = pool.stats();
    drop(pool);
    let mut latencies = latencies.into_inner().unwrap();
    latencies.sort();
    Figures {
        latencies,
        requests: server.log.requests.load(Relaxed),
        slow: server.log.slow.load(Relaxed),
        errors: errors.load(Relaxed),
        hedges_sent: stats.hedges_sent(),
        hedges_won: stats.hedges_won(),
        hedges_refused: stats.hedges_refused(),
        elapsed,
    }
}

/// Nearest rank: the sample at rank ceil(q * n).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn args() -> (usize, usize, u64) {
    let mut requests = 20_000;
    let mut workers = 16;
    let mut slow_one_in = SLOW_ONE_IN;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse().ok());
        match a.as_str() {
            "--requests" => requests = value().expect("--requests N"),
            "--workers" => workers = value().expect("--workers N"),
            "--slow-one-in" => {
                slow_one_in = value().filter(|&n| n > 0).expect("--slow-one-in N") as u64
            }
            "--bench" => {}
            other => {
                panic!("unknown argument {other} (--requests N, --workers N, --slow-one-in N)")
            }
        }
    }
    (requests, workers, slow_one_in)
}

fn main() {
    let (requests, workers, slow_one_in) = args();
    let fixed = Duration::from_millis(20);
    let settings: [(&str, Option<HedgePolicy>); 4] = [
        ("off", None),
        ("on, default (p95, floor 1 ms)", Some(HedgePolicy::new())),
        (
            "on, p99 (floor 1 ms)",
            Some(HedgePolicy::new().with_delay(HedgeDelay::Quantile {
                quantile: 0.99,
                floor: Duration::from_millis(1),
            })),
        ),
        (
            "on, fixed 20 ms",
            Some(HedgePolicy::new().with_delay(HedgeDelay::Fixed(fixed))),
        ),
    ];
    println!(
        "{requests} GETs, {workers} workers; server: 5 ms, 1 in {slow_one_in} responses 1 s\n"
    );
    println!(
        "| hedging | p50 (ms) | p99 (ms) | p99.9 (ms) | max (ms) | extra requests | hedges won | refused | slow responses served | errors | wall (s) |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (name, policy) in settings {
        let f = run(policy, requests, workers, slow_one_in);
        let calls = f.latencies.len() as u64 + f.errors;
        let extra = f.requests.saturating_sub(calls);
        println!(
            "| {name} | {} | {} | {} | {} | {} ({:.2} %) | {} | {} | {} | {} | {:.2} |",
            ms(quantile(&f.latencies, 0.5)),
            ms(quantile(&f.latencies, 0.99)),
            ms(quantile(&f.latencies, 0.999)),
            ms(f.latencies.last().copied().unwrap_or_default()),
            extra,
            extra as f64 * 100.0 / calls.max(1) as f64,
            f.hedges_won,
            f.hedges_refused,
            f.slow,
            f.errors,
            f.elapsed.as_secs_f64(),
        );
        debug_assert!(f.hedges_sent >= extra);
    }
}
