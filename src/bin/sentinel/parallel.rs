//! Many URLs: a reader thread turns input lines into jobs on a [`WorkerPool`] and passes their
//! handles, in input order, through a bounded channel to the main thread, which alone writes
//! standard output (so lines never interleave) and standard error. Memory stays bounded however
//! long the input: the reader waits when the queue or the channel is full.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, IsTerminal, Read, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_sentinel::{
    redact_url, workers::JobHandle, workers::SubmitError, Client, ClientPool, WorkerPool,
};

use crate::args::{Options, Progress, StatsMode};
use crate::exit;
use crate::fetch::{fetch, Ctx};
use crate::output::{Names, Target};
use crate::progress::Counters;
use crate::record::{Failure, Record};
use crate::summary::{self, Reuse, Tally};
use crate::write_out::Format;

/// Longest input line taken as a URL; longer lines are reported, not fetched.
const MAX_LINE: usize = 64 * 1024;
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// What the reader hands the writer, in input order.
enum Item {
    Pending {
        line: usize,
        url: String,
        handle: JobHandle<Record>,
    },
    Done(Box<Record>),
    InputError(io::Error),
}

/// What the reader needs to turn a line into a job.
struct Reader<'a> {
    workers: &'a WorkerPool,
    ctx: Arc<Ctx>,
    counters: Arc<Counters>,
    /// `Some` when bodies are saved (`--output-dir`, `-O`).
    names: Option<Names>,
}

/// Runs every URL; returns the exit code (the first failed URL's, in input order).
pub(crate) fn run(
    opts: &Options,
    pool: &ClientPool,
    ctx: Arc<Ctx>,
    format: Option<&Format>,
    reuse: &Reuse,
) -> Result<u8, (u8, String)> {
    let input = open_input(opts)?;
    let dump = match &opts.dump_header {
        Some(path) => Some(File::create(path).map_err(|e| (exit::WRITE, format!("{path}: {e}")))?),
        None => None,
    };
    let workers = WorkerPool::new(pool, opts.workers, opts.workers * 2)
        .map_err(|e| (exit::OTHER, format!("cannot start workers: {e}")))?;
    let counters = Arc::new(Counters::default());
    let saving = opts.remote_name || opts.output_dir.is_some();
    let reader = Reader {
        workers: &workers,
        ctx,
        counters: counters.clone(),
        names: saving.then(|| Names::new(opts.output_dir.as_deref())),
    };
    let progress = match opts.progress {
        Progress::Always => true,
        Progress::Never => false,
        Progress::Auto => !opts.silent && io::stderr().is_terminal() && !io::stdout().is_terminal(),
    };
    let (tx, rx) = mpsc::sync_channel(opts.workers * 4);
    let mut writer = Writer {
        tally: Tally::default(),
        format,
        dump,
        progress: progress.then_some(&*counters),
        drawn: Instant::now(),
    };
    let outcome = std::thread::scope(|s| {
        let reading = std::thread::Builder::new()
            .name("sentinel-reader".into())
            .spawn_scoped(s, move || reader.read(input, tx))
            .map_err(|e| (exit::OTHER, format!("cannot start the reader: {e}")))?;
        let outcome = writer.write(rx);
        // The channel is closed once the writer returns, so a reader blocked on it returns too.
        let _ = reading.join();
        outcome
    });
    workers.shutdown();
    if progress {
        crate::to_stderr("\r\x1b[K");
    }
    let stats = opts.stats.unwrap_or(match opts.silent {
        true => StatsMode::None,
        false => StatsMode::Table,
    });
    let tally = &writer.tally;
    match stats {
        StatsMode::Table => crate::to_stderr(&summary::to_table(tally, &pool.stats(), reuse)),
        StatsMode::Json => {
            crate::to_stderr(&(summary::to_json(tally, &pool.stats(), reuse) + "\n"))
        }
        StatsMode::None => {}
    }
    outcome?;
    Ok(tally.exit)
}

/// The URLs on the command line, then `--input` (or standard input when neither was given).
fn open_input(opts: &Options) -> Result<Box<dyn Read + Send>, (u8, String)> {
    let given: String = opts.urls.iter().map(|u| format!("{u}\n")).collect();
    let given = Cursor::new(given.into_bytes());
    let rest: Box<dyn Read + Send> = match opts.input.as_deref() {
        Some("-") => Box::new(io::stdin()),
        Some(path) => Box::new(
            File::open(path).map_err(|e| (exit::READ, format!("cannot open {path}: {e}")))?,
        ),
        None if opts.urls.is_empty() => Box::new(io::stdin()),
        None => Box::new(io::empty()),
    };
    Ok(Box::new(given.chain(rest)))
}

