//! The request every URL gets: method, headers, body and credentials, worked out once from the
//! command line and applied to each URL.

use base64::Engine as _;
use http_sentinel::{Client, RequestBuilder};

use crate::args::Options;
use crate::data::Body;

/// What is sent for each URL.
pub(crate) struct Spec {
    pub(crate) method: String,
    /// Final headers, in order; curl's rule applies: a `-H` replaces a header sentinel would
    /// add itself (`Content-Type`, `Authorization`, ...), `Name:` removes it.
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl Spec {
    pub(crate) fn new(opts: &Options, body: Option<Body>) -> Result<Spec, String> {
        let mut ours: Vec<(String, String)> = Vec::new();
        if let Some(user) = &opts.user {
            let creds = base64::engine::general_purpose::STANDARD.encode(user);
            ours.push(("Authorization".into(), format!("Basic {creds}")));
        }
        if let Some(token) = &opts.bearer {
            ours.push(("Authorization".into(), format!("Bearer {token}")));
        }
        if let Some(ua) = &opts.user_agent {
            ours.push(("User-Agent".into(), ua.clone()));
        }
        if let Some(b) = &body {
            let ct = match b.json {
                true => "application/json",
                false => "application/x-www-form-urlencoded",
            };
            ours.push(("Content-Type".into(), ct.into()));
            if b.json {
                ours.push(("Accept".into(), "application/json".into()));
            }
        }
        let headers = merge(ours, &opts.headers);
        let method = match (&opts.method, opts.head, &body) {
            (Some(m), _, _) => m.clone(),
            (None, true, _) => "HEAD".into(),
            (None, false, Some(_)) => "POST".into(),
            (None, false, None) => "GET".into(),
        };
        Ok(Spec {
            method,
            headers,
            body: body.map(|b| b.bytes),
        })
    }

    /// The request for `url`.
    pub(crate) fn prepare<'c>(&self, client: &'c Client, url: &str) -> RequestBuilder<'c> {
        let mut request = client.request(&self.method, url);
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &self.body {
            request = request.body(body.clone());
        }
        request
    }
}

/// Our headers, then the user's `-H` ones; a `-H` name replaces ours, `Name:` deletes it and
/// `Name;` sends it with an empty value (curl's `-H` rules).
fn merge(mut ours: Vec<(String, String)>, given: &[String]) -> Vec<(String, String)> {
    let mut theirs: Vec<(String, String)> = Vec::new();
    for h in given {
        let at = h.find([':', ';']).unwrap_or(h.len());
        let (name, rest) = h.split_at(at);
        ours.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        match (rest.strip_prefix(':'), rest.strip_prefix(';')) {
            (Some(v), _) if v.trim().is_empty() => {}
            (Some(v), _) => theirs.push((name.to_owned(), v.trim().to_owned())),
            (None, _) => theirs.push((name.to_owned(), String::new())),
        }
    }
    ours.extend(theirs);
    ours
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_headers_replace_ours_and_an_empty_one_removes_it() {
        let ours = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("Accept".to_owned(), "application/json".to_owned()),
        ];
        let given = [
            "content-type: text/plain".to_owned(),
            "Accept:".to_owned(),
            "X-Empty;".to_owned(),
            "X-A: 1".to_owned(),
            "X-A: 2".to_owned(),
        ];
        let got = merge(ours, &given);
        let got: Vec<(&str, &str)> = got.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        assert_eq!(
            got,
            [
                ("content-type", "text/plain"),
                ("X-Empty", ""),
                ("X-A", "1"),
                ("X-A", "2")
            ]
        );
    }
}
