//! The human-readable table [`Stats`] displays as.

use std::fmt::{self, Write as _};
use std::time::Duration;

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
fn latency_cell(summary: &LatencySummary, pick: fn(&LatencySummary) -> Duration) -> String {
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

impl fmt::Display for Stats {
    /// A header line of totals, one row per host, the pool line and any breaker states.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = self.call_latency();
        write!(
            f,
            "calls {}  success {}  attempts {}  retries {}  reuse {:.3}  connections {}  \
             p50 {}  p99 {}  max {}",
            self.calls(),
            percent(self.successes(), self.calls()),
            self.attempts(),
            self.retries(),
            self.reuse_ratio(),
            self.connections_opened(),
            latency_cell(&call, LatencySummary::p50),
            latency_cell(&call, LatencySummary::p99),
            latency_cell(&call, LatencySummary::max),
        )?;

        if !self.hosts.is_empty() {
            let header = [
                "host", "calls", "success", "attempts", "retries", "failures", "conns", "reuse",
                "p50", "p99", "max",
            ];
            let mut rows = vec![header.iter().map(|s| (*s).to_owned()).collect()];
            rows.extend(self.hosts.iter().map(|h| {
                let call = h.call_latency();
                vec![
                    h.host.clone(),
                    h.calls().to_string(),
                    percent(h.successes(), h.calls()),
                    h.attempts().to_string(),
                    h.retries().to_string(),
                    h.failures().to_string(),
                    h.connections_opened().to_string(),
                    format!("{:.3}", h.reuse_ratio()),
                    latency_cell(&call, LatencySummary::p50),
                    latency_cell(&call, LatencySummary::p99),
                    latency_cell(&call, LatencySummary::max),
                ]
            }));
            for line in aligned(&rows, 1) {
                write!(f, "\n{line}")?;
            }
        }

        let pool = self.pool;
        let wait = self.checkout_wait();
        write!(
            f,
            "\npool: clients {}/{}  idle {}  checked out {}  waiting {}  checkouts {}  \
             timeouts {}  wait p99 {}",
            pool.clients,
            pool.max_clients,
            pool.idle,
            pool.checked_out,
            pool.waiting,
            self.checkouts,
            self.checkout_timeouts,
            latency_cell(&wait, LatencySummary::p99),
        )?;

        if !self.breakers.is_empty() {
            let rows: Vec<Vec<String>> = self
                .breakers
                .iter()
                .map(|(host, state)| vec!["breaker".to_owned(), host.clone(), state.clone()])
                .collect();
            for line in aligned(&rows, usize::MAX) {
                write!(f, "\n{line}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;
    use crate::metrics::counters::{add, inc};
    use crate::metrics::registry::Registry;
    use crate::metrics::stats::PoolState;
    use std::sync::Arc;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
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

    // -- Display ------------------------------------------------------------------------------

    #[test]
    fn display_table() {
        let registry = Arc::new(Registry::new());
        let mut rec = registry.recorder();
        for i in 0..30u64 {
            let h = rec.host("api.example.com");
            inc(&h.calls);
            inc(&h.attempts);
            if i % 3 == 0 {
                h.record_failure(ErrorClass::Timeout);
                inc(&h.retries);
                inc(&h.attempts);
            } else {
                inc(&h.successes);
            }
            h.call_latency.record(ms(2));
        }
        add(&rec.host("api.example.com").connections_opened, 4);
        let s = rec.host("s.example");
        add(&s.calls, 7);
        add(&s.attempts, 7);
        add(&s.successes, 7);
        add(&s.connections_opened, 7);
        s.call_latency.record(ms(150));
        registry.record_checkout(us(40));
        let mut stats = registry.snapshot(PoolState {
            clients: 2,
            idle: 1,
            checked_out: 1,
            waiting: 0,
            max_clients: 4,
        });
        stats.set_breakers(vec![
            ("s.example".into(), "closed".into()),
            ("api.example.com".into(), "open".into()),
        ]);

        let text = stats.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.iter().all(|l| l.trim_end() == *l), "{text}");
        assert!(!text.ends_with('\n'));

        let (calls, successes, attempts) = (37u64, 27u64, 47u64);
        let header = lines[0];
        assert!(
            header.starts_with(&format!("calls {calls}  success 72.97%  ")),
            "{header}"
        );
        assert!(header.contains(&format!("attempts {attempts}  retries 10  ")));
        assert!(header.contains(&format!("reuse {:.3}  connections 11", 1.0 - 11.0 / 47.0)));
        assert!(
            header.contains("p50 2.05ms  p99 150ms  max 150ms"),
            "{header}"
        );
        assert_eq!(
            format!("{:.2}", successes as f64 * 100.0 / calls as f64),
            "72.97"
        );

        // Host table: header row plus one row per host, all the same width.
        assert!(lines[1].starts_with("host "));
        assert!(lines[2].starts_with("api.example.com "));
        assert!(lines[3].starts_with("s.example "));
        let width = lines[1].chars().count();
        assert!(
            lines[1..4].iter().all(|l| l.chars().count() == width),
            "{text}"
        );
        let api: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            api,
            [
                "api.example.com",
                "30",
                "66.66%",
                "40",
                "10",
                "10",
                "4",
                "0.900",
                "2.00ms",
                "2.00ms",
                "2.00ms"
            ]
        );
        let small: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(
            small,
            [
                "s.example",
                "7",
                "100.00%",
                "7",
                "0",
                "0",
                "7",
                "0.000",
                "150ms",
                "150ms",
                "150ms"
            ]
        );

        assert_eq!(
            lines[4],
            "pool: clients 2/4  idle 1  checked out 1  waiting 0  checkouts 1  timeouts 0  wait p99 40.0us"
        );
        assert_eq!(lines[5], "breaker  api.example.com  open");
        assert_eq!(lines[6], "breaker  s.example        closed");
        assert_eq!(lines.len(), 7);
    }

    #[test]
    fn display_of_empty_stats() {
        assert_eq!(
            Stats::default().to_string(),
            "calls 0  success -  attempts 0  retries 0  reuse 0.000  connections 0  p50 -  p99 -  max -\n\
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
