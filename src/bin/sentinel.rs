//! `sentinel`: fetch URLs (one a line) with N workers, one JSON line per URL in input order.
//!
//! Threads: a reader turns input lines into jobs on a [`WorkerPool`] and passes their handles,
//! in input order, through a bounded channel to the main thread, which alone writes standard
//! output (so lines never interleave) and standard error. Memory stays bounded however long the
//! input: the reader waits when the queue or the channel is full.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::time::{Duration, Instant};

use http_sentinel::{
    redact_url, workers::JobHandle, workers::SubmitError, BreakerConfig, Client, ClientPool, Error,
    PoolConfig, RetryPolicy, WorkerPool,
};
use serde::ser::{Serialize, SerializeStruct, Serializer};

const HELP: &str = "\
sentinel: fetch URLs concurrently and report each as one JSON line, in input order

USAGE:
    sentinel [OPTIONS] [--input FILE]

Reads URLs, one a line, from FILE or standard input. Surrounding whitespace is ignored; blank
lines and lines starting with '#' are skipped. Each URL is fetched with GET through a pool of
workers, each with its own client (retries with backoff, per-host circuit breaker, an overall
deadline per URL), and its body is read to the end and counted.

OPTIONS:
    -w, --workers N            Worker threads, each with its own client [default: 8, max 1024]
    -i, --input FILE           Read URLs from FILE; '-' is standard input [default: -]
        --retries N            Attempts per URL, the first included: 1 disables retries
                               [default: 3]; --attempts N is the same flag
        --deadline-ms MS       Overall deadline per URL: every attempt, backoff and the body
                               [default: 30000]
        --connect-timeout-ms MS
                               Deadline for one TCP (and TLS) connect [default: 10000]
        --no-breaker           Do not open a host's circuit breaker however often it fails
        --no-progress          Never draw the progress line
    -q, --quiet                Neither the progress line nor the summary on standard error
    -h, --help                 Print this help
    -V, --version              Print the version

The SENTINEL_* environment variables of the library (SENTINEL_DEADLINE_MS, ...) apply first;
flags override them.

OUTPUT:
    Standard output carries nothing but one JSON object per URL line, in input order:
      {\"line\":1,\"url\":\"http://example.com/\",\"status\":200,\"bytes\":1256,\"attempts\":1,
       \"ms\":42,\"error\":null,\"message\":null}
    line      the line's number in the input (1-based; skipped lines count)
    url       the URL as given, any user:password@ replaced by ***@
    status    the final HTTP status (after redirects and retries), null without a response
    bytes     body bytes read
    attempts  requests sent (or tried) for this URL, 0 when it was rejected before sending
    ms        time taken, body included
    error     null, or the kind of failure: invalid_request (not a valid http(s) URL), dns,
              connect, tls, timeout, protocol, io, body_too_large, too_many_redirects,
              redirect_refused, circuit_open, retry_after_too_long, pool_timeout, other
    message   null, or what went wrong, in words

    Standard error gets a summary table at the end (calls, success, attempts, retries,
    connection reuse, latency per host) and, while it is a terminal and standard output is
    not, a progress line.

EXIT STATUS:
    0  every URL got a response with a status below 400
    1  at least one URL failed: an error, or a status of 400 or above
    2  bad usage, or the input or output could not be read or written
    When standard output is closed early (say, piped into `head`), sentinel stops quietly
    with status 0.
";

/// Longest input line taken as a URL; longer lines are reported, not fetched.
const MAX_LINE: usize = 64 * 1024;
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(Command::Run(opts)) => opts,
        Ok(Command::Help) => return print_and_exit(HELP),
        Ok(Command::Version) => {
            return print_and_exit(&format!("sentinel {}\n", env!("CARGO_PKG_VERSION")))
        }
        Err(msg) => {
            to_stderr(&format!("sentinel: {msg}\nTry 'sentinel --help'.\n"));
            return ExitCode::from(2);
        }
    };
    match run(opts) {
        Ok(code) => code,
        Err(msg) => {
            to_stderr(&format!("sentinel: {msg}\n"));
            ExitCode::from(2)
        }
    }
}

/// Writes to standard error, ignoring failure: `eprint!` would panic on a closed stderr, and
/// diagnostics must never be what brings the run down.
fn to_stderr(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

fn print_and_exit(text: &str) -> ExitCode {
    match io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(2),
    }
}

enum Command {
    Run(Options),
    Help,
    Version,
}

#[derive(Debug)]
struct Options {
    workers: usize,
    input: Option<String>,
    attempts: u32,
    deadline: Option<Duration>,
    connect_timeout: Option<Duration>,
    breaker: bool,
    progress: bool,
    quiet: bool,
}