impl Reader<'_> {
    fn read(mut self, input: Box<dyn Read + Send>, tx: SyncSender<Item>) {
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
                    Item::Done(Box::new(too_long(line, &buf)))
                }
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let url = text.trim();
                    if url.is_empty() || url.starts_with('#') {
                        continue;
                    }
                    match self.submit(line, url.to_owned()) {
                        Some(item) => item,
                        None => return,
                    }
                }
            };
            let stop = matches!(item, Item::InputError(_));
            // The writer has gone (standard output closed): nothing more to do.
            if tx.send(item).is_err() || stop {
                return;
            }
        }
    }

    /// Queues the fetch of `url`; `None` once the pool has shut down.
    fn submit(&mut self, line: usize, url: String) -> Option<Item> {
        let target = match &mut self.names {
            None => Target::Discard,
            Some(names) => match names.assign(&url, line) {
                Ok(path) => Target::File(path),
                Err(message) => return Some(Item::Done(Box::new(unnamed(line, &url, message)))),
            },
        };
        let shown = redact_url(&url);
        let (ctx, counters) = (self.ctx.clone(), self.counters.clone());
        let mut job = move |client: &Client| {
            counters.started.fetch_add(1, Relaxed);
            let rec = fetch(client, &ctx, line, &url, target);
            counters.finished.fetch_add(1, Relaxed);
            rec
        };
        // Each wait ends when a worker takes a job, and every job is bounded by the URL
        // deadline, so this loop always moves on; it stops when the pool shuts.
        let handle = loop {
            match self.workers.submit(job) {
                Ok(h) => break h,
                Err(SubmitError::Full(j)) => job = j,
                Err(SubmitError::ShutDown(_)) => return None,
            }
        };
        self.counters.submitted.fetch_add(1, Relaxed);
        Some(Item::Pending {
            line,
            url: shown,
            handle,
        })
    }
}

fn too_long(line: usize, buf: &[u8]) -> Record {
    // Redacted before it is cut short: a password past the cut must not show.
    let url = redact_url(&String::from_utf8_lossy(buf));
    let cut = url.char_indices().nth(80).map_or(url.len(), |(i, _)| i);
    Record {
        line,
        url: format!("{}...", &url[..cut]),
        exit: exit::BAD_URL,
        error: Some(Failure {
            class: "invalid_request",
            message: format!("line longer than {MAX_LINE} bytes"),
        }),
        ..Record::default()
    }
}

fn unnamed(line: usize, url: &str, message: String) -> Record {
    Record {
        line,
        url: redact_url(url),
        exit: exit::WRITE,
        error: Some(Failure {
            class: "write",
            message,
        }),
        ..Record::default()
    }
}

/// The main thread's side: writes each URL's line in input order.
struct Writer<'a> {
    tally: Tally,
    format: Option<&'a Format>,
    dump: Option<File>,
    progress: Option<&'a Counters>,
    drawn: Instant,
}

impl Writer<'_> {
    fn write(&mut self, rx: Receiver<Item>) -> Result<(), (u8, String)> {
        let stdout = io::stdout();
        let mut stdout = stdout.lock();
        for item in rx {
            let rec = match item {
                Item::Done(r) => *r,
                Item::InputError(e) => return Err((exit::READ, format!("reading input: {e}"))),
                Item::Pending { line, url, handle } => self.wait(line, url, handle),
            };
            if let (Some(dump), Some(head)) = (&mut self.dump, &rec.head) {
                dump.write_all(head.as_bytes())
                    .map_err(|e| (exit::WRITE, format!("writing -D file: {e}")))?;
            }
            let mut text = match self.format {
                Some(f) => f.render(&rec).into_bytes(),
                None => serde_json::to_vec(&rec).map_err(|e| (exit::OTHER, e.to_string()))?,
            };
            if self.format.is_none() {
                text.push(b'\n');
            }
            stdout.write_all(&text).map_err(closed)?;
            self.tally.add(&rec);
            self.draw(false);
        }
        stdout.flush().map_err(closed)?;
        self.draw(true);
        Ok(())
    }

    /// Waits for one job in slices, so the progress line keeps moving behind a slow URL.
    fn wait(&mut self, line: usize, url: String, mut handle: JobHandle<Record>) -> Record {
        loop {
            match handle.wait_timeout(PROGRESS_EVERY) {
                Ok(Ok(r)) => return r,
                // The job never ran, or panicked: still one line for this URL.
                Ok(Err(e)) => {
                    return Record {
                        line,
                        url,
                        exit: exit::OTHER,
                        error: Some(Failure {
                            class: e.class().as_str(),
                            message: e.to_string(),
                        }),
                        ..Record::default()
                    }
                }
                Err(h) => {
                    handle = h;
                    self.draw(false);
                }
            }
        }
    }

    fn draw(&mut self, force: bool) {
        let Some(counters) = self.progress else {
            return;
        };
        if force || self.drawn.elapsed() >= PROGRESS_EVERY {
            let failed = self.tally.errors + self.tally.http_errors;
            let line = counters.line(self.tally.urls, failed);
            crate::to_stderr(&format!("\r\x1b[K{line}"));
            self.drawn = Instant::now();
        }
    }
}

/// A failed write to standard output. A closed pipe (`sentinel ... | head`) ends the run quietly
/// with status 0, as documented: the reader of the output has what it wanted.
fn closed(e: io::Error) -> (u8, String) {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    (exit::WRITE, format!("writing output: {e}"))
}
