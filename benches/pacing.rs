//! Pacing against a rate-limited API, side by side with the reactive loop the SDKs run.
//!
//! An embedded loopback server enforces 60 requests per second per key (fixed one-second
//! windows) and sends the IETF `RateLimit`/`RateLimit-Policy` fields and OpenAI's
//! `x-ratelimit-*-requests` pair on every response; a request over the limit gets 429 with
//! `Retry-After` and `retry-after-ms` (the time to the window's end). The server logs every
//! request that arrives from a key before a `Retry-After` it gave that key has expired.
//!
//! 32 workers share one key through one pool, first paced (`Pacing::new().with_per_key(true)`),
//! then reactive (no pacing; on 429, sleep the header's wait and try again, as the OpenAI and
//! Anthropic SDKs do).
//!
//! ```sh
//! bash benches/pacing.sh            # or: cargo bench --bench pacing -- --secs 30
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use http_sentinel::{ClientPool, Pacing, PoolConfig, RetryPolicy};

const LIMIT: u64 = 60;
const WINDOW: Duration = Duration::from_secs(1);
const WORKERS: usize = 32;
const KEY: &str = "Bearer bench-key";

#[derive(Default)]
struct KeyState {
    window: u64,
    used: u64,
    blocked_until: Option<Instant>,
}

#[derive(Default)]
struct Log {
    requests: AtomicU64,
    ok: AtomicU64,
    limited: AtomicU64,
    early: AtomicU64,
}

struct Server {
    addr: SocketAddr,
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
}

fn start_server() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Log::default());
    let stop = Arc::new(AtomicBool::new(false));
    let keys: Arc<Mutex<HashMap<String, KeyState>>> = Arc::default();
    let epoch = Instant::now();
    let (l, s) = (log.clone(), stop.clone());
    thread::spawn(move || {
        for conn in listener.incoming() {
            if s.load(Relaxed) {
                break;
            }
            let Ok(conn) = conn else { continue };
            let (l, k) = (l.clone(), keys.clone());
            thread::spawn(move || serve(conn, &l, &k, epoch));
        }
    });
    Server { addr, log, stop }
}

fn serve(conn: TcpStream, log: &Log, keys: &Mutex<HashMap<String, KeyState>>, epoch: Instant) {
    let _ = conn.set_nodelay(true);
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut key = String::new();
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if !first {
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("authorization") {
                        key = value.trim().to_owned();
                    }
                }
            }
            first = false;
        }
        let reply = decide(log, keys, &key, epoch);
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn decide(log: &Log, keys: &Mutex<HashMap<String, KeyState>>, key: &str, epoch: Instant) -> String {
    let now = Instant::now();
    let since = now - epoch;
    let window = since.as_nanos() as u64 / WINDOW.as_nanos() as u64;
    let window_end = epoch + WINDOW * (window as u32 + 1);
    let to_reset = window_end - now;
    log.requests.fetch_add(1, Relaxed);
    let mut keys = keys.lock().unwrap();
    let state = keys.entry(key.to_owned()).or_default();
    if state.blocked_until.is_some_and(|until| now < until) {
        log.early.fetch_add(1, Relaxed);
    }
    if state.window != window {
        state.window = window;
        state.used = 0;
    }
    let reset_secs = to_reset.as_secs_f64().ceil() as u64;
    let reset_ms = to_reset.as_millis().max(1);
    let allowed = state.used < LIMIT;
    if allowed {
        state.used += 1;
    }
    let remaining = LIMIT - state.used;
    let common = format!(
        "ratelimit-policy: \"default\";q={LIMIT};w={}\r\n\
         ratelimit: \"default\";r={remaining};t={reset_secs}\r\n\
         x-ratelimit-limit-requests: {LIMIT}\r\n\
         x-ratelimit-remaining-requests: {remaining}\r\n\
         x-ratelimit-reset-requests: {reset_ms}ms\r\n",
        WINDOW.as_secs()
    );
    if allowed {
        log.ok.fetch_add(1, Relaxed);
        return format!("HTTP/1.1 200 OK\r\n{common}content-length: 2\r\n\r\nok");
    }
    log.limited.fetch_add(1, Relaxed);
    state.blocked_until = Some(now + Duration::from_millis(reset_ms as u64));
    format!(
        "HTTP/1.1 429 Too Many Requests\r\n{common}retry-after: {reset_secs}\r\n\
         retry-after-ms: {reset_ms}\r\ncontent-length: 0\r\n\r\n"
    )
}

