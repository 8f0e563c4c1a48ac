//! `Race`: one attempt and its hedges, the first response head wins. The loser is aborted
//! (its socket shut down through `Connections::abort`), so its connection is closed and never
//! returned to a pool half-read.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::transport::Connections;

/// Who won the race.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Winner {
    Primary,
    Hedge,
}

struct State<T> {
    winner: Option<Winner>,
    /// The winning hedge's outcome, until the primary takes it.
    won: Option<T>,
    /// The clients of the hedges in flight, to abort when the primary wins.
    running: Vec<Arc<Connections>>,
    /// Hedges sent so far.
    sent: u32,
    /// The primary failed and waits for a hedge in flight.
    primary_waiting: bool,
}

/// One attempt (the primary, on the caller's client) racing its hedges (on the pool's hedge
/// threads, each on a client of its own). `T` is an attempt's outcome.
pub(crate) struct Race<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
    primary: Arc<Connections>,
}

/// What the race came to, for the primary's metrics and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Settled {
    /// Hedges sent.
    pub(crate) sent: u32,
    /// Whether a hedge's response is the one returned.
    pub(crate) hedge_won: bool,
}

impl<T> Race<T> {
    /// A race whose primary runs on the client of `primary`, armed for `abort` by the caller.
    pub(crate) fn new(primary: Arc<Connections>) -> Race<T> {
        Race {
            state: Mutex::new(State {
                winner: None,
                won: None,
                running: Vec::new(),
                sent: 0,
                primary_waiting: false,
            }),
            changed: Condvar::new(),
            primary,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        crate::sync::lock(&self.state)
    }

    /// Whether nobody has won yet (a hedge due now is still worth sending).
    pub(crate) fn is_open(&self) -> bool {
        self.lock().winner.is_none()
    }

    /// A hedge on the client of `conns` (armed for abort) is about to be sent: false when the
    /// race is already over, and then it must not be sent.
    pub(crate) fn hedge_start(&self, conns: &Arc<Connections>) -> bool {
        let mut s = self.lock();
        if s.winner.is_some() {
            return false;
        }
        s.running.push(conns.clone());
        s.sent += 1;
        true
    }

    /// A hedge ended with `outcome` (`ok`: a response head). The first head wins: the primary
    /// and the other hedges are aborted. Returns the outcome when it lost (the caller drops it,
    /// closing its connection).
    pub(crate) fn hedge_finish(&self, conns: &Arc<Connections>, outcome: T, ok: bool) -> Option<T> {
        let mut s = self.lock();
        s.running.retain(|c| !Arc::ptr_eq(c, conns));
        if ok && s.winner.is_none() {
            s.winner = Some(Winner::Hedge);
            s.won = Some(outcome);
            self.primary.abort();
            for other in s.running.drain(..) {
                other.abort();
            }
            drop(s);
            self.changed.notify_all();
            return None;
        }
        let last = s.running.is_empty();
        if s.primary_waiting && last {
            drop(s);
            self.changed.notify_all();
        }
        Some(outcome)
    }

    /// The primary ended with `outcome` (`ok`: a response head). Returns the outcome the call
    /// goes on with and what the race came to. A primary that failed while a hedge is in
    /// flight waits for it (at most until `deadline`, which bounds the hedge too).
    pub(crate) fn primary_finish(&self, outcome: T, ok: bool, deadline: Instant) -> (T, Settled) {
        let mut s = self.lock();
        if !ok && s.winner.is_none() && !s.running.is_empty() {
            s.primary_waiting = true;
            while s.winner.is_none() && !s.running.is_empty() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                s = self
                    .changed
                    .wait_timeout(s, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        let settled = |s: &State<T>, hedge_won| Settled {
            sent: s.sent,
            hedge_won,
        };
        if s.winner == Some(Winner::Hedge) {
            if let Some(won) = s.won.take() {
                return (won, settled(&s, true));
            }
        }
        s.winner = Some(Winner::Primary);
        for hedge in s.running.drain(..) {
            hedge.abort();
        }
        (outcome, settled(&s, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn conns() -> Arc<Connections> {
        Arc::new(Connections::new())
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn the_first_head_wins_and_a_late_hedge_is_not_sent() {
        let race: Race<&str> = Race::new(conns());
        let (outcome, settled) = race.primary_finish("primary", true, soon());
        assert_eq!(outcome, "primary");
        assert_eq!(settled, Settled::default());
        assert!(!race.is_open());
        assert!(!race.hedge_start(&conns()));
    }

    #[test]
    fn a_hedge_head_first_wins_and_a_second_hedge_loses() {
        let race: Race<&str> = Race::new(conns());
        let (a, b) = (conns(), conns());
        assert!(race.hedge_start(&a) && race.hedge_start(&b));
        assert_eq!(race.hedge_finish(&a, "hedge a", true), None);
        assert_eq!(race.hedge_finish(&b, "hedge b", true), Some("hedge b"));
        let (outcome, settled) = race.primary_finish("aborted primary", false, soon());
        assert_eq!(outcome, "hedge a");
        assert_eq!(
            settled,
            Settled {
                sent: 2,
                hedge_won: true
            }
        );
    }

    #[test]
    fn a_failed_primary_waits_for_the_hedge_in_flight() {
        let race: Arc<Race<&str>> = Arc::new(Race::new(conns()));
        let hedge = conns();
        assert!(race.hedge_start(&hedge));
        let finisher = {
            let race = race.clone();
            std::thread::spawn(move || {
                // Until the primary waits, the hedge's result would be kept all the same.
                race.hedge_finish(&hedge, "hedge", true)
            })
        };
        let (outcome, settled) = race.primary_finish("reset", false, soon());
        assert_eq!(finisher.join().unwrap(), None);
        assert_eq!((outcome, settled.hedge_won), ("hedge", true));
    }

    #[test]
    fn a_failed_primary_keeps_its_error_when_the_hedge_fails_too() {
        let race: Race<&str> = Race::new(conns());
        let hedge = conns();
        assert!(race.hedge_start(&hedge));
        assert_eq!(
            race.hedge_finish(&hedge, "hedge failed", false),
            Some("hedge failed")
        );
        let (outcome, settled) = race.primary_finish("primary failed", false, soon());
        assert_eq!(
            (outcome, settled.sent, settled.hedge_won),
            ("primary failed", 1, false)
        );
    }
}
