//! The adaptive concurrency limit against a server with a knee, side by side with no limit.
//!
//! An embedded loopback server works on at most C requests at once (each takes `--service`
//! milliseconds); requests past C wait in a FIFO queue behind those C slots, so a request's
//! latency is flat up to C concurrent requests and rises with every request past it.
//!
//! First one worker measures the unloaded latency. Then 100 workers call the server for
//! `--secs` seconds, once with no limit (100 requests in flight, a fixed 100) and once with
//! `AdaptiveLimit` (latency target `--target`, default 1.1, times the unloaded p50). For each run: the
//! request latency (send to response head, the attempt latency in `stats()`), the caller's
//! call latency (which includes any wait for a slot), throughput, the deepest queue the server
//! saw, and for the adaptive run the learnt limit, sampled every 100 ms: from when its one-second
//! mean stays within +-20 % of C, and its mean, min and max over the second half of the run.
//!
//! ```sh
//! bash benches/adaptive.sh          # or: cargo bench --bench adaptive -- --secs 10 --c 32
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use http_sentinel::{AdaptiveLimit, ClientPool, PoolConfig, RetryPolicy, Stats};

const WORKERS: usize = 100;

/// The server's C slots and the FIFO queue behind them: a request takes a ticket and is worked
/// on once fewer than C requests with earlier tickets are unfinished.
struct Slots {
    c: u64,
    state: Mutex<(u64, u64)>, // (next ticket, requests finished)
    turn: Condvar,
    deepest: AtomicU64,
}

impl Slots {
    fn serve(&self, service: Duration) {
        let mut state = self.state.lock().unwrap();
        let ticket = state.0;
        state.0 += 1;
        self.deepest.fetch_max(state.0 - state.1, Relaxed);
        while ticket >= state.1 + self.c {
            state = self.turn.wait(state).unwrap();
        }
        drop(state);
        thread::sleep(service);
        self.state.lock().unwrap().1 += 1;
        self.turn.notify_all();
    }
}

struct Server {
    addr: SocketAddr,
    slots: Arc<Slots>,
    stop: Arc<AtomicBool>,
}

fn start_server(c: u64, service: Duration) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let slots = Arc::new(Slots {
        c,
        state: Mutex::new((0, 0)),
        turn: Condvar::new(),
        deepest: AtomicU64::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let (sl, st) = (slots.clone(), stop.clone());
    thread::spawn(move || {
        for conn in listener.incoming() {
            if st.load(Relaxed) {
                break;
            }
            let Ok(conn) = conn else { continue };
            let sl = sl.clone();
            thread::spawn(move || serve(conn, &sl, service));
        }
    });
    Server { addr, slots, stop }
}

fn serve(conn: TcpStream, slots: &Slots, service: Duration) {
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
        slots.serve(service);
        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        if out.write_all(reply).is_err() {
            return;
        }
    }
}

/// What one run measured.
struct Figures {
    request_p50: Duration,
    request_p99: Duration,
    call_p50: Duration,
    call_p99: Duration,
    calls: u64,
    errors: u64,
    elapsed: Duration,
    deepest: u64,
    /// The learnt limit every 100 ms, from the start of the run.
    limits: Vec<u32>,
}

fn run(
    c: u64,
    service: Duration,
    workers: usize,
    secs: f64,
    limit: Option<AdaptiveLimit>,
) -> Figures {
    let server = start_server(c, service);
    let url = format!("http://{}/work", server.addr);
    let mut config = PoolConfig::builder()
        .max_clients(workers)
        .deadline(Duration::from_secs(30))
        .retry(RetryPolicy::new().with_max_attempts(1));
    if let Some(limit) = limit {
        config = config.adaptive_concurrency(limit);
    }
    let pool = ClientPool::new(config.build()).unwrap();
    let errors = AtomicU64::new(0);
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(secs);
    let mut limits = Vec::new();
    thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| worker(&pool, &url, end, &errors));
        }
        let mut tick = started;
        while tick < end {
            tick += Duration::from_millis(100);
            thread::sleep(tick.saturating_duration_since(Instant::now()));
            let stats = pool.stats();
            if let Some(l) = stats.hosts().first().and_then(|h| h.concurrency_limit()) {
                limits.push(l);
            }
        }
    });
    let elapsed = started.elapsed();
    server.stop.store(true, Relaxed);
    let _ = TcpStream::connect(server.addr);
    let stats: Stats = pool.stats();
    Figures {
        request_p50: stats.attempt_latency().p50(),
        request_p99: stats.attempt_latency().p99(),
        call_p50: stats.call_latency().p50(),
        call_p99: stats.call_latency().p99(),
        calls: stats.calls(),
        errors: errors.load(Relaxed),
        elapsed,
        deepest: server.slots.deepest.load(Relaxed),
        limits,
    }
}

