//! The command line, parsed by hand into [`Options`]: curl's flag names and short-flag clusters
//! (`-sSL`, `-XPOST`, `-ofile`), plus sentinel's own `--name=value` form.

use std::time::Duration;

/// What the command line asks for.
pub(crate) enum Command {
    Run(Box<Options>),
    Help,
    Version,
}

/// Whether a status of 400 or above fails the URL (curl's `--fail`, `--fail-with-body`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fail {
    No,
    /// Exit 22, nothing written for the body.
    Quiet,
    /// Exit 22, the body written as usual.
    WithBody,
}

/// How the end-of-run statistics are shown on standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatsMode {
    Table,
    Json,
    None,
}

/// When the progress line is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// While standard error is a terminal and standard output is not.
    Auto,
    Never,
    Always,
}

/// One `-d`-style argument, kept as given until the body is assembled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Data {
    /// `-d`/`--data`/`--data-ascii`: `@file` is read with CR and LF removed (as curl does).
    Ascii(String),
    /// `--data-raw`: taken literally, a leading `@` included.
    Raw(String),
    /// `--data-binary`: `@file` is read byte for byte.
    Binary(String),
    /// `--json`: as `--data-binary`, and the request says it is JSON.
    Json(String),
}

#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) urls: Vec<String>,
    pub(crate) input: Option<String>,
    pub(crate) workers: usize,
    pub(crate) attempts: u32,
    pub(crate) deadline: Option<Duration>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) breaker: bool,
    pub(crate) progress: Progress,
    pub(crate) silent: bool,
    pub(crate) show_error: bool,
    pub(crate) stats: Option<StatsMode>,
    pub(crate) json_lines: bool,
    pub(crate) method: Option<String>,
    pub(crate) headers: Vec<String>,
    pub(crate) data: Vec<Data>,
    pub(crate) user: Option<String>,
    pub(crate) bearer: Option<String>,
    pub(crate) user_agent: Option<String>,
    pub(crate) output: Option<String>,
    pub(crate) output_dir: Option<String>,
    pub(crate) remote_name: bool,
    pub(crate) dump_header: Option<String>,
    pub(crate) head: bool,
    pub(crate) include: bool,
    pub(crate) max_redirs: Option<u32>,
    pub(crate) max_filesize: Option<u64>,
    pub(crate) cacert: Option<String>,
    pub(crate) resolve: Vec<String>,
    pub(crate) proxy: Option<String>,
    pub(crate) fail: Fail,
    pub(crate) write_out: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            urls: Vec::new(),
            input: None,
            workers: 8,
            attempts: 3,
            deadline: None,
            connect_timeout: None,
            breaker: true,
            progress: Progress::Auto,
            silent: false,
            show_error: false,
            stats: None,
            json_lines: false,
            method: None,
            headers: Vec::new(),
            data: Vec::new(),
            user: None,
            bearer: None,
            user_agent: None,
            output: None,
            output_dir: None,
            remote_name: false,
            dump_header: None,
            head: false,
            include: false,
            max_redirs: None,
            max_filesize: None,
            cacert: None,
            resolve: Vec::new(),
            proxy: None,
            fail: Fail::No,
            write_out: None,
        }
    }
}

impl Options {
    /// One URL on the command line and nothing asking for JSON lines: curl's shape, the body
    /// to standard output.
    pub(crate) fn body_mode(&self) -> bool {
        self.urls.len() == 1 && self.input.is_none() && !self.json_lines
    }
}

/// Short flags and the long names they stand for.
const SHORT: &[(char, &str)] = &[
    ('A', "user-agent"),
    ('D', "dump-header"),
    ('H', "header"),
    ('I', "head"),
    ('L', "location"),
    ('O', "remote-name"),
    ('S', "show-error"),
    ('V', "version"),
    ('X', "request"),
    ('Z', "parallel"),
    ('d', "data"),
    ('f', "fail"),
    ('h', "help"),
    ('i', "include"),
    ('k', "insecure"),
    ('m', "max-time"),
    ('o', "output"),
    ('q', "quiet"),
    ('s', "silent"),
    ('u', "user"),
    ('w', "write-out"),
    ('x', "proxy"),
];

/// Long flags that take a value.
const VALUED: &[&str] = &[
    "attempts",
    "cacert",
    "connect-timeout",
    "connect-timeout-ms",
    "data",
    "data-ascii",
    "data-binary",
    "data-raw",
    "deadline-ms",
    "dump-header",
    "header",
    "input",
    "json",
    "max-filesize",
    "max-redirs",
    "max-time",
    "oauth2-bearer",
    "output",
    "output-dir",
    "parallel-max",
    "proxy",
    "request",
    "resolve",
    "retries",
    "retry",
    "stats",
    "user",
    "user-agent",
    "workers",
    "write-out",
];

