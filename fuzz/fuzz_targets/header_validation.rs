//! A method, URL and headers (fields separated by 0xFF): `validate` never panics, accepts
//! nothing that could put CR, LF or NUL on the wire or leave http(s), and prints no credential.
//!
//! The invariants live in `tests/fuzz_checks/mod.rs`, shared with the corpus replay in
//! `tests/fuzz_corpus.rs`.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::header_validation(data));
