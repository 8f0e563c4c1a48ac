//! A client's memory of the last few URLs it parsed. A worker that calls the same URLs again
//! and again checks and parses each once: each later request compares the string it is given with
//! the one remembered and, when they are equal, clones the parsed `Uri` and its host key
//! (reference counts, no allocation) instead of scanning, parsing and splitting it again.
//!
//! Only a URL that `url::parse` accepted without userinfo is remembered, so a hit carries
//! nothing a miss would have refused or turned into an `Authorization` header.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use ureq::http::Uri;

use crate::shared::HostKey;

/// A URL that passed `url::parse` (without userinfo), parsed, with its host key.
pub(crate) struct Parsed {
    url: String,
    uri: Uri,
    host: HostKey,
}

impl Parsed {
    pub(crate) fn uri(&self) -> &Uri {
        &self.uri
    }

    pub(crate) fn host(&self) -> &HostKey {
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

/// URLs a client remembers: a worker that calls a few endpoints in turn finds each of them.
const REMEMBERED: usize = 4;

/// One client's last parsed URLs. Not `Sync`: it belongs to one client (which may move to
/// another thread, hence `Arc`).
#[derive(Default)]
pub(crate) struct UrlCache {
    urls: RefCell<[Option<Arc<Parsed>>; REMEMBERED]>,
    /// The entry the next new URL replaces (the oldest).
    next: Cell<usize>,
}

impl UrlCache {
    /// `url` as a remembered parse when it is one, else as a copy to parse.
    pub(crate) fn target(&self, url: &str) -> Target {
        let urls = self.urls.borrow();
        match urls.iter().flatten().find(|p| p.url == url) {
            Some(p) => Target::Known(Arc::clone(p)),
            None => Target::Given(url.to_owned()),
        }
    }

    /// Remembers `url`, which `url::parse` turned into `uri` without userinfo, and its host
    /// key, in place of the oldest entry. That entry's allocations are reused when no request
    /// holds it any more.
    pub(crate) fn remember(&self, url: String, uri: &Uri, host: &HostKey) {
        let mut urls = self.urls.borrow_mut();
        let at = self.next.get();
        self.next.set((at + 1) % REMEMBERED);
        let slot = &mut urls[at];
        if let Some(p) = slot.as_mut().and_then(Arc::get_mut) {
            p.url = url;
            p.uri = uri.clone();
            p.host = Arc::clone(host);
            return;
        }
        *slot = Some(Arc::new(Parsed {
            url,
            uri: uri.clone(),
            host: Arc::clone(host),
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
        cache.remember("http://a.test/".into(), &uri, &"a.test:80".into());
        let Target::Known(p) = cache.target("http://a.test/") else {
            panic!("not remembered");
        };
        assert_eq!((p.uri(), &**p.host()), (&uri, "a.test:80"));
        for other in [
            "http://a.test",
            "http://A.test/",
            "http://a.test/ ",
            "https://a.test/",
        ] {
            assert!(matches!(cache.target(other), Target::Given(_)), "{other}");
        }
    }

    fn remember(cache: &UrlCache, url: &str) -> Uri {
        let uri: Uri = url.parse().unwrap();
        cache.remember(url.into(), &uri, &crate::url::host_key(&uri).into());
        uri
    }

    #[test]
    fn the_last_four_urls_are_known_and_a_fifth_replaces_the_oldest() {
        let cache = UrlCache::default();
        let urls = [
            "http://a.test/",
            "http://b.test/",
            "http://c.test/",
            "http://d.test/",
        ];
        for url in urls {
            remember(&cache, url);
        }
        for url in urls {
            assert!(matches!(cache.target(url), Target::Known(_)), "{url}");
        }
        remember(&cache, "http://e.test:8/");
        assert!(matches!(cache.target("http://a.test/"), Target::Given(_)));
        let Target::Known(p) = cache.target("http://e.test:8/") else {
            panic!("not remembered");
        };
        assert_eq!(&**p.host(), "e.test:8");
    }

    #[test]
    fn a_held_entry_is_not_overwritten() {
        let cache = UrlCache::default();
        remember(&cache, "http://a.test/");
        let held = cache.target("http://a.test/");
        for url in [
            "http://b.test/",
            "http://c.test/",
            "http://d.test/",
            "http://e.test/",
        ] {
            remember(&cache, url);
        }
        // `a`'s entry was replaced while a request held it: the request keeps its parse.
        assert!(matches!(cache.target("http://a.test/"), Target::Given(_)));
        assert_eq!(held.as_str(), "http://a.test/");
        let Target::Known(p) = held else { panic!() };
        assert_eq!((p.uri().host(), &**p.host()), (Some("a.test"), "a.test:80"));
    }
}