/// Parses the arguments after the program name.
pub(crate) fn parse(args: &[String]) -> Result<Command, String> {
    let mut opts = Options::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut next = || args.next().cloned();
        let done = if arg == "--" {
            opts.urls.extend(next());
            opts.urls.extend(args.by_ref().cloned());
            None
        } else if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let value = match (VALUED.contains(&name), inline) {
                (true, Some(v)) => Some(v),
                (true, None) => Some(next().ok_or_else(|| format!("--{name} needs a value"))?),
                (false, Some(_)) => return Err(format!("--{name} takes no value")),
                (false, None) => None,
            };
            apply(&mut opts, name, value)?
        } else if arg.len() > 1 && arg.starts_with('-') {
            cluster(&mut opts, &arg[1..], &mut next)?
        } else {
            opts.urls.push(arg.clone());
            None
        };
        if let Some(command) = done {
            return Ok(command);
        }
    }
    check(&opts)?;
    Ok(Command::Run(Box::new(opts)))
}

/// `-sSL`, `-XPOST`, `-o file`: flags without a value may be grouped; the first one that takes
/// a value takes the rest of the group, or else the next argument.
fn cluster(
    opts: &mut Options,
    flags: &str,
    next: &mut dyn FnMut() -> Option<String>,
) -> Result<Option<Command>, String> {
    for (at, c) in flags.char_indices() {
        let Some(&(_, name)) = SHORT.iter().find(|(s, _)| *s == c) else {
            return Err(format!("unknown option -{c}"));
        };
        if !VALUED.contains(&name) {
            if let Some(command) = apply(opts, name, None)? {
                return Ok(Some(command));
            }
            continue;
        }
        let rest = &flags[at + c.len_utf8()..];
        let value = match rest.is_empty() {
            false => rest.to_owned(),
            true => next().ok_or_else(|| format!("-{c} needs a value"))?,
        };
        // `-w 16` is `--workers 16`, as before curl's flags arrived: a write-out format of
        // nothing but digits would only print those digits.
        let name = match c == 'w' && value.bytes().all(|b| b.is_ascii_digit()) {
            true => "workers",
            false => name,
        };
        return apply(opts, name, Some(value));
    }
    Ok(None)
}

/// Applies one flag (by its long name); `Some` ends parsing with that command.
fn apply(opts: &mut Options, name: &str, value: Option<String>) -> Result<Option<Command>, String> {
    let flag = format!("--{name}");
    let v = value.unwrap_or_default();
    match name {
        "help" => return Ok(Some(Command::Help)),
        "version" => return Ok(Some(Command::Version)),
        "insecure" => return Err(INSECURE.into()),
        _ if apply_request(opts, name, &v)? => {}
        _ if apply_output(opts, name, &v)? => {}
        _ if apply_transfer(opts, name, &flag, &v)? => {}
        _ => return Err(format!("unknown option {flag}")),
    }
    Ok(None)
}

const INSECURE: &str = "-k/--insecure is refused: certificate verification cannot be turned \
off. Trust a private CA with --cacert FILE instead";

