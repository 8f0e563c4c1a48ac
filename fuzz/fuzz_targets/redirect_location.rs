//! A base URL and a `Location` (`base\nlocation`): resolution gives an http(s) URL without
//! control characters or an error, relative targets keep the origin, and the same-origin
//! relation is reflexive, symmetric and transitive.
//!
//! The invariants live in `tests/fuzz_checks/mod.rs`, shared with the corpus replay in
//! `tests/fuzz_corpus.rs`.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::redirect_location(data));
