//! A client's memory of the last URL it parsed. A worker that calls the same URL again and
//! again checks and parses it once: each later request compares the string it is given with
//! the one remembered and, when they are equal, clones the parsed `Uri` (reference counts, no
//! allocation) and its host key instead of scanning, parsing and splitting it again.
//!
//! Only a URL that `url::parse` accepted without userinfo is remembered, so a hit carries
//! nothing a miss would have refused or turned into an `Authorization` header.

use std::cell::RefCell;
use std::sync::Arc;

use ureq::http::Uri;

/// A URL that passed `url::parse` (without userinfo), parsed, with its host key.
pub(crate) struct Parsed {
    url: String,
    uri: Uri,
    host: String,
}

impl Parsed {
    pub(crate) fn uri(&self) -> &Uri {
        &self.uri
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }
}

/// The URL a request was given: the client's last parsed one, or a new string.
pub(crate) enum Target {
    Known(Arc<Parsed>),
    Given(String),
}

impl Target {
    /// The URL as the caller gave it.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Target::Known(p) => &p.url,
            Target::Given(s) => s,
        }
    }

    /// The URL as an owned string, to be parsed or extended.
    pub(crate) fn into_string(self) -> String {
        match self {
            Target::Known(p) => p.url.clone(),
            Target::Given(s) => s,
        }
    }
}

/// One client's last parsed URL. Not `Sync`: it belongs to one client (which may move to
/// another thread, hence `Arc`).
#[derive(Default)]
pub(crate) struct UrlCache {
    last: RefCell<Option<Arc<Parsed>>>,
}

impl UrlCache {
    /// `url` as the last parsed URL when it is that one, else as a copy to parse.
    pub(crate) fn target(&self, url: &str) -> Target {
        match &*self.last.borrow() {
            Some(p) if p.url == url => Target::Known(Arc::clone(p)),
            _ => Target::Given(url.to_owned()),
        }
    }

    /// Remembers `url`, which `url::parse` turned into `uri` without userinfo, and its host
    /// key. The last entry's allocations are reused when no request holds it any more.
    pub(crate) fn remember(&self, url: String, uri: &Uri, host: &str) {
        let mut last = self.last.borrow_mut();
        if let Some(p) = last.as_mut().and_then(Arc::get_mut) {
            p.url = url;
            p.uri = uri.clone();
            p.host.clear();
            p.host.push_str(host);
            return;
        }
        *last = Some(Arc::new(Parsed {
            url,
            uri: uri.clone(),
            host: host.to_owned(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_string_is_known() {
        let cache = UrlCache::default();
        assert!(matches!(cache.target("http://a.test/"), Target::Given(_)));
        let uri: Uri = "http://a.test/".parse().unwrap();
        cache.remember("http://a.test/".into(), &uri, "a.test:80");
        let Target::Known(p) = cache.target("http://a.test/") else {
            panic!("not remembered");
        };
        assert_eq!((p.uri(), p.host()), (&uri, "a.test:80"));
        for other in [
            "http://a.test",
            "http://A.test/",
            "http://a.test/ ",
            "https://a.test/",
        ] {
            assert!(matches!(cache.target(other), Target::Given(_)), "{other}");
        }
    }

    #[test]
    fn a_held_entry_is_not_overwritten() {
        let cache = UrlCache::default();
        let a: Uri = "http://a.test/".parse().unwrap();
        cache.remember("http://a.test/".into(), &a, "a.test:80");
        let held = cache.target("http://a.test/");
        let b: Uri = "http://b.test:8/".parse().unwrap();
        cache.remember("http://b.test:8/".into(), &b, "b.test:8");
        assert_eq!(held.as_str(), "http://a.test/");
        let Target::Known(p) = held else { panic!() };
        assert_eq!(p.host(), "a.test:80");
        assert!(matches!(cache.target("http://b.test:8/"), Target::Known(_)));
        drop(p);
        // Reused in place once no request holds it.
        let c: Uri = "http://c.test/".parse().unwrap();
        cache.remember("http://c.test/".into(), &c, "c.test:80");
        let Target::Known(p) = cache.target("http://c.test/") else {
            panic!()
        };
        assert_eq!((p.uri(), p.host()), (&c, "c.test:80"));
    }
}
