//! The end-of-run report on standard error (`--stats=table|json|none`): the pool's figures per
//! host, and sentinel's own count of URLs, which the table's calls need not match (a URL
//! rejected before sending is no call; a body cut short is a call that got a response).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use http_sentinel::error::{ErrorKind, TimeoutPhase};
use http_sentinel::events::AttemptEvent;
use http_sentinel::metrics::StatusClass;
use http_sentinel::{EventHandler, HostStats, Stats};
use serde_json::{json, Value};

use crate::record::Record;

/// What the URLs of a run came to, counted by the writer in input order.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) urls: usize,
    /// A response with a status below 400, body read in full.
    pub(crate) ok: usize,
    /// A response with a status of 400 or above (a failure only under `--fail`).
    pub(crate) http_errors: usize,
    /// No usable response: every kind of error.
    pub(crate) errors: usize,
    /// Of `errors`, refused before anything was sent (bad URL, open breaker): calls with no
    /// attempt in the pool's counters (a URL that does not parse under host `-`).
    pub(crate) not_sent: usize,
    /// The first failure's exit code, in input order.
    pub(crate) exit: u8,
}

impl Tally {
    pub(crate) fn add(&mut self, rec: &Record) {
        self.urls += 1;
        let http_error = rec.status.is_some_and(|s| s >= 400);
        match (&rec.error, http_error) {
            (None, false) => self.ok += 1,
            (None, true) => self.http_errors += 1,
            (Some(e), _) if e.class == "http_error" => self.http_errors += 1,
            (Some(_), _) => {
                self.errors += 1;
                if rec.attempts == 0 {
                    self.not_sent += 1;
                }
            }
        }
        if self.exit == 0 {
            self.exit = rec.exit;
        }
    }

    /// The last line: URLs by outcome, with how many of the errors were never sent.
    pub(crate) fn line(&self) -> String {
        let mut line = format!(
            "sentinel: {} urls: {} ok, {} with status >= 400, {} with an error",
            self.urls, self.ok, self.http_errors, self.errors
        );
        if self.not_sent > 0 {
            let _ = write!(
                line,
                " ({} never sent: calls with no attempt)",
                self.not_sent
            );
        }
        line
    }
}

/// Counts, per host, the attempts that got a connection and those that reused one: the pool's
/// own reuse ratio counts a refused connect as an attempt, which made a host never reached show
/// `reuse 1.000`.
#[derive(Default)]
pub(crate) struct Reuse(Mutex<HashMap<String, (u64, u64)>>);

impl EventHandler for Reuse {
    fn on_attempt(&self, event: &AttemptEvent) {
        let connected = match event.outcome() {
            Ok(_) => true,
            Err(
                ErrorKind::Dns
                | ErrorKind::Connect(_)
                | ErrorKind::Tls(_)
                | ErrorKind::Timeout(TimeoutPhase::Resolve | TimeoutPhase::Connect),
            ) => false,
            Err(_) => true,
        };
        if !connected {
            return;
        }
        let mut hosts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = hosts.entry(event.host().to_owned()).or_default();
        entry.0 += 1;
        entry.1 += u64::from(event.reused_connection());
    }
}

impl Reuse {
    /// Reused over connected attempts for `host` (all hosts for `None`); `None` when nothing
    /// connected.
    fn ratio(&self, host: Option<&str>) -> Option<f64> {
        let hosts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (connected, reused) = hosts
            .iter()
            .filter(|(h, _)| host.is_none_or(|want| want == h.as_str()))
            .fold((0, 0), |(c, r), (_, (hc, hr))| (c + hc, r + hr));
        (connected > 0).then(|| reused as f64 / connected as f64)
    }
}

