//! An event stream: the server-sent events parser never panics, gives the same events however
//! the stream is cut into reads, agrees with an independent reading of the standard, and
//! keeps every line and event within its limit.
//!
//! The invariants live in `tests/fuzz_checks/mod.rs`, shared with the corpus replay in
//! `tests/fuzz_corpus.rs`.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::sse_parser(data));
