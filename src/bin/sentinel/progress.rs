//! The progress line: counted by sentinel itself at submit, start and finish, so "running" can
//! never exceed the workers and what is waiting shows as queued.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Jobs by stage; each counter only grows.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) submitted: AtomicUsize,
    pub(crate) started: AtomicUsize,
    pub(crate) finished: AtomicUsize,
}

impl Counters {
    /// The line, without the carriage return and erase sequence around it.
    pub(crate) fn line(&self, written: usize, failed: usize) -> String {
        // Read latest stage first: a job counted as finished is then always counted as started
        // and submitted, so no difference below goes negative.
        let finished = self.finished.load(Relaxed);
        let started = self.started.load(Relaxed).max(finished);
        let submitted = self.submitted.load(Relaxed).max(started);
        format!(
            "sentinel: {finished} of {submitted} fetched, {} running, {} queued; {written} written, {failed} failed",
            started - finished,
            submitted - started
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_and_queued_are_told_apart() {
        let c = Counters::default();
        c.submitted.store(6, Relaxed);
        c.started.store(2, Relaxed);
        assert_eq!(
            c.line(0, 0),
            "sentinel: 0 of 6 fetched, 2 running, 4 queued; 0 written, 0 failed"
        );
        c.finished.store(6, Relaxed);
        c.started.store(6, Relaxed);
        assert_eq!(
            c.line(6, 1),
            "sentinel: 6 of 6 fetched, 0 running, 0 queued; 6 written, 1 failed"
        );
    }
}
