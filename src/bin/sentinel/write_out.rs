//! `-w/--write-out`: curl's format language for the variables that apply to sentinel.
//! `%{name}` is a variable, `%%` a percent sign, `\n`, `\r`, `\t` and `\\` the usual escapes,
//! and `@file` reads the format from a file (curl's man page, "-w, --write-out").

use serde_json::{json, Value};

use crate::record::Record;

/// The variables sentinel knows; a name outside the list is warned about and prints nothing,
/// as in curl.
const VARIABLES: &[&str] = &[
    "content_type",
    "errormsg",
    "exitcode",
    "http_code",
    "json",
    "method",
    "num_redirects",
    "num_retries",
    "remote_ip",
    "response_code",
    "size_download",
    "time_total",
    "url",
    "url_effective",
];

#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(&'static str),
}

/// A parsed format.
#[derive(Debug)]
pub(crate) struct Format(Vec<Piece>);

impl Format {
    /// Parses `spec`; returns the format and the unknown variable names met.
    pub(crate) fn parse(spec: &str) -> (Format, Vec<String>) {
        let (mut pieces, mut unknown, mut text) = (Vec::new(), Vec::new(), String::new());
        let mut rest = spec;
        while let Some(c) = rest.chars().next() {
            let two = rest.get(..2).unwrap_or(rest);
            let (taken, len) = match (c, two) {
                ('%', "%%") => (Some('%'), 2),
                ('%', "%{") => match rest[2..].find('}') {
                    Some(end) => {
                        let name = &rest[2..2 + end];
                        match VARIABLES.iter().find(|v| **v == name) {
                            Some(v) => {
                                if !text.is_empty() {
                                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                                }
                                pieces.push(Piece::Var(v));
                            }
                            None => unknown.push(name.to_owned()),
                        }
                        (None, 3 + end)
                    }
                    None => (Some('%'), 1),
                },
                ('\\', "\\n") => (Some('\n'), 2),
                ('\\', "\\r") => (Some('\r'), 2),
                ('\\', "\\t") => (Some('\t'), 2),
                ('\\', "\\\\") => (Some('\\'), 2),
                _ => (Some(c), c.len_utf8()),
            };
            text.extend(taken);
            rest = &rest[len..];
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        (Format(pieces), unknown)
    }

    /// Whether `%{remote_ip}` is wanted (it costs a lookup).
    pub(crate) fn wants_ip(&self) -> bool {
        self.0
            .iter()
            .any(|p| matches!(p, Piece::Var("remote_ip" | "json")))
    }

    /// The text for one URL.
    pub(crate) fn render(&self, rec: &Record) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var("json") => out.push_str(&json_of(rec).to_string()),
                Piece::Var(name) => out.push_str(&text_of(&value(rec, name))),
            }
        }
        out
    }
}

/// curl's rendering of a value: strings bare, no value as nothing, `http_code` as 3 digits.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn value(rec: &Record, name: &str) -> Value {
    let opt = |s: &Option<String>| s.clone().map_or(Value::Null, Value::String);
    match name {
        "content_type" => opt(&rec.content_type),
        "errormsg" => rec
            .error
            .as_ref()
            .map_or(Value::Null, |e| e.message.clone().into()),
        "exitcode" => rec.exit.into(),
        // curl prints 000 when there was no response.
        "http_code" | "response_code" => format!("{:03}", rec.status.unwrap_or(0)).into(),
        "method" => rec.method.clone().into(),
        "num_redirects" => rec.redirects.into(),
        "num_retries" => rec.retries().into(),
        "remote_ip" => opt(&rec.remote_ip).as_str().unwrap_or("").into(),
        "size_download" => rec.bytes.into(),
        "time_total" => format!("{:.6}", rec.elapsed.as_secs_f64()).into(),
        "url" => rec.url.clone().into(),
        "url_effective" => rec
            .effective
            .clone()
            .unwrap_or_else(|| rec.url.clone())
            .into(),
        _ => Value::Null,
    }
}

/// `%{json}`: every variable above in one object, numbers as numbers (curl's `%{json}`).
fn json_of(rec: &Record) -> Value {
    let mut obj = serde_json::Map::new();
    for name in VARIABLES.iter().filter(|n| **n != "json") {
        let v = match *name {
            "http_code" | "response_code" => rec.status.unwrap_or(0).into(),
            "time_total" => json!(rec.elapsed.as_secs_f64()),
            _ => value(rec, name),
        };
        obj.insert((*name).to_owned(), v);
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn variables_escapes_and_unknown_names_render_as_curl_does() {
        let rec = Record {
            status: Some(200),
            bytes: 5,
            elapsed: Duration::from_millis(1500),
            url: "http://h/".into(),
            ..Record::default()
        };
        let (f, unknown) =
            Format::parse("%{http_code} %{size_download}\\t%%%{nope}%{time_total}\\n");
        assert_eq!(unknown, ["nope"]);
        assert_eq!(f.render(&rec), "200 5\t%1.500000\n");
        let (f, _) = Format::parse("%{http_code}|%{url_effective}|%{remote_ip}|%{");
        assert_eq!(f.render(&Record::default()), "000|||%{");
        let (f, _) = Format::parse("%{json}");
        let v: Value = serde_json::from_str(&f.render(&rec)).unwrap();
        assert_eq!(
            (v["http_code"].clone(), v["errormsg"].clone()),
            (200.into(), Value::Null)
        );
        assert_eq!(v["url_effective"], "http://h/");
    }
}
