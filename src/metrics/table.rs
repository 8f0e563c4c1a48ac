//! The human-readable table [`Stats`] displays as: a line of totals, a row per host, the pool
//! line and the breaker states. The counter columns and their order come from the counter list
//! ([`FAMILIES`]).

use std::fmt::{self, Write as _};
use std::time::Duration;

use super::counters::{Column, Counters, Read, FAMILIES};
use super::histogram::LatencySummary;
use super::stats::Stats;

/// Three significant digits in the largest unit that keeps the value at or above 1.
fn human_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    let (value, unit) = if nanos < 1_000_000 {
        (nanos as f64 / 1e3, "us")
    } else if nanos < 1_000_000_000 {
        (nanos as f64 / 1e6, "ms")
    } else {
        (nanos as f64 / 1e9, "s")
    };
    let decimals = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    format!("{value:.decimals$}{unit}")
}

/// A latency for display; `-` when there were no samples, so "no data" does not read as "0 ns".
fn latency(summary: &LatencySummary, pick: fn(&LatencySummary) -> Duration) -> String {
    if summary.count() == 0 {
        "-".to_owned()
    } else {
        human_duration(pick(summary))
    }
}

/// `part` of `whole` in percent, two decimals, rounded down: one failure in 100,000 calls
/// shows as 99.99%, never as a clean 100.00%.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_owned()
    } else {
        let hundredths = u128::from(part) * 10_000 / u128::from(whole);
        format!("{}.{:02}%", hundredths / 100, hundredths % 100)
    }
}

/// Lays out `rows` in columns two spaces apart: columns before `first_right` left-aligned, the
/// rest right-aligned; trailing whitespace removed.
fn aligned(rows: &[Vec<String>], first_right: usize) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|col| {
            rows.iter()
                .filter_map(|row| row.get(col))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (col, (cell, &width)) in row.iter().zip(&widths).enumerate() {
                if col > 0 {
                    line.push_str("  ");
                }
                if col < first_right {
                    let _ = write!(line, "{cell:<width$}");
                } else {
                    let _ = write!(line, "{cell:>width$}");
                }
            }
            line.truncate(line.trim_end().len());
            line
        })
        .collect()
}

/// The cells one set of counters shows, as `(header, text)`, in the order of the counter list.
fn cells(c: &Counters) -> Vec<(&'static str, String)> {
    let mut cells = Vec::new();
    for family in FAMILIES {
        for &column in family.columns {
            push_cells(&mut cells, column, family.read, c);
        }
    }
    cells
}

