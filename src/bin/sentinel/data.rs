//! The request body from `-d`, `--data-raw`, `--data-binary` and `--json`, read once before any
//! request is sent, as curl does.

use std::fs;
use std::io::{self, Read};

use crate::args::Data;

/// The assembled body and what it says about itself.
pub(crate) struct Body {
    pub(crate) bytes: Vec<u8>,
    /// `--json` was given: the request says it carries JSON and accepts JSON.
    pub(crate) json: bool,
}

/// Joins the data arguments as curl does: `-d` pieces with `&`, `--json` pieces with nothing.
/// `None` when no data argument was given.
///
/// # Errors
///
/// The file (or standard input) of an `@name` argument could not be read; the message names it.
/// curl 7.88 warns and sends an empty body; a script is better served by a failure (exit 26)
/// than by a silently empty POST.
pub(crate) fn assemble(data: &[Data]) -> Result<Option<Body>, String> {
    if data.is_empty() {
        return Ok(None);
    }
    let json = data.iter().any(|d| matches!(d, Data::Json(_)));
    let mut bytes = Vec::new();
    for (i, piece) in data.iter().enumerate() {
        let chunk = match piece {
            Data::Ascii(v) => match v.strip_prefix('@') {
                // curl: "-d @file" drops carriage returns and newlines from the file.
                Some(name) => read(name)?
                    .into_iter()
                    .filter(|b| *b != b'\r' && *b != b'\n')
                    .collect(),
                None => v.as_bytes().to_vec(),
            },
            Data::Raw(v) => v.as_bytes().to_vec(),
            Data::Binary(v) | Data::Json(v) => match v.strip_prefix('@') {
                Some(name) => read(name)?,
                None => v.as_bytes().to_vec(),
            },
        };
        if i > 0 && !json {
            bytes.push(b'&');
        }
        bytes.extend(chunk);
    }
    Ok(Some(Body { bytes, json }))
}

fn read(name: &str) -> Result<Vec<u8>, String> {
    let got = match name {
        "-" => {
            let mut buf = Vec::new();
            io::stdin().lock().read_to_end(&mut buf).map(|_| buf)
        }
        path => fs::read(path),
    };
    got.map_err(|e| format!("cannot read data from {name:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_pieces_join_with_ampersands_and_json_pieces_without() {
        let form = assemble(&[Data::Ascii("a=1".into()), Data::Raw("@b=2".into())]).unwrap();
        assert_eq!(form.unwrap().bytes, b"a=1&@b=2");
        let json = assemble(&[Data::Json("{\"a\":".into()), Data::Json("1}".into())]).unwrap();
        let json = json.unwrap();
        assert_eq!((json.bytes, json.json), (b"{\"a\":1}".to_vec(), true));
        assert!(assemble(&[]).unwrap().is_none());
    }

    #[test]
    fn at_file_is_read_stripped_for_data_and_exact_for_data_binary() {
        let path = std::env::temp_dir().join(format!("sentinel-data-{}", std::process::id()));
        fs::write(&path, b"a=1\r\nb=2\n").unwrap();
        let at = format!("@{}", path.display());
        let ascii = assemble(&[Data::Ascii(at.clone())]).unwrap().unwrap();
        let binary = assemble(&[Data::Binary(at)]).unwrap().unwrap();
        fs::remove_file(&path).unwrap();
        assert_eq!(ascii.bytes, b"a=1b=2");
        assert_eq!(binary.bytes, b"a=1\r\nb=2\n");
        let missing = assemble(&[Data::Binary("@/nonexistent/body".into())]);
        assert!(missing.err().unwrap().contains("/nonexistent/body"));
    }
}
