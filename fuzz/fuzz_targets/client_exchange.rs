//! A whole call against up to four scripted responses (separated by `\n~~~\n`): it ends
//! within its attempt and redirect bounds and never writes a credential to another origin.
//!
//! The invariants live in `tests/fuzz_checks/mod.rs`, shared with the corpus replay in
//! `tests/fuzz_corpus.rs`.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::client_exchange(data));
