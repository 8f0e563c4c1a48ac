//! Peer benchmark: the same GET loop through http-sentinel, bare ureq, reqwest (blocking and
//! async), libcurl and a raw `TcpStream`, measured by one harness so the numbers compare.
//!
//! ```text
//! peers <client> --url URL --total N --workers W [--expect-bytes B] [--status-url URL]
//!                [--idle-hold SECS] [--stack-kb KB] [--hold]
//! ```
//!
//! Run mode (the default): W workers send N GETs in all (split evenly), read every body and
//! check status 200 (and the body length when `--expect-bytes` is given). The clock and the CPU
//! counters start when every worker is built and waiting, and stop when every worker has sent
//! its share, so thread start-up and teardown are outside the numbers.
//!
//! Held (`--hold`, run mode, blocking clients): every worker also sends one warm-up request
//! before the clock starts, so all W clients hold a kept-alive connection at once for the whole
//! run, as a service's long-lived workers do; the report adds how many connections the server
//! holds open when every worker has finished (`held_connections`). The warm-up is outside the
//! clock and the CPU counters; its connects are in `conns_opened`.
//!
//! Idle mode (`--idle-hold SECS`): each of the W workers sends one request, so it holds a
//! kept-alive connection, then parks; after SECS the process reports its resident memory.
//! Comparing W=1 with W=1000 gives the memory one idle worker costs.
//!
//! Output: one JSON line on stdout. With `--status-url` (nginx `stub_status`) it also reports how
//! many connections the server accepted during the run, or holds open while the workers park.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::exit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const CLIENTS: &[(&str, &str)] = &[
    ("sentinel", "http-sentinel: ClientPool, one checked-out Client per thread, defaults (retries, breakers, metrics on)"),
    ("ureq", "bare ureq 3.5: one Agent per thread, ureq's defaults (128 KiB input and output buffers)"),
    ("ureq-8k", "bare ureq 3.5: one Agent per thread, 8 KiB buffers (the library's sizes)"),
    ("ureq-shared", "bare ureq 3.5: one Agent shared by all threads"),
    ("reqwest", "reqwest 0.12 blocking: one Client shared by all threads"),
    ("reqwest-async", "reqwest 0.12 async: one Client, W tasks on a tokio runtime with 1 worker thread"),
    ("curl", "libcurl (curl crate): one Easy handle per thread"),
    ("raw", "raw TcpStream keep-alive loop per thread (minimal HTTP/1.1 parsing): the ceiling"),
];

struct Opts {
    client: String,
    url: String,
    total: u64,
    workers: usize,
    expect_bytes: Option<usize>,
    status_url: Option<String>,
    idle_hold: Option<Duration>,
    stack: usize,
    hold: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: peers <client> --url URL --total N --workers W [--expect-bytes B] \
         [--status-url URL] [--idle-hold SECS] [--stack-kb KB] [--hold]\nclients:"
    );
    for (name, what) in CLIENTS {
        eprintln!("  {name:14} {what}");
    }
    exit(2)
}

fn parse_args() -> Opts {
    let mut args = std::env::args().skip(1);
    let client = args.next().unwrap_or_else(|| usage());
    if !CLIENTS.iter().any(|(n, _)| *n == client) {
        eprintln!("unknown client {client:?}");
        usage();
    }
    let mut o = Opts {
        client,
        url: String::new(),
        total: 0,
        workers: 1,
        expect_bytes: None,
        status_url: None,
        idle_hold: None,
        stack: 256 * 1024,
        hold: false,
    };
    while let Some(flag) = args.next() {
        if flag == "--hold" {
            o.hold = true;
            continue;
        }
        let value = args.next().unwrap_or_else(|| usage());
        let num = |v: &str| -> u64 {
            v.parse().unwrap_or_else(|_| {
                eprintln!("{flag} wants a number, got {v:?}");
                exit(2)
            })
        };
        match flag.as_str() {
            "--url" => o.url = value,
            "--total" => o.total = num(&value),
            "--workers" => o.workers = num(&value) as usize,
            "--expect-bytes" => o.expect_bytes = Some(num(&value) as usize),
            "--status-url" => o.status_url = Some(value),
            "--idle-hold" => {
                let secs: f64 = value.parse().unwrap_or_else(|_| usage());
                o.idle_hold = Some(Duration::from_secs_f64(secs));
            }
            "--stack-kb" => o.stack = num(&value) as usize * 1024,
            _ => usage(),
        }
    }
    if o.url.is_empty() || o.workers == 0 || (o.idle_hold.is_none() && o.total == 0) {
        usage();
    }
    o
}