/// A latency in three significant figures or so: `740us`, `1.41ms`, `2.05s`.
fn short(d: Duration) -> String {
    let us = d.as_micros();
    match us {
        0..=999 => format!("{us}us"),
        1_000..=999_999 => format!("{:.2}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn host_json(h: &HostStats, reuse: &Reuse) -> Value {
    let lat = h.call_latency();
    json!({
        "host": h.host(),
        "calls": h.calls(),
        "succeeded": h.calls_succeeded(),
        "4xx": h.calls_with_status(StatusClass::ClientError),
        "5xx": h.calls_with_status(StatusClass::ServerError),
        "errors": h.calls_errored(),
        "attempts": h.attempts(),
        "retries": h.retries(),
        "connections": h.connections_opened(),
        "reuse": reuse.ratio(Some(h.host())),
        "p50_ms": ms(lat.p50()),
        "p99_ms": ms(lat.p99()),
        "max_ms": ms(lat.max()),
    })
}

/// `--stats=json`: one object, the URL tally and the pool's figures per host.
pub(crate) fn to_json(tally: &Tally, stats: &Stats, reuse: &Reuse) -> String {
    let hosts: Vec<Value> = stats.hosts().iter().map(|h| host_json(h, reuse)).collect();
    json!({
        "urls": tally.urls,
        "ok": tally.ok,
        "http_errors": tally.http_errors,
        "errors": tally.errors,
        "not_sent": tally.not_sent,
        "exit": tally.exit,
        "calls": stats.calls(),
        "attempts": stats.attempts(),
        "retries": stats.retries(),
        "connections": stats.connections_opened(),
        "reuse": reuse.ratio(None),
        "hosts": hosts,
    })
    .to_string()
}

/// `--stats=table`: a row per host, then the URL tally. Reuse reads `-` where nothing connected.
pub(crate) fn to_table(tally: &Tally, stats: &Stats, reuse: &Reuse) -> String {
    let width = stats
        .hosts()
        .iter()
        .map(|h| h.host().len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out =
        format!(
        "{:<width$}  {:>6}  {:>7}  {:>5}  {:>5}  {:>6}  {:>8}  {:>7}  {:>5}  {:>5}  {:>9}  {:>9}\n",
        "host", "calls", "success", "4xx", "5xx", "errors", "attempts", "retries", "conns",
        "reuse", "p50", "p99"
    );
    for h in stats.hosts() {
        let lat = h.call_latency();
        let success = match h.calls() {
            0 => "-".to_owned(),
            n => format!("{:.2}%", 100.0 * h.calls_succeeded() as f64 / n as f64),
        };
        let reused = reuse
            .ratio(Some(h.host()))
            .map_or("-".to_owned(), |r| format!("{r:.3}"));
        let _ = writeln!(
            out,
            "{:<width$}  {:>6}  {:>7}  {:>5}  {:>5}  {:>6}  {:>8}  {:>7}  {:>5}  {:>5}  {:>9}  {:>9}",
            h.host(),
            h.calls(),
            success,
            h.calls_with_status(StatusClass::ClientError),
            h.calls_with_status(StatusClass::ServerError),
            h.calls_errored(),
            h.attempts(),
            h.retries(),
            h.connections_opened(),
            reused,
            short(lat.p50()),
            short(lat.p99()),
        );
    }
    out.push_str(&tally.line());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Failure;

    #[test]
    fn the_tally_separates_statuses_errors_and_unsent_urls_and_keeps_the_first_exit() {
        let mut t = Tally::default();
        let ok = Record {
            status: Some(200),
            attempts: 1,
            ..Record::default()
        };
        let missing = Record {
            status: Some(404),
            attempts: 1,
            ..Record::default()
        };
        let bad_url = Record {
            exit: 3,
            error: Some(Failure {
                class: "invalid_request",
                message: String::new(),
            }),
            ..Record::default()
        };
        let refused = Record {
            exit: 7,
            attempts: 1,
            error: Some(Failure {
                class: "connect",
                message: String::new(),
            }),
            ..Record::default()
        };
        for r in [&ok, &missing, &bad_url, &refused] {
            t.add(r);
        }
        assert_eq!(
            (t.ok, t.http_errors, t.errors, t.not_sent, t.exit),
            (1, 1, 2, 1, 3)
        );
        assert_eq!(
            t.line(),
            "sentinel: 4 urls: 1 ok, 1 with status >= 400, 2 with an error (1 never sent: calls with no attempt)"
        );
    }
}
