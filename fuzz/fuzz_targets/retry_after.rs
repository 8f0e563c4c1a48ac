//! A `Retry-After` value: parsing never panics, delta-seconds are exact, a date's wait is
//! `max(date - now, 0)`, and `RetryPolicy::retry_after_delay` keeps to its cap.
//!
//! The invariants live in `tests/fuzz_checks/mod.rs`, shared with the corpus replay in
//! `tests/fuzz_corpus.rs`.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::retry_after(data));
