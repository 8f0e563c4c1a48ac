//! One URL, curl's way: the body to standard output (or `-o`/`-O`), `-D`, `-w` after it, and
//! a `sentinel: (N) ...` line on standard error when it fails.

use std::fs;
use std::io::{self, Write};

use http_sentinel::ClientPool;

use crate::args::{Options, StatsMode};
use crate::exit;
use crate::fetch::{fetch, Ctx};
use crate::output::{Names, Target};
use crate::record::{Failure, Record};
use crate::summary::{self, Reuse, Tally};
use crate::write_out::Format;

/// Fetches the one URL; returns the exit code.
pub(crate) fn run(
    opts: &Options,
    pool: &ClientPool,
    ctx: &Ctx,
    format: Option<&Format>,
    reuse: &Reuse,
) -> u8 {
    let url = &opts.urls[0];
    let mut rec = match target(opts, url) {
        Ok(target) => match pool.checkout() {
            Ok(client) => fetch(&client, ctx, 1, url, target),
            Err(e) => failed(
                exit::for_error(&e, false),
                e.class().as_str(),
                e.to_string(),
            ),
        },
        Err(message) => failed(exit::WRITE, "write", message),
    };
    if let (Some(path), Some(head)) = (opts.dump_header.as_deref(), rec.head.as_deref()) {
        if let Err(e) = fs::write(path, head) {
            note(&mut rec, format!("writing {path}: {e}"));
        }
    }
    if let Some(format) = format {
        let mut out = io::stdout().lock();
        let text = format.render(&rec);
        if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            note(&mut rec, format!("writing output: {e}"));
        }
    }
    if let Some(e) = &rec.error {
        if rec.exit != 0 && (!opts.silent || opts.show_error) {
            crate::to_stderr(&format!("sentinel: ({}) {}\n", rec.exit, e.message));
        }
    }
    let mut tally = Tally::default();
    tally.add(&rec);
    match opts.stats {
        Some(StatsMode::Table) => {
            crate::to_stderr(&summary::to_table(&tally, &pool.stats(), reuse))
        }
        Some(StatsMode::Json) => {
            crate::to_stderr(&(summary::to_json(&tally, &pool.stats(), reuse) + "\n"))
        }
        _ => {}
    }
    rec.exit
}

fn target(opts: &Options, url: &str) -> Result<Target, String> {
    let mut names = Names::new(opts.output_dir.as_deref());
    if let Some(name) = &opts.output {
        // curl: "-o -" is standard output.
        return Ok(match name.as_str() {
            "-" => Target::Stdout { head: opts.include },
            _ => Target::File(names.join(name)),
        });
    }
    if opts.remote_name || opts.output_dir.is_some() {
        return names.assign(url, 1).map(Target::File);
    }
    let head = opts.include || opts.head || opts.dump_header.as_deref() == Some("-");
    Ok(Target::Stdout { head })
}

/// A write failure after the transfer: curl's 23, unless the transfer already failed.
fn note(rec: &mut Record, message: String) {
    if rec.exit == 0 {
        rec.exit = exit::WRITE;
        rec.error = Some(Failure {
            class: "write",
            message,
        });
    }
}

fn failed(code: u8, class: &'static str, message: String) -> Record {
    Record {
        exit: code,
        error: Some(Failure { class, message }),
        ..Record::default()
    }
}
