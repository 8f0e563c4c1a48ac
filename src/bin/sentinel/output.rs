//! Where a body goes (nowhere, standard output, a file), curl's `-O` file naming, and the
//! response head as `-D` and `-i` write it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use http_sentinel::Response;

/// Where one URL's body is written.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Read and counted only (JSON lines without `--output-dir`).
    Discard,
    /// Standard output; `head` first when `-i`, `-I` or `-D -` asked for it.
    Stdout { head: bool },
    /// This file, created (or truncated) once the response has arrived.
    File(PathBuf),
}

impl Target {
    /// Opens the destination. The file is created only now, so a URL that fails before its
    /// response (or is refused by `--fail`) leaves no empty file behind, as with curl.
    pub(crate) fn open(&self) -> io::Result<Box<dyn Write>> {
        Ok(match self {
            Target::Discard => Box::new(io::sink()),
            Target::Stdout { .. } => Box::new(BufWriter::with_capacity(64 * 1024, io::stdout())),
            Target::File(path) => {
                Box::new(BufWriter::with_capacity(64 * 1024, File::create(path)?))
            }
        })
    }
}

/// Gives every URL of a run its own file under `--output-dir` (or the current directory):
/// the last segment of the URL's path, as curl's `-O`. A name already taken in this run gets
/// the input line appended (`index.html.7`): two workers must never write one file, which curl
/// (fetching one URL after another) does not have to guard against.
#[derive(Default)]
pub(crate) struct Names {
    dir: Option<PathBuf>,
    used: HashSet<String>,
}

impl Names {
    pub(crate) fn new(dir: Option<&str>) -> Names {
        Names {
            dir: dir.map(PathBuf::from),
            used: HashSet::new(),
        }
    }

    /// The file for `url` at input line `line`.
    ///
    /// # Errors
    ///
    /// The URL's path has no usable last segment (curl: "Remote file name has no length").
    pub(crate) fn assign(&mut self, url: &str, line: usize) -> Result<PathBuf, String> {
        let name = remote_name(url).ok_or_else(|| {
            "no file name in the URL's path (curl -O needs one; use -o FILE)".to_owned()
        })?;
        let name = match self.used.insert(name.clone()) {
            true => name,
            false => format!("{name}.{line}"),
        };
        self.used.insert(name.clone());
        Ok(self.join(&name))
    }

    /// `name` under the output directory (for `-o NAME --output-dir DIR`, as curl).
    pub(crate) fn join(&self, name: &str) -> PathBuf {
        match &self.dir {
            Some(dir) => dir.join(name),
            None => Path::new(name).to_path_buf(),
        }
    }
}

/// The last segment of the URL's path, without query or fragment; `None` when it is empty,
/// `.` or `..` (which would name a directory) or holds a NUL or backslash.
pub(crate) fn remote_name(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("", |at| &rest[at..]);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    let bad = last.is_empty() || last == "." || last == ".." || last.contains(['\0', '\\']);
    (!bad).then(|| last.to_owned())
}

/// The response head as curl's `-D` and `-i` write it: status line, headers, blank line. The
/// library speaks HTTP/1.1 only and does not keep the reason phrase, so both are the standard
/// ones.
pub(crate) fn head_text(response: &Response) -> String {
    let status = response.status();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in response.headers() {
        head.push_str(name.as_str());
        head.push_str(": ");
        head.push_str(&String::from_utf8_lossy(value.as_bytes()));
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_names_are_the_last_path_segment_and_never_a_directory() {
        assert_eq!(
            remote_name("http://h/a/b.txt?x=1#f").as_deref(),
            Some("b.txt")
        );
        assert_eq!(remote_name("http://h/a%2F..").as_deref(), Some("a%2F.."));
        for none in [
            "http://h/",
            "http://h",
            "http://h/a/..",
            "http://h/.",
            "http://h/a\\b",
        ] {
            assert_eq!(remote_name(none), None, "{none}");
        }
    }

    #[test]
    fn a_name_taken_twice_gets_its_line_number() {
        let mut names = Names::new(Some("out"));
        let a = names.assign("http://h/x/index.html", 1).unwrap();
        let b = names.assign("http://g/y/index.html", 7).unwrap();
        assert_eq!(a, Path::new("out/index.html"));
        assert_eq!(b, Path::new("out/index.html.7"));
        assert!(names.assign("http://h/", 8).is_err());
    }
}
