//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same invariant
//! checks the fuzz targets run (`tests/fuzz_checks/`), so that every regression input the
//! fuzzer found, and every seed, is checked by a plain `cargo test --all-features` without
//! libFuzzer or a nightly toolchain.
#![cfg(feature = "fuzzing")]

mod fuzz_checks;

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Runs `check` on every file of the target's corpus and reports every failing file at once.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries =
        fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a directory entry").path())
        // Dot files are libFuzzer's and editors' scratch files, ignored by git.
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    // An empty directory would make this test pass while checking nothing.
    assert!(!files.is_empty(), "{} holds no corpus files", dir.display());
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            catch_unwind(AssertUnwindSafe(|| check(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} {target} corpus files fail (panic messages above):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn retry_after_corpus() {
    replay("retry_after", fuzz_checks::retry_after);
}

#[test]
fn redirect_location_corpus() {
    replay("redirect_location", fuzz_checks::redirect_location);
}

#[test]
fn header_validation_corpus() {
    replay("header_validation", fuzz_checks::header_validation);
}

#[test]
fn client_exchange_corpus() {
    replay("client_exchange", fuzz_checks::client_exchange);
}

#[test]
fn sse_parser_corpus() {
    replay("sse_parser", fuzz_checks::sse_parser);
}