fn parse(args: &[String]) -> Result<Command, String> {
    let mut opts = Options {
        workers: 8,
        input: None,
        attempts: 3,
        deadline: None,
        connect_timeout: None,
        breaker: true,
        progress: true,
        quiet: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "-w" | "--workers" => opts.workers = number(flag, &value(flag)?, 1, 1024)? as usize,
            "-i" | "--input" => {
                let v = value(flag)?;
                opts.input = (v != "-").then_some(v);
            }
            "--retries" | "--attempts" => {
                opts.attempts = number(flag, &value(flag)?, 1, 100)? as u32
            }
            "--deadline-ms" => {
                opts.deadline = Some(millis(flag, &value(flag)?)?);
            }
            "--connect-timeout-ms" => {
                opts.connect_timeout = Some(millis(flag, &value(flag)?)?);
            }
            "--no-breaker" | "--no-progress" | "-q" | "--quiet" if inline.is_some() => {
                return Err(format!("{flag} takes no value"));
            }
            "--no-breaker" => opts.breaker = false,
            "--no-progress" => opts.progress = false,
            "-q" | "--quiet" => opts.quiet = true,
            other if other.starts_with('-') && other != "-" => {
                return Err(format!("unknown option {other:?}"));
            }
            other => {
                return Err(format!(
                    "unexpected argument {other:?} (read a file with --input FILE)"
                ))
            }
        }
    }
    Ok(Command::Run(opts))
}

fn number(flag: &str, v: &str, min: u64, max: u64) -> Result<u64, String> {
    match v.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{flag} must be a whole number from {min} to {max}, got {v:?}"
        )),
    }
}

fn millis(flag: &str, v: &str) -> Result<Duration, String> {
    number(flag, v, 1, 24 * 3600 * 1000).map(Duration::from_millis)
}

/// What one URL line came to.
struct Record {
    line: usize,
    url: String,
    status: Option<u16>,
    bytes: u64,
    attempts: u32,
    ms: u64,
    error: Option<(&'static str, String)>,
}

impl Record {
    fn failed(&self) -> bool {
        self.error.is_some() || self.status.is_none_or(|s| s >= 400)
    }

    fn from_error(line: usize, url: String, e: &Error, ms: u64) -> Record {
        Record {
            line,
            url,
            status: None,
            bytes: 0,
            attempts: e.attempts(),
            ms,
            error: Some((e.class().as_str(), e.to_string())),
        }
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut r = s.serialize_struct("Record", 8)?;
        r.serialize_field("line", &self.line)?;
        r.serialize_field("url", &self.url)?;
        r.serialize_field("status", &self.status)?;
        r.serialize_field("bytes", &self.bytes)?;
        r.serialize_field("attempts", &self.attempts)?;
        r.serialize_field("ms", &self.ms)?;
        r.serialize_field("error", &self.error.as_ref().map(|e| e.0))?;
        r.serialize_field("message", &self.error.as_ref().map(|e| &e.1))?;
        r.end()
    }
}

/// Fetches one URL and reads its body to the end.
fn fetch(client: &Client, line: usize, url: &str) -> Record {
    let started = Instant::now();
    let ms = |started: Instant| started.elapsed().as_millis() as u64;
    let shown = redact_url(url);
    let response = match client.get(url).send() {
        Ok(r) => r,
        Err(e) => return Record::from_error(line, shown, &e, ms(started)),
    };
    let (status, attempts) = (response.status(), response.attempts());
    let copied = io::copy(&mut response.into_reader(), &mut io::sink());
    let (bytes, error) = match copied {
        Ok(n) => (n, None),
        Err(e) => {
            let error = match e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
                Some(ours) => (ours.class().as_str(), ours.to_string()),
                None => ("io", format!("reading body: {e}")),
            };
            (0, Some(error))
        }
    };
    Record {
        line,
        url: shown,
        status: Some(status.as_u16()),
        bytes,
        attempts,
        ms: ms(started),
        error,
    }
}

/// Replaces a URL's `user:password@` with `***@`: the output must not carry credentials.
/// What the reader hands the writer, in input order.
enum Item {
    Pending {
        line: usize,
        url: String,
        handle: JobHandle<Record>,
    },
    Done(Record),
    InputError(io::Error),
}

