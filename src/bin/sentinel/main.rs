//! `sentinel`: a parallel HTTP fetcher shaped like curl. One URL on the command line behaves as
//! curl does (the body to standard output, curl's exit codes); many URLs, or URLs read from a
//! file or standard input, are fetched by N workers and reported as one JSON line each, in
//! input order. `--help` (help.rs) is the manual.
//!
//! Files, one concept each: `args` (the command line), `data` (the request body), `resolve`
//! (`--resolve`), `spec` (the request every URL gets), `setup` (the client pool), `fetch` (one
//! URL), `record` (what it came to), `output` (where bodies go), `write_out` (`-w`), `exit`
//! (curl's exit codes), `single` (one URL), `parallel` (many), `progress`, `summary` (the
//! statistics).

mod args;
mod data;
mod exit;
mod fetch;
mod help;
mod output;
mod parallel;
mod progress;
mod record;
mod resolve;
mod setup;
mod single;
mod spec;
mod summary;
mod write_out;

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;

use args::{Command, Options};
use fetch::Ctx;
use spec::Spec;
use summary::Reuse;
use write_out::Format;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match args::parse(&args) {
        Ok(Command::Run(opts)) => opts,
        Ok(Command::Help) => return print_and_exit(help::HELP),
        Ok(Command::Version) => {
            return print_and_exit(&format!("sentinel {}\n", env!("CARGO_PKG_VERSION")))
        }
        Err(msg) => {
            to_stderr(&format!("sentinel: {msg}\nTry 'sentinel --help'.\n"));
            return ExitCode::from(exit::USAGE);
        }
    };
    let code = match run(&opts) {
        Ok(code) => code,
        Err((code, msg)) => {
            if !opts.silent || opts.show_error {
                to_stderr(&format!("sentinel: ({code}) {msg}\n"));
            }
            code
        }
    };
    ExitCode::from(code)
}

/// Sets the run up (body, `-w` format, request, pool) and hands it to the one-URL or the
/// many-URL path.
fn run(opts: &Options) -> Result<u8, (u8, String)> {
    let body = data::assemble(&opts.data).map_err(|m| (exit::READ, m))?;
    let format = match &opts.write_out {
        Some(spec) => Some(write_out_format(opts, spec)?),
        None => None,
    };
    let spec = Spec::new(opts, body).map_err(|m| (exit::USAGE, m))?;
    let reuse = Arc::new(Reuse::default());
    let pool = setup::pool(opts, reuse.clone())?;
    let ctx = Ctx {
        spec,
        fail: opts.fail,
        no_redirects: opts.max_redirs == Some(0),
        keep_head: opts.dump_header.as_deref().is_some_and(|d| d != "-"),
        want_ip: format.as_ref().is_some_and(Format::wants_ip),
    };
    match opts.body_mode() {
        true => Ok(single::run(opts, &pool, &ctx, format.as_ref(), &reuse)),
        false => parallel::run(opts, &pool, Arc::new(ctx), format.as_ref(), &reuse),
    }
}

/// `-w FORMAT` or `-w @file`; unknown variables are warned about and print nothing (curl).
fn write_out_format(opts: &Options, spec: &str) -> Result<Format, (u8, String)> {
    let text = match spec.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| (exit::READ, format!("cannot read -w @{path}: {e}")))?,
        None => spec.to_owned(),
    };
    let (format, unknown) = Format::parse(&text);
    if !opts.silent {
        for name in unknown {
            to_stderr(&format!(
                "sentinel: unknown --write-out variable: '{name}'\n"
            ));
        }
    }
    Ok(format)
}

/// Writes to standard error, ignoring failure: `eprint!` would panic on a closed stderr, and
/// diagnostics must never be what brings the run down.
fn to_stderr(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

fn print_and_exit(text: &str) -> ExitCode {
    match io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(exit::WRITE),
    }
}