/// What one mode's run measured.
struct Figures {
    ok: u64,
    requests: u64,
    limited: u64,
    early: u64,
    errors: u64,
    elapsed: Duration,
}

fn run(paced: bool, secs: u64) -> Figures {
    let server = start_server();
    let url = format!("http://{}/v1/chat/completions", server.addr);
    let mut config = PoolConfig::builder()
        .max_clients(WORKERS)
        .deadline(Duration::from_secs(30));
    config = if paced {
        config.pacing(Pacing::new().with_per_key(true))
    } else {
        config.retry(RetryPolicy::new().with_max_attempts(1))
    };
    let pool = ClientPool::new(config.build()).unwrap();
    let errors = AtomicU64::new(0);
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| worker(&pool, &url, paced, end, &errors));
        }
    });
    let elapsed = started.elapsed();
    server.stop.store(true, Relaxed);
    let _ = TcpStream::connect(server.addr);
    let log = &server.log;
    Figures {
        ok: log.ok.load(Relaxed),
        requests: log.requests.load(Relaxed),
        limited: log.limited.load(Relaxed),
        early: log.early.load(Relaxed),
        errors: errors.load(Relaxed),
        elapsed,
    }
}

/// One worker until `end`: paced, the library does everything; reactive, a 429's wait is
/// slept here, as the SDKs do.
fn worker(pool: &ClientPool, url: &str, paced: bool, end: Instant, errors: &AtomicU64) {
    let client = pool.checkout().unwrap();
    while Instant::now() < end {
        let response = match client.get(url).header("authorization", KEY).send() {
            Ok(r) => r,
            Err(_) => {
                errors.fetch_add(1, Relaxed);
                continue;
            }
        };
        if paced || response.status() != 429 {
            let _ = response.bytes();
            continue;
        }
        let wait = response
            .header("retry-after-ms")
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis)
            .or_else(|| {
                let secs = response.header("retry-after")?.parse().ok()?;
                Some(Duration::from_secs(secs))
            })
            .unwrap_or(Duration::from_secs(1));
        let _ = response.bytes();
        thread::sleep(wait.min(end.saturating_duration_since(Instant::now())));
    }
}

fn main() {
    let mut secs = 30;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--secs" => secs = args.next().and_then(|v| v.parse().ok()).expect("--secs N"),
            "--bench" => {} // added by `cargo bench`
            other => panic!("unknown argument {other} (use --secs N)"),
        }
    }
    println!("{WORKERS} workers, one key, server limit {LIMIT}/s, {secs} s per mode");
    println!(
        "| mode | requests | 200 | 429 | 429 share | throughput (share of allowed) | sent before a Retry-After expired | client errors |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|");
    for (name, paced) in [("paced", true), ("reactive", false)] {
        let f = run(paced, secs);
        let allowed = LIMIT as f64 * f.elapsed.as_secs_f64() / WINDOW.as_secs_f64();
        println!(
            "| {name} | {} | {} | {} | {:.2} % | {:.1} % ({:.1} req/s) | {} | {} |",
            f.requests,
            f.ok,
            f.limited,
            100.0 * f.limited as f64 / f.requests.max(1) as f64,
            100.0 * f.ok as f64 / allowed,
            f.ok as f64 / f.elapsed.as_secs_f64(),
            f.early,
            f.errors,
        );
    }
}