/// What is sent: method, headers, body, credentials.
fn apply_request(opts: &mut Options, name: &str, v: &str) -> Result<bool, String> {
    match name {
        "request" => opts.method = Some(method(v)?),
        "header" => opts.headers.push(header(v)?),
        "data" | "data-ascii" => opts.data.push(Data::Ascii(v.to_owned())),
        "data-raw" => opts.data.push(Data::Raw(v.to_owned())),
        "data-binary" => opts.data.push(Data::Binary(v.to_owned())),
        "json" => opts.data.push(Data::Json(v.to_owned())),
        "user" if !v.contains(':') => {
            return Err(format!(
                "-u needs user:password (sentinel never prompts), got {:?}",
                v.split(':').next().unwrap_or_default()
            ))
        }
        "user" => opts.user = Some(v.to_owned()),
        "oauth2-bearer" => opts.bearer = Some(value_text("--oauth2-bearer", v)?),
        "user-agent" => opts.user_agent = Some(value_text("--user-agent", v)?),
        "head" => opts.head = true,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Where results go.
fn apply_output(opts: &mut Options, name: &str, v: &str) -> Result<bool, String> {
    match name {
        "output" => opts.output = Some(v.to_owned()),
        "output-dir" => opts.output_dir = Some(v.to_owned()),
        "remote-name" => opts.remote_name = true,
        "dump-header" => opts.dump_header = Some(v.to_owned()),
        "include" => opts.include = true,
        "write-out" => opts.write_out = Some(v.to_owned()),
        "json-lines" => opts.json_lines = true,
        "silent" => opts.silent = true,
        "show-error" => opts.show_error = true,
        "quiet" => {
            opts.stats = Some(StatsMode::None);
            opts.progress = Progress::Never;
        }
        "no-progress" => opts.progress = Progress::Never,
        "progress" => opts.progress = Progress::Always,
        "fail" => opts.fail = Fail::Quiet,
        "fail-with-body" => opts.fail = Fail::WithBody,
        "stats" => {
            opts.stats = Some(match v {
                "table" => StatsMode::Table,
                "json" => StatsMode::Json,
                "none" => StatsMode::None,
                _ => return Err(format!("--stats is table, json or none, got {v:?}")),
            })
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// How the transfer runs: input, workers, time, retries, limits, TLS and network.
fn apply_transfer(opts: &mut Options, name: &str, flag: &str, v: &str) -> Result<bool, String> {
    match name {
        "input" => opts.input = Some(v.to_owned()),
        "workers" | "parallel-max" => opts.workers = number(flag, v, 1, 1024)? as usize,
        "parallel" | "location" | "compressed" => {}
        "retries" | "attempts" => opts.attempts = number(flag, v, 1, 100)? as u32,
        "retry" => opts.attempts = number(flag, v, 0, 99)? as u32 + 1,
        "max-time" => opts.deadline = Some(seconds(flag, v)?),
        "connect-timeout" => opts.connect_timeout = Some(seconds(flag, v)?),
        "deadline-ms" => opts.deadline = Some(millis(flag, v)?),
        "connect-timeout-ms" => opts.connect_timeout = Some(millis(flag, v)?),
        "no-breaker" => opts.breaker = false,
        // curl's -1 is "no limit"; the call's deadline still bounds the chain.
        "max-redirs" if v.trim() == "-1" => opts.max_redirs = Some(u32::MAX),
        "max-redirs" => opts.max_redirs = Some(number(flag, v, 0, 1_000_000)? as u32),
        "max-filesize" => opts.max_filesize = Some(size(flag, v)?),
        "cacert" => opts.cacert = Some(v.to_owned()),
        "resolve" => opts.resolve.push(v.to_owned()),
        "proxy" => opts.proxy = Some(v.to_owned()),
        _ => return Ok(false),
    }
    Ok(true)
}

/// Combinations that cannot work, refused before anything is sent.
fn check(opts: &Options) -> Result<(), String> {
    let many = !opts.body_mode();
    if opts.output.is_some() && many {
        return Err(
            "-o names one file, for one URL; for many URLs use --output-dir DIR \
                    (each saved under its URL's last path segment, as curl -O does)"
                .into(),
        );
    }
    if opts.write_out.is_some() && opts.json_lines {
        return Err("-w replaces the JSON lines; give one or the other".into());
    }
    if many && opts.dump_header.as_deref() == Some("-") {
        return Err("-D - would mix headers into the JSON lines; give -D a file".into());
    }
    let stdin_urls = opts.urls.is_empty() && opts.input.as_deref().is_none_or(|i| i == "-");
    let stdin_data = opts.data.iter().any(|d| match d {
        Data::Ascii(v) | Data::Binary(v) | Data::Json(v) => v == "@-",
        Data::Raw(_) => false,
    });
    if stdin_urls && stdin_data {
        return Err("URLs and the body cannot both come from standard input".into());
    }
    Ok(())
}

fn method(v: &str) -> Result<String, String> {
    // RFC 9110 section 9.1: a method is a token.
    match !v.is_empty() && v.bytes().all(is_tchar) {
        true => Ok(v.to_owned()),
        false => Err(format!(
            "-X needs a method name (a token such as PUT), got {v:?}"
        )),
    }
}

/// `Name: value`, `Name:` (drop a header sentinel would add) or `Name;` (send it empty), as
/// curl's `-H`; a name that is not a token, or CR, LF or NUL anywhere, is refused here so
/// nothing malformed can reach the wire.
fn header(v: &str) -> Result<String, String> {
    let name_end = v.find([':', ';']).unwrap_or(v.len());
    let name = &v[..name_end];
    if name.is_empty() || !name.bytes().all(is_tchar) || name_end == v.len() {
        return Err(format!("-H needs \"Name: value\", got {v:?}"));
    }
    value_text("-H", v)
}

/// A value with no CR, LF or NUL (RFC 9110 section 5.5).
fn value_text(flag: &str, v: &str) -> Result<String, String> {
    match v.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        true => Err(format!("{flag} value contains CR, LF or NUL")),
        false => Ok(v.to_owned()),
    }
}

/// RFC 9110 section 5.6.2: the characters of a token.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn number(flag: &str, v: &str, min: u64, max: u64) -> Result<u64, String> {
    match v.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{flag} must be a whole number from {min} to {max}, got {v:?}"
        )),
    }
}

