//! Retrying failed calls: when, how often, how long to wait, and how many retries the whole
//! process may spend.
//!
//! [`RetryPolicy`] describes the rules and makes the one retry decision; [`Backoff`] yields the
//! delays; [`RetryEngine`] runs any fallible operation under a policy; [`RetryBudget`] caps
//! retries across threads so that a struggling server is not buried under them; and
//! [`parse_retry_after`] reads a server's `Retry-After` header. The client's engine uses the
//! same policy decision as [`RetryEngine`], so the two cannot drift apart.

mod backoff;
mod budget;
mod engine;
mod policy;
mod retry_after;

pub use backoff::{Backoff, Jitter};
pub use budget::RetryBudget;
pub use engine::{RetryEngine, RetryError};
pub(crate) use policy::{is_idempotent, later, RetryState};
pub use policy::{RetryDecision, RetryPolicy, StopReason};
pub(crate) use retry_after::days_from_civil;
pub use retry_after::parse_retry_after;
