//! Hedged requests (issue 16): a second copy of a slow, replayable request on another client
//! of the pool, the first response head winning, within a per-host budget.
//!
//! - `policy`: [`HedgePolicy`] and [`HedgeDelay`], the settings;
//! - `host`: one host's hedge budget and live delay, shared by the pool;
//! - `race`: an attempt and its hedges, first head wins, the loser aborted;
//! - `threads`: the pool's small bounded set of hedge threads.
//!
//! The engine (`engine.rs`) decides whether a call is hedged, schedules the hedge, and runs
//! it on a hedge thread's own client.

pub(crate) mod host;
pub(crate) mod policy;
pub(crate) mod race;
pub(crate) mod threads;

pub use policy::{HedgeDelay, HedgePolicy};