/// What one worker saw.
#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    /// Held mode: warm-up requests that failed (not counted as requests of the run).
    warmup_errors: u64,
    first_error: Option<String>,
}

impl Tally {
    /// Counts one response: status 200 and the expected body length, or an error.
    fn record(&mut self, r: Result<(u16, usize), String>, expect: Option<usize>) {
        match r {
            Ok((200, len)) if expect.map_or(len > 0, |e| e == len) => self.ok += 1,
            Ok((status, len)) => self.fail(format!("status {status} with {len} body bytes")),
            Err(e) => self.fail(e),
        }
    }

    fn fail(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.warmup_errors += other.warmup_errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Process CPU time (every thread, user and system) in nanoseconds.
fn cpu_ns() -> (u64, u64) {
    // SAFETY: getrusage only writes the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let ns = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1_000;
    (ns(ru.ru_utime), ns(ru.ru_stime))
}

/// A field of /proc/self/status in kB (VmRSS: resident now, VmHWM: peak resident).
fn proc_status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `http://host:port/path` into (`host:port`, `/path`); enough for loopback URLs.
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap_or_else(|| {
        eprintln!("only http:// URLs are supported: {url}");
        exit(2)
    });
    match rest.find('/') {
        Some(i) => (rest[..i].to_owned(), rest[i..].to_owned()),
        None => (rest.to_owned(), "/".to_owned()),
    }
}

/// nginx stub_status: (active connections, accepted connections so far). Each call is one
/// connection of its own, which the callers subtract.
fn server_status(url: &str) -> Option<(u64, u64)> {
    let (authority, path) = split_url(url);
    let mut s = TcpStream::connect(&authority).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let body = &text[text.find("\r\n\r\n")? + 4..];
    let mut lines = body.lines();
    let active = lines
        .next()?
        .strip_prefix("Active connections:")?
        .trim()
        .parse()
        .ok()?;
    lines.next()?; // "server accepts handled requests"
    let accepts = lines.next()?.split_whitespace().next()?.parse().ok()?;
    Some((active, accepts))
}

/// The measured interval. It starts when the main thread opens the gate (no worker can have
/// begun) and ends when the last worker finishes, timed by that worker. Reading the clock after
/// a barrier wake-up instead would count however long the scheduler kept the reading thread
/// queued behind a thousand runnable workers, which skews the 1000-worker cells either way.
struct Clock {
    start: Mutex<Option<(Instant, (u64, u64))>>,
    end: Mutex<Option<(Instant, (u64, u64))>>,
    left: AtomicUsize,
}

impl Clock {
    fn new(workers: usize) -> Clock {
        Clock {
            start: Mutex::new(None),
            end: Mutex::new(None),
            left: AtomicUsize::new(workers),
        }
    }

    fn start(&self) {
        *self.start.lock().unwrap() = Some((Instant::now(), cpu_ns()));
    }

    /// Called by each worker when it has sent its share; the last one stops the clock.
    fn worker_done(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.end.lock().unwrap() = Some((Instant::now(), cpu_ns()));
        }
    }

    /// Seconds, and (user, system) CPU nanoseconds, between start and the last worker's end.
    fn elapsed(&self) -> (f64, (u64, u64)) {
        let (t0, c0) = self.start.lock().unwrap().expect("clock started");
        let (t1, c1) = self.end.lock().unwrap().expect("every worker finished");
        ((t1 - t0).as_secs_f64(), (c1.0 - c0.0, c1.1 - c0.1))
    }
}