/// The cells of one column of one counter.
fn push_cells(cells: &mut Vec<(&'static str, String)>, column: Column, read: Read, c: &Counters) {
    match (column, read) {
        (Column::Count(header), read) => cells.push((header, read.total(c).to_string())),
        (Column::Classes(classes), Read::ByStatus(get)) => {
            for &class in classes {
                cells.push((class.as_str(), get(c)[class.index()].to_string()));
            }
        }
        (Column::SuccessRate, _) => cells.push(("success", percent(c.succeeded(), c.calls))),
        (Column::ReuseRatio, _) => {
            let reuse = c.reuse_ratio();
            cells.push((
                "reuse",
                reuse.map_or_else(|| "-".to_owned(), |r| format!("{r:.3}")),
            ));
        }
        (Column::Quantiles, Read::Latency(get)) => {
            let summary = get(c).summary();
            cells.push(("p50", latency(&summary, LatencySummary::p50)));
            cells.push(("p99", latency(&summary, LatencySummary::p99)));
            cells.push(("max", latency(&summary, LatencySummary::max)));
        }
        // A column that does not fit its counter's kind shows nothing; counters.rs tests that
        // the list has none.
        (Column::Classes(_) | Column::Quantiles, _) => {}
    }
}

impl Stats {
    /// The table of hosts: a header row, then a row per host.
    /// A `limit` column ends the rows when a host has an adaptive concurrency limit.
    fn host_rows(&self) -> Vec<Vec<String>> {
        let limits = self.hosts.iter().any(|h| h.concurrency.is_some());
        let mut rows: Vec<Vec<String>> = Vec::with_capacity(self.hosts.len() + 1);
        for h in &self.hosts {
            let mut cells = cells(&h.counters);
            if limits {
                let limit = h.concurrency.map(|(limit, _)| limit.to_string());
                cells.push(("limit", limit.unwrap_or_else(|| "-".to_owned())));
            }
            if rows.is_empty() {
                let header = cells.iter().map(|(header, _)| (*header).to_owned());
                rows.push(std::iter::once("host".to_owned()).chain(header).collect());
            }
            let values = cells.into_iter().map(|(_, value)| value);
            rows.push(std::iter::once(h.host.clone()).chain(values).collect());
        }
        rows
    }

    /// The pool line: clients, checkouts and the checkout wait.
    fn pool_line(&self) -> String {
        let pool = self.pool;
        format!(
            "pool: clients {}/{}  idle {}  checked out {}  waiting {}  checkouts {}  \
             timeouts {}  wait p99 {}",
            pool.clients,
            pool.max_clients,
            pool.idle,
            pool.checked_out,
            pool.waiting,
            self.checkouts,
            self.checkout_timeouts,
            latency(&self.checkout_wait(), LatencySummary::p99),
        )
    }
}

impl fmt::Display for Stats {
    /// A line of totals, one row per host, the pool line and any breaker states.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let totals: Vec<String> = cells(&self.counters)
            .into_iter()
            .map(|(header, value)| format!("{header} {value}"))
            .collect();
        f.write_str(&totals.join("  "))?;
        for line in aligned(&self.host_rows(), 1) {
            write!(f, "\n{line}")?;
        }
        write!(f, "\n{}", self.pool_line())?;
        let breakers: Vec<Vec<String>> = self
            .breakers
            .iter()
            .map(|(host, state)| vec!["breaker".to_owned(), host.clone(), state.to_string()])
            .collect();
        for line in aligned(&breakers, usize::MAX) {
            write!(f, "\n{line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerState;
    use crate::error::ErrorClass;
    use crate::metrics::counters::CallRecord;
    use crate::metrics::registry::Registry;
    use crate::metrics::stats::PoolState;
    use std::sync::Arc;
    use ureq::http::StatusCode;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn status(code: u16) -> Option<StatusCode> {
        Some(StatusCode::from_u16(code).unwrap())
    }

    fn call(latency: Duration, retries: u32, outcome: Result<u16, ErrorClass>) -> CallRecord {
        CallRecord {
            latency,
            retries,
            retries_refused: 0,
            stale_replays: 0,
            redirects: 0,
            outcome: outcome.map(|code| StatusCode::from_u16(code).unwrap()),
        }
    }

    #[test]
    fn percentages_round_down_so_a_failure_never_shows_as_100() {
        assert_eq!(percent(102_717, 102_718), "99.99%");
        assert_eq!(percent(5, 5), "100.00%");
        assert_eq!(percent(1, 3), "33.33%");
        assert_eq!(percent(2, 3), "66.66%");
        assert_eq!(percent(0, 7), "0.00%");
        assert_eq!(percent(0, 0), "-");
        assert_eq!(percent(u64::MAX, u64::MAX), "100.00%");
    }

    /// Three hosts: one with errors and final 500s, one healthy, one never reached.
    fn three_hosts() -> Stats {
        let registry = Arc::new(Registry::new());
        let mut rec = registry.recorder();
        for i in 0..30u64 {
            let h = rec.host("api.example.com");
            let opened = u64::from(i < 4);
            if i % 3 == 0 {
                // 503, retried, then a timeout.
                h.record_attempt(ms(1), opened, true, status(503));
                h.record_attempt(ms(1), 0, true, None);
                h.record_call(&call(ms(2), 1, Err(ErrorClass::Timeout)));
            } else if i % 5 == 1 {
                h.record_attempt(ms(2), opened, true, status(500));
                h.record_call(&call(ms(2), 0, Ok(500)));
            } else {
                h.record_attempt(ms(2), opened, true, status(200));
                h.record_call(&call(ms(2), 0, Ok(200)));
            }
        }
        for _ in 0..7 {
            let s = rec.host("s.example");
            s.record_attempt(ms(150), 1, true, status(200));
            s.record_call(&call(ms(150), 0, Ok(200)));
        }
        // Rejected by an open breaker before any attempt.
        for _ in 0..2 {
            let n = rec.host("never.example");
            n.record_call(&call(us(50), 0, Err(ErrorClass::CircuitOpen)));
        }
        registry.record_checkout(us(40));
        let mut stats = registry.snapshot(PoolState {
            clients: 2,
            idle: 1,
            checked_out: 1,
            waiting: 0,
            max_clients: 4,
        });
        stats.set_breakers(vec![
            ("s.example".into(), BreakerState::Closed),
            ("never.example".into(), BreakerState::HalfOpen),
            ("api.example.com".into(), BreakerState::Open),
        ]);
        stats
    }

    #[test]
    fn display_table() {
        let text = three_hosts().to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.iter().all(|l| l.trim_end() == *l), "{text}");
        assert!(!text.ends_with('\n'));

        // 39 calls, of which 23 succeeded: 16 + 7; the final 500s and the errors did not.
        assert_eq!(
            lines[0],
            "calls 39  success 58.97%  4xx 0  5xx 4  errors 12  attempts 47  retries 10  \
             conns 11  reuse 0.766  p50 2.05ms  p99 150ms  max 150ms"
        );
        assert_eq!(format!("{:.3}", 1.0 - 11.0 / 47.0), "0.766");

        // Host table: header row plus one row per host, all the same width.
        let header: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            header,
            [
                "host", "calls", "success", "4xx", "5xx", "errors", "attempts", "retries", "conns",
                "reuse", "p50", "p99", "max"
            ]
        );
        let width = lines[1].chars().count();
        assert!(
            lines[1..5].iter().all(|l| l.chars().count() == width),
            "{text}"
        );
        let row = |i: usize| lines[i].split_whitespace().collect::<Vec<&str>>();
        assert_eq!(
            row(2),
            [
                "api.example.com",
                "30",
                "53.33%",
                "0",
                "4",
                "10",
                "40",
                "10",
                "4",
                "0.900",
                "2.00ms",
                "2.00ms",
                "2.00ms"
            ]
        );
        // Never reached: no attempts, so no reuse ratio rather than a perfect one.
        assert_eq!(
            row(3),
            [
                "never.example",
                "2",
                "0.00%",
                "0",
                "0",
                "2",
                "0",
                "0",
                "0",
                "-",
                "50.0us",
                "50.0us",
                "50.0us"
            ]
        );
        assert_eq!(
            row(4),
            [
                "s.example",
                "7",
                "100.00%",
                "0",
                "0",
                "0",
                "7",
                "0",
                "7",
                "0.000",
                "150ms",
                "150ms",
                "150ms"
            ]
        );

        assert_eq!(
            lines[5],
            "pool: clients 2/4  idle 1  checked out 1  waiting 0  checkouts 1  timeouts 0  wait p99 40.0us"
        );
        assert_eq!(lines[6], "breaker  api.example.com  open");
        assert_eq!(lines[7], "breaker  never.example    half-open");
        assert_eq!(lines[8], "breaker  s.example        closed");
        assert_eq!(lines.len(), 9);
    }

    #[test]
    fn a_host_answering_500_to_everything_shows_no_success() {
        let registry = Arc::new(Registry::new());
        let mut rec = registry.recorder();
        for _ in 0..10 {
            let h = rec.host("down.example");
            h.record_attempt(ms(1), 0, true, status(500));
            h.record_call(&call(ms(1), 0, Ok(500)));
        }
        let text = registry.snapshot(PoolState::default()).to_string();
        assert!(
            text.starts_with("calls 10  success 0.00%  4xx 0  5xx 10  errors 0  "),
            "{text}"
        );
        let row: Vec<&str> = text.lines().nth(2).unwrap().split_whitespace().collect();
        assert_eq!(&row[..6], ["down.example", "10", "0.00%", "0", "10", "0"]);
    }

    #[test]
    fn display_of_empty_stats() {
        assert_eq!(
            Stats::default().to_string(),
            "calls 0  success -  4xx 0  5xx 0  errors 0  attempts 0  retries 0  conns 0  \
             reuse -  p50 -  p99 -  max -\n\
             pool: clients 0/0  idle 0  checked out 0  waiting 0  checkouts 0  timeouts 0  wait p99 -"
        );
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(Duration::ZERO), "0ns");
        assert_eq!(human_duration(Duration::from_nanos(999)), "999ns");
        assert_eq!(human_duration(us(1)), "1.00us");
        assert_eq!(human_duration(us(40)), "40.0us");
        assert_eq!(human_duration(us(1_024)), "1.02ms");
        assert_eq!(human_duration(ms(150)), "150ms");
        assert_eq!(human_duration(Duration::from_secs(12)), "12.0s");
    }
}