fn run(opts: Options) -> Result<ExitCode, String> {
    let input: Box<dyn Read + Send> = match &opts.input {
        Some(path) => Box::new(File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?),
        None => Box::new(io::stdin()),
    };
    let mut config = PoolConfig::from_env()
        .map_err(|e| e.to_string())?
        .max_clients(opts.workers)
        .retry(RetryPolicy::new().with_max_attempts(opts.attempts));
    if let Some(d) = opts.deadline {
        config = config.deadline(d);
    }
    if let Some(d) = opts.connect_timeout {
        config = config.connect_timeout(d);
    }
    if !opts.breaker {
        config = config.breaker(BreakerConfig::disabled());
    }
    let pool = ClientPool::new(config.build()).map_err(|e| e.to_string())?;
    let workers = WorkerPool::new(&pool, opts.workers, opts.workers * 2)
        .map_err(|e| format!("cannot start workers: {e}"))?;
    let read = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel(opts.workers * 4);
    let progress =
        !opts.quiet && opts.progress && io::stderr().is_terminal() && !io::stdout().is_terminal();

    let outcome = std::thread::scope(|s| {
        let reader = std::thread::Builder::new()
            .name("sentinel-reader".into())
            .spawn_scoped(s, || read_input(input, &workers, &read, tx))
            .map_err(|e| format!("cannot start the reader: {e}"))?;
        let outcome = write_output(rx, &workers, &read, progress);
        // The channel is closed once the writer returns, so a reader blocked on it returns too.
        let _ = reader.join();
        outcome
    })?;
    workers.shutdown();
    if progress {
        to_stderr("\r\x1b[K");
    }
    if !opts.quiet {
        to_stderr(&format!(
            "{}\nsentinel: {} urls, {} ok, {} failed\n",
            pool.stats(),
            outcome.written,
            outcome.written - outcome.failed,
            outcome.failed
        ));
    }
    if let Some(e) = outcome.input_error {
        return Err(format!("reading input: {e}"));
    }
    Ok(if outcome.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn read_input(
    input: Box<dyn Read + Send>,
    workers: &WorkerPool,
    read: &AtomicUsize,
    tx: SyncSender<Item>,
) {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let mut buf = Vec::new();
    for line in 1usize.. {
        buf.clear();
        let got = (&mut input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf);
        let item = match got {
            Ok(0) => return,
            Err(e) => Item::InputError(e),
            Ok(_) if buf.len() > MAX_LINE && buf.last() != Some(&b'\n') => {
                // Discard the rest of the over-long line so the next line starts clean.
                if let Err(e) = input.skip_until(b'\n') {
                    let _ = tx.send(Item::InputError(e));
                    return;
                }
                // Redacted before it is cut short: a password past the cut must not show.
                let url = redact_url(&String::from_utf8_lossy(&buf));
                let cut = url.char_indices().nth(80).map_or(url.len(), |(i, _)| i);
                Item::Done(Record {
                    line,
                    url: format!("{}...", &url[..cut]),
                    status: None,
                    bytes: 0,
                    attempts: 0,
                    ms: 0,
                    error: Some((
                        "invalid_request",
                        format!("line longer than {MAX_LINE} bytes"),
                    )),
                })
            }
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                let url = text.trim();
                if url.is_empty() || url.starts_with('#') {
                    continue;
                }
                let url = url.to_owned();
                let shown = redact_url(&url);
                let mut job = move |client: &Client| fetch(client, line, &url);
                // Each wait ends when a worker takes a job, and every job is bounded by the
                // URL deadline, so this loop always moves on; it stops when the pool shuts.
                let handle = loop {
                    match workers.submit(job) {
                        Ok(h) => break h,
                        Err(SubmitError::Full(j)) => job = j,
                        Err(SubmitError::ShutDown(_)) => return,
                    }
                };
                Item::Pending {
                    line,
                    url: shown,
                    handle,
                }
            }
        };
        let stop = matches!(item, Item::InputError(_));
        if !matches!(item, Item::InputError(_)) {
            read.fetch_add(1, Ordering::Relaxed);
        }
        // The writer has gone (standard output closed): nothing more to do.
        if tx.send(item).is_err() || stop {
            return;
        }
    }
}

struct Outcome {
    written: usize,
    failed: usize,
    input_error: Option<io::Error>,
}

fn write_output(
    rx: Receiver<Item>,
    workers: &WorkerPool,
    read: &AtomicUsize,
    progress: bool,
) -> Result<Outcome, String> {
    let mut out = Outcome {
        written: 0,
        failed: 0,
        input_error: None,
    };
    let stdout = io::stdout();
    let mut stdout = stdout.lock();
    let mut drawn = Instant::now();
    let mut draw = |out: &Outcome, force: bool| {
        if progress && (force || drawn.elapsed() >= PROGRESS_EVERY) {
            let state = workers.state();
            to_stderr(&format!(
                "\r\x1b[Ksentinel: {} of {} fetched, {} written, {} failed, {} in flight",
                state.completed,
                read.load(Ordering::Relaxed),
                out.written,
                out.failed,
                state.running + state.queued
            ));
            drawn = Instant::now();
        }
    };
    for item in rx {
        let record = match item {
            Item::Done(r) => r,
            Item::InputError(e) => {
                out.input_error = Some(e);
                break;
            }
            Item::Pending {
                line,
                url,
                mut handle,
            } => loop {
                // Waiting in slices keeps the progress line moving behind a slow URL.
                match handle.wait_timeout(PROGRESS_EVERY) {
                    Ok(Ok(r)) => break r,
                    // The job never ran, or panicked: still one line for this URL.
                    Ok(Err(e)) => break Record::from_error(line, url, &e, 0),
                    Err(h) => {
                        handle = h;
                        draw(&out, false);
                    }
                }
            },
        };
        let mut line = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        line.push(b'\n');
        if let Err(e) = stdout.write_all(&line) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                // The reader of our output has gone: end quietly, as documented.
                std::process::exit(0);
            }
            return Err(format!("writing output: {e}"));
        }
        out.written += 1;
        if record.failed() {
            out.failed += 1;
        }
        draw(&out, false);
    }
    if let Err(e) = stdout.flush() {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        return Err(format!("writing output: {e}"));
    }
    draw(&out, true);
    Ok(out)
}