/// Runs the benchmark on `workers` threads: `init` builds a worker's client inside its thread,
/// `get` sends one request and returns (status, body length).
fn run_threads<S, I, G>(o: &Opts, init: I, get: G)
where
    I: Fn() -> Result<S, String> + Sync,
    G: Fn(&mut S, &str) -> Result<(u16, usize), String> + Sync,
{
    let w = o.workers;
    let idle = o.idle_hold.is_some();
    let hold = o.hold && !idle;
    let ready = Barrier::new(w + 1);
    let start = Barrier::new(w + 1);
    let done = Barrier::new(w + 1);
    let clock = Clock::new(w);
    let release = Barrier::new(w + 1);
    let tally = Mutex::new(Tally::default());
    let (init, get, url, expect) = (&init, &get, o.url.as_str(), o.expect_bytes);
    let (ready, start, done, release, tally_ref) = (&ready, &start, &done, &release, &tally);
    let clock_ref = &clock;
    let rss_before = proc_status_kb("VmRSS");
    let status_before = o.status_url.as_deref().and_then(server_status);
    thread::scope(|s| {
        for i in 0..w {
            let n = if idle {
                1
            } else {
                o.total / w as u64 + u64::from((i as u64) < o.total % w as u64)
            };
            let spawned = thread::Builder::new()
                .name(format!("peer-{i}"))
                .stack_size(o.stack)
                .spawn_scoped(s, move || {
                    let mut t = Tally::default();
                    let mut state = init().map_err(|e| t.fail(format!("init: {e}"))).ok();
                    // Held: open this worker's connection before the clock starts. A failed
                    // warm-up counts as an error of the run.
                    if hold {
                        if let Some(st) = state.as_mut() {
                            let mut warm = Tally::default();
                            warm.record(get(st, url), expect);
                            if let Some(e) = warm.first_error {
                                t.warmup_errors += 1;
                                t.first_error.get_or_insert(format!("warm-up: {e}"));
                            }
                        }
                    }
                    ready.wait();
                    start.wait();
                    for _ in 0..n {
                        match state.as_mut() {
                            Some(st) => t.record(get(st, url), expect),
                            None => t.errors += 1,
                        }
                    }
                    clock_ref.worker_done();
                    // Idle mode: park holding the client (and its kept-alive connection) until
                    // the main thread has measured memory.
                    done.wait();
                    if idle || hold {
                        release.wait();
                    }
                    tally_ref.lock().unwrap().merge(t);
                    drop(state);
                });
            if let Err(e) = spawned {
                // The workers already started wait on barriers sized for all of them: a
                // partial run cannot finish, so report and stop.
                eprintln!("spawning worker {i} of {w} failed: {e}");
                exit(3);
            }
        }
        // Every worker is built and waiting at `start`: only now does the clock start.
        ready.wait();
        clock.start();
        start.wait();
        done.wait();
        // Every worker has finished and still holds its client: what the server keeps open.
        let held = hold
            .then(|| o.status_url.as_deref().and_then(server_status))
            .flatten()
            .map(|(active, _)| active.saturating_sub(1));
        if hold {
            release.wait();
        }
        if idle {
            thread::sleep(o.idle_hold.unwrap());
            let rss = proc_status_kb("VmRSS");
            let held = o.status_url.as_deref().and_then(server_status);
            release.wait();
            Report::idle(
                rss_before,
                rss,
                held.map(|(active, _)| active.saturating_sub(1)),
            )
        } else {
            let (secs, cpu) = clock.elapsed();
            Report::run(secs, cpu, held)
        }
    })
    .finish(o, tally.into_inner().unwrap(), status_before);
}