fn worker(pool: &ClientPool, url: &str, end: Instant, errors: &AtomicU64) {
    let client = pool.checkout().unwrap();
    while Instant::now() < end {
        match client.get(url).send().and_then(|r| r.bytes()) {
            Ok(_) => {}
            Err(_) => {
                errors.fetch_add(1, Relaxed);
            }
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// When the learnt limit's one-second mean (10 samples) came within +-20 % of `c` and stayed
/// there, and the mean, min and max of the samples over the second half of the run.
fn settling(limits: &[u32], c: u64) -> String {
    let within = |mean: f64| (mean - c as f64).abs() <= 0.2 * c as f64;
    let means: Vec<f64> = limits
        .windows(10)
        .map(|w| w.iter().map(|&l| f64::from(l)).sum::<f64>() / 10.0)
        .collect();
    let settled = match means.iter().rposition(|&m| !within(m)) {
        None if !means.is_empty() => "1.0 s".to_owned(),
        Some(i) if i + 1 < means.len() => format!("{:.1} s", (i + 11) as f64 / 10.0),
        _ => "never".to_owned(),
    };
    let tail = &limits[limits.len() / 2..];
    if tail.is_empty() {
        return "-".to_owned();
    }
    let mean = tail.iter().map(|&l| f64::from(l)).sum::<f64>() / tail.len() as f64;
    format!(
        "1 s mean within +-20 % from {settled}; 2nd half mean {mean:.1}, min {}, max {}",
        tail.iter().min().unwrap(),
        tail.iter().max().unwrap()
    )
}

fn main() {
    let (mut secs, mut c, mut service_ms, mut target, mut workers) = (10.0, 32, 20, 1.1, WORKERS);
    let mut trace = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .and_then(|v| v.parse::<f64>().ok())
                .expect("a number")
        };
        match arg.as_str() {
            "--secs" => secs = value(),
            "--c" => c = value() as u64,
            "--service" => service_ms = value() as u64,
            "--target" => target = value(),
            "--workers" => workers = value() as usize,
            "--trace" => trace = true,
            "--bench" => {} // added by `cargo bench`
            other => {
                panic!("unknown argument {other} (--secs, --c, --service, --target, --workers)")
            }
        }
    }
    let service = Duration::from_millis(service_ms);
    let unloaded = run(c, service, 1, 1.0, None);
    let target_latency = unloaded.request_p50.mul_f64(target);
    println!(
        "server: C = {c} slots, {service_ms} ms each, FIFO queue behind; {workers} workers, \
         {secs} s per run; unloaded request p50 {} p99 {}; latency target {} ({target} x p50)",
        ms(unloaded.request_p50),
        ms(unloaded.request_p99),
        ms(target_latency),
    );
    println!(
        "| run | request p50 | request p99 | request p99 / unloaded p50 | call p50 | call p99 | calls/s | errors | most at the server at once | learnt limit |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|");
    let adaptive = AdaptiveLimit::new().with_latency_target(target_latency);
    for (name, limit) in [
        ("fixed 100 (no limit)", None),
        ("adaptive (AIMD)", Some(adaptive)),
    ] {
        let adaptive = limit.is_some();
        let f = run(c, service, workers, secs, limit);
        println!(
            "| {name} | {} | {} | {:.2}x | {} | {} | {:.0} | {} | {} | {} |",
            ms(f.request_p50),
            ms(f.request_p99),
            f.request_p99.as_secs_f64() / unloaded.request_p50.as_secs_f64(),
            ms(f.call_p50),
            ms(f.call_p99),
            f.calls as f64 / f.elapsed.as_secs_f64(),
            f.errors,
            f.deepest,
            if adaptive {
                settling(&f.limits, c)
            } else {
                "-".to_owned()
            },
        );
        if trace && adaptive {
            println!("learnt limit every 100 ms: {:?}", f.limits);
        }
    }
}