fn millis(flag: &str, v: &str) -> Result<Duration, String> {
    number(flag, v, 1, 24 * 3600 * 1000).map(Duration::from_millis)
}

/// Seconds as curl takes them, fractions allowed ("2.5"); at least a millisecond, at most a day.
fn seconds(flag: &str, v: &str) -> Result<Duration, String> {
    match v.trim().parse::<f64>() {
        Ok(s) if (0.001..=86_400.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "{flag} takes seconds from 0.001 to 86400 (fractions allowed), got {v:?}"
        )),
    }
}

/// Bytes with curl's suffixes: `k`, `M`, `G` (powers of 1024).
fn size(flag: &str, v: &str) -> Result<u64, String> {
    let t = v.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_lowercase()),
        _ => (t, 'b'),
    };
    let shift = match unit {
        'b' => 0,
        'k' => 10,
        'm' => 20,
        'g' => 30,
        _ => return Err(format!("{flag} takes bytes with k, M or G, got {v:?}")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{flag} takes bytes with k, M or G, got {v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Options {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&args) {
            Ok(Command::Run(o)) => *o,
            Ok(_) => panic!("not a run"),
            Err(e) => panic!("{e}"),
        }
    }

    fn refused(args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&args) {
            Err(e) => e,
            Ok(_) => panic!("{args:?} accepted"),
        }
    }

    #[test]
    fn short_flags_cluster_and_take_attached_values() {
        let o = opts(&["-sSfL", "-XPUT", "-HX-A: 1", "-o", "out", "http://h/"]);
        assert!(o.silent && o.show_error);
        assert_eq!(o.fail, Fail::Quiet);
        assert_eq!(o.method.as_deref(), Some("PUT"));
        assert_eq!(o.headers, ["X-A: 1"]);
        assert_eq!(o.output.as_deref(), Some("out"));
        assert_eq!(o.urls, ["http://h/"]);
    }

    #[test]
    fn w_with_a_number_is_workers_and_anything_else_write_out() {
        assert_eq!(opts(&["-w", "16"]).workers, 16);
        assert_eq!(opts(&["-w16"]).workers, 16);
        let o = opts(&["-w", "%{http_code}\\n", "http://h/"]);
        assert_eq!(o.write_out.as_deref(), Some("%{http_code}\\n"));
        assert_eq!(o.workers, 8);
    }

    #[test]
    fn sizes_and_seconds_read_as_curl_writes_them() {
        assert_eq!(size("f", "512").unwrap(), 512);
        assert_eq!(size("f", "2k").unwrap(), 2048);
        assert_eq!(size("f", "3M").unwrap(), 3 << 20);
        assert_eq!(size("f", "1G").unwrap(), 1 << 30);
        assert!(size("f", "1T").is_err() && size("f", "k").is_err());
        assert!(size("f", "99999999999999999999G").is_err());
        assert_eq!(seconds("m", "2.5").unwrap(), Duration::from_millis(2500));
        assert!(seconds("m", "0").is_err() && seconds("m", "NaN").is_err());
        assert_eq!(opts(&["--retry", "0"]).attempts, 1);
        assert_eq!(opts(&["--retry", "4"]).attempts, 5);
        assert_eq!(opts(&["--max-redirs", "-1"]).max_redirs, Some(u32::MAX));
    }

    #[test]
    fn malformed_or_impossible_input_is_refused() {
        assert!(refused(&["-k", "http://h/"]).contains("--cacert"));
        assert!(refused(&["-H", "NoColon", "http://h/"]).contains("Name: value"));
        assert!(refused(&["-H", "X: a\r\nY: b", "http://h/"]).contains("CR"));
        assert!(refused(&["-X", "GET /x", "http://h/"]).contains("method"));
        assert!(refused(&["-u", "alice", "http://h/"]).contains("user:password"));
        assert!(refused(&["-o", "f", "http://a/", "http://b/"]).contains("--output-dir"));
        assert!(refused(&["-d", "@-"]).contains("standard input"));
        assert!(refused(&["--stats=xml"]).contains("table, json or none"));
        assert!(refused(&["--no-breaker=yes"]).contains("takes no value"));
        assert!(refused(&["-j"]).contains("unknown option -j"));
    }
}