/// The async peer: W tasks sharing one reqwest Client on a tokio runtime with one worker thread
/// (the client side is pinned to one core, as the blocking clients are).
fn run_reqwest_async(o: &Opts) {
    if o.hold {
        eprintln!("--hold is for the blocking clients (one client per thread)");
        exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let status_before = o.status_url.as_deref().and_then(server_status);
    let rss_before = proc_status_kb("VmRSS");
    let (report, tally) = rt.block_on(async {
        let client = reqwest::Client::new();
        let w = o.workers;
        let idle = o.idle_hold.is_some();
        let parked = Arc::new(tokio::sync::Barrier::new(w + 1));
        let release = Arc::new(tokio::sync::Barrier::new(w + 1));
        let in_flight = Arc::new(tokio::sync::Barrier::new(w));
        let clock = Arc::new(Clock::new(w));
        clock.start();
        let mut tasks = Vec::with_capacity(w);
        for i in 0..w {
            let n = if idle {
                1
            } else {
                o.total / w as u64 + u64::from((i as u64) < o.total % w as u64)
            };
            let (client, url, expect) = (client.clone(), o.url.clone(), o.expect_bytes);
            let clock = clock.clone();
            let (parked, release, in_flight) = (parked.clone(), release.clone(), in_flight.clone());
            tasks.push(tokio::spawn(async move {
                let mut t = Tally::default();
                for _ in 0..n {
                    let sent = client.get(&url).send().await;
                    if idle {
                        // All tasks share one connection pool: hold the response until every
                        // task has one, so each request had a connection of its own (as each
                        // blocking worker has) and the pool ends up with W idle connections.
                        in_flight.wait().await;
                    }
                    let r = async {
                        let resp = sent.map_err(|e| e.to_string())?;
                        let status = resp.status().as_u16();
                        let body = resp.bytes().await.map_err(|e| e.to_string())?;
                        Ok((status, body.len()))
                    };
                    t.record(r.await, expect);
                }
                clock.worker_done();
                if idle {
                    parked.wait().await;
                    release.wait().await;
                }
                t
            }));
        }
        let mut tally = Tally::default();
        let report = if idle {
            parked.wait().await;
            tokio::time::sleep(o.idle_hold.unwrap()).await;
            let rss = proc_status_kb("VmRSS");
            let url = o.status_url.clone();
            let held = tokio::task::spawn_blocking(move || url.as_deref().and_then(server_status))
                .await
                .ok()
                .flatten();
            release.wait().await;
            for t in tasks {
                tally.merge(t.await.unwrap_or_default());
            }
            Report::idle(
                rss_before,
                rss,
                held.map(|(active, _)| active.saturating_sub(1)),
            )
        } else {
            for t in tasks {
                tally.merge(t.await.unwrap_or_default());
            }
            let (secs, cpu) = clock.elapsed();
            Report::run(secs, cpu, None)
        };
        (report, tally)
    });
    report.finish(o, tally, status_before);
}

enum Report {
    Run {
        secs: f64,
        user_ns: u64,
        sys_ns: u64,
        held_connections: Option<u64>,
    },
    Idle {
        rss_before_kb: u64,
        rss_parked_kb: u64,
        held_connections: Option<u64>,
    },
}

impl Report {
    fn run(secs: f64, (user_ns, sys_ns): (u64, u64), held: Option<u64>) -> Report {
        Report::Run {
            secs,
            user_ns,
            sys_ns,
            held_connections: held,
        }
    }

    fn idle(rss_before_kb: u64, rss_parked_kb: u64, held: Option<u64>) -> Report {
        Report::Idle {
            rss_before_kb,
            rss_parked_kb,
            held_connections: held,
        }
    }

    fn finish(self, o: &Opts, t: Tally, status_before: Option<(u64, u64)>) {
        let mut out = format!(
            "{{\"client\":\"{}\",\"workers\":{},\"url\":\"{}\",\"ok\":{},\"errors\":{}",
            o.client,
            o.workers,
            json_escape(&o.url),
            t.ok,
            t.errors
        );
        match self {
            Report::Run {
                secs,
                user_ns,
                sys_ns,
                held_connections,
            } => {
                let n = (t.ok + t.errors).max(1) as f64;
                out += &format!(
                    ",\"mode\":\"run\",\"total\":{},\"secs\":{secs:.4},\"req_per_s\":{:.1},\
                     \"cpu_ns_per_req\":{:.0},\"user_ns\":{user_ns},\"sys_ns\":{sys_ns}",
                    o.total,
                    n / secs,
                    (user_ns + sys_ns) as f64 / n,
                );
                // Connections the server accepted during the run, less our own status request.
                let after = o.status_url.as_deref().and_then(server_status);
                if let (Some((_, a0)), Some((_, a1))) = (status_before, after) {
                    // Held: the status request taken while every worker held its client too.
                    let own = 1 + u64::from(held_connections.is_some());
                    out += &format!(",\"conns_opened\":{}", a1.saturating_sub(a0 + own));
                }
                if o.hold {
                    out += &format!(",\"hold\":true,\"warmup_errors\":{}", t.warmup_errors);
                }
                if let Some(h) = held_connections {
                    out += &format!(",\"held_connections\":{h}");
                }
            }
            Report::Idle {
                rss_before_kb,
                rss_parked_kb,
                held_connections,
            } => {
                out += &format!(
                    ",\"mode\":\"idle\",\"rss_before_kb\":{rss_before_kb},\
                     \"rss_parked_kb\":{rss_parked_kb}"
                );
                if let Some(h) = held_connections {
                    out += &format!(",\"held_connections\":{h}");
                }
            }
        }
        out += &format!(",\"peak_rss_kb\":{}", proc_status_kb("VmHWM"));
        if let Some(e) = &t.first_error {
            out += &format!(",\"first_error\":\"{}\"", json_escape(e));
        }
        out.push('}');
        println!("{out}");
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// libcurl handler that keeps the body (and so reads it, as the other clients do).
struct Collect(Vec<u8>);

impl curl::easy::Handler for Collect {
    fn write(&mut self, data: &[u8]) -> Result<usize, curl::easy::WriteError> {
        self.0.extend_from_slice(data);
        Ok(data.len())
    }
}

/// The ceiling: one kept-alive TcpStream, a prebuilt request, a minimal response parser
/// (status line, Content-Length, body) and one reused buffer. No allocation per request.
struct Raw {
    authority: String,
    request: Vec<u8>,
    conn: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Raw {
    fn new(url: &str) -> Raw {
        let (authority, path) = split_url(url);
        let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: */*\r\n\r\n");
        Raw {
            authority,
            request: request.into_bytes(),
            conn: None,
            buf: vec![0; 64 * 1024],
        }
    }

    fn get(&mut self) -> Result<(u16, usize), String> {
        let r = self.exchange();
        if r.is_err() {
            self.conn = None;
        }
        r.map_err(|e| e.to_string())
    }

    fn exchange(&mut self) -> std::io::Result<(u16, usize)> {
        use std::io::{Error, ErrorKind};
        let bad = |m: &str| Error::new(ErrorKind::InvalidData, m.to_owned());
        if self.conn.is_none() {
            let s = TcpStream::connect(&self.authority)?;
            s.set_nodelay(true)?;
            self.conn = Some(s);
        }
        let conn = self.conn.as_mut().unwrap();
        conn.write_all(&self.request)?;
        let mut filled = 0;
        let head_end = loop {
            if filled == self.buf.len() {
                return Err(bad("response header larger than the buffer"));
            }
            let n = conn.read(&mut self.buf[filled..])?;
            if n == 0 {
                return Err(Error::from(ErrorKind::UnexpectedEof));
            }
            filled += n;
            if let Some(i) = self.buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|_| bad("non-utf8 head"))?;
        let status = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("status"))?;
        let mut length = None;
        let mut close = false;
        for line in head.split("\r\n").skip(1) {
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.trim().eq_ignore_ascii_case("close");
                }
            }
        }
        let length = length.ok_or_else(|| bad("no content-length"))?;
        let mut have = filled - head_end;
        while have < length {
            let n = conn.read(&mut self.buf)?;
            if n == 0 {
                return Err(Error::from(ErrorKind::UnexpectedEof));
            }
            have += n;
        }
        if have != length {
            return Err(bad(
                "more bytes than content-length (pipelining is not expected)",
            ));
        }
        if close {
            self.conn = None;
        }
        Ok((status, length))
    }
}

fn main() {
    let o = parse_args();
    match o.client.as_str() {
        "sentinel" => {
            // As users run it: defaults (retries, per-host breakers, metrics all on), one client
            // per worker thread checked out of the pool.
            let pool = http_sentinel::ClientPool::new(
                http_sentinel::PoolConfig::builder()
                    .max_clients(o.workers)
                    .build(),
            )
            .expect("pool");
            run_threads(
                &o,
                || pool.checkout().map_err(|e| e.to_string()),
                |c, url| {
                    let resp = c.get(url).send().map_err(|e| e.to_string())?;
                    let status = resp.status().as_u16();
                    Ok((status, resp.bytes().map_err(|e| e.to_string())?.len()))
                },
            );
            let stats = pool.stats();
            eprintln!(
                "sentinel: {} calls, {} attempts",
                stats.calls(),
                stats.attempts()
            );
        }
        "ureq" => run_threads(
            &o,
            || Ok(ureq::Agent::new_with_defaults()),
            |agent, url| ureq_get(agent, url),
        ),
        "ureq-8k" => run_threads(
            &o,
            || {
                Ok(ureq::Agent::config_builder()
                    .input_buffer_size(8 * 1024)
                    .output_buffer_size(8 * 1024)
                    .build()
                    .new_agent())
            },
            |agent, url| ureq_get(agent, url),
        ),
        "ureq-shared" => {
            let agent = ureq::Agent::new_with_defaults();
            run_threads(&o, || Ok(agent.clone()), |agent, url| ureq_get(agent, url));
        }
        "reqwest" => {
            let client = reqwest::blocking::Client::new();
            run_threads(
                &o,
                || Ok(client.clone()),
                |c, url| {
                    let resp = c.get(url).send().map_err(|e| e.to_string())?;
                    let status = resp.status().as_u16();
                    Ok((status, resp.bytes().map_err(|e| e.to_string())?.len()))
                },
            );
        }
        "reqwest-async" => run_reqwest_async(&o),
        "curl" => {
            curl::init();
            run_threads(
                &o,
                || {
                    let mut easy = curl::easy::Easy2::new(Collect(Vec::new()));
                    easy.url(&o.url).map_err(|e| e.to_string())?;
                    Ok(easy)
                },
                |easy, _url| {
                    easy.get_mut().0.clear();
                    easy.perform().map_err(|e| e.to_string())?;
                    let status = easy.response_code().map_err(|e| e.to_string())?;
                    Ok((status as u16, easy.get_ref().0.len()))
                },
            );
        }
        "raw" => run_threads(&o, || Ok(Raw::new(&o.url)), |raw, _url| raw.get()),
        _ => unreachable!(),
    }
}

fn ureq_get(agent: &ureq::Agent, url: &str) -> Result<(u16, usize), String> {
    let mut resp = agent.get(url).call().map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_vec().map_err(|e| e.to_string())?;
    Ok((status, body.len()))
}
