//! The cookie jar (feature `cookies`): RFC 6265 storage and matching by `cookie_store`, the
//! crate ureq's own `cookies` feature uses; this file only decides when the engine asks it.
//!
//! - Every response of a call (each redirect hop and each retried response included) hands
//!   its `Set-Cookie` values to the jar, for the URL that response came from.
//! - Every attempt asks the jar for the cookies of the URL it is sent to, so a cookie set by a
//!   redirect hop is sent on the next hop it matches, and a cookie is never sent where its
//!   domain, path and `Secure` rules say no, cross-origin hops included.
//! - A request's own `Cookie` header wins: the jar adds nothing to it (reqwest's rule). It is
//!   dropped on a redirect to another origin like any credential; from there the jar's
//!   cookies for the new origin are sent.
//!
//! Cookie values are credentials: the `Cookie` header built here is marked sensitive (so the
//! transport hides it from ureq and every log), `CookieJar`'s `Debug` shows only a count, and
//! cookies are inserted one by one rather than through `store_response_cookies`, which logs
//! each cookie, value included, at `debug`.

#[cfg(feature = "cookies")]
pub(crate) use jar::ClientJar;
#[cfg(feature = "cookies")]
pub use jar::CookieJar;

/// Without the feature: no jar, and the two hooks compile to nothing.
#[cfg(not(feature = "cookies"))]
mod off {
    use ureq::http::{HeaderMap, Uri};

    #[derive(Clone, Default)]
    pub(crate) struct ClientJar;

    impl ClientJar {
        pub(crate) fn request_headers(&self, _: &Uri, _: &HeaderMap) -> Option<HeaderMap> {
            None
        }

        pub(crate) fn store(&self, _: &Uri, _: &HeaderMap) {}
    }
}

#[cfg(not(feature = "cookies"))]
pub(crate) use off::ClientJar;

#[cfg(feature = "cookies")]
mod jar {
    use std::fmt;
    #[cfg(feature = "json")]
    use std::io::{self, BufRead, Write};
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

    use cookie_store::{CookieStore, RawCookie};
    use ureq::http::header::{COOKIE, SET_COOKIE};
    use ureq::http::{HeaderMap, HeaderValue, Uri};

    /// A cookie jar for a pool's clients, set with
    /// [`PoolConfigBuilder::cookie_store`](crate::PoolConfigBuilder::cookie_store) (feature
    /// `cookies`).
    ///
    /// Either one jar shared by every client of the pool ([`CookieJar::shared`]: a login on
    /// one worker is seen by all), or one jar per client ([`CookieJar::per_client`]: each
    /// client a separate session). Storage and matching follow RFC 6265 (`cookie_store`):
    /// host-only and `Domain` cookies, paths, `Secure` (sent over https only), `Max-Age` and
    /// `Expires`. As RFC 6265 says, cookies are not kept apart by port: a cookie of
    /// `127.0.0.1:8080` is sent to `127.0.0.1:9090` too. No public-suffix list is loaded
    /// (as in ureq): a server may set a cookie for its parent domain.
    ///
    /// A request's own `Cookie` header (or a default header `Cookie`) replaces the jar's
    /// cookies for that request; the jar still stores what the response sets. The jar is
    /// cheap to clone: clones are the same jar.
    ///
    /// `Debug` shows how many cookies the jar holds, never a name or a value.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, CookieJar, PoolConfig};
    ///
    /// let jar = CookieJar::shared();
    /// let pool = ClientPool::new(PoolConfig::builder().cookie_store(jar.clone()).build())?;
    /// let client = pool.checkout()?;
    /// // The 302 of the login sets the session cookie; the redirect target and every later
    /// // call to the host send it.
    /// client
    ///     .post("http://127.0.0.1:8080/login")
    ///     .form(&[("user", "alice"), ("password", "hunter2")])
    ///     .send()?;
    /// let me = client.get("http://127.0.0.1:8080/me").send()?.text()?;
    /// assert!(jar.lock().get("127.0.0.1", "/", "session").is_some());
    /// # let _ = me;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    #[derive(Clone)]
    pub struct CookieJar {
        store: Arc<Mutex<CookieStore>>,
        per_client: bool,
    }

    impl fmt::Debug for CookieJar {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("CookieJar")
                .field("per_client", &self.per_client)
                .field("cookies", &self.lock().iter_unexpired().count())
                .finish()
        }
    }

    impl Default for CookieJar {
        fn default() -> Self {
            CookieJar::shared()
        }
    }

    impl CookieJar {
        /// An empty jar that every client of the pool shares.
        ///
        /// # Examples
        ///
        /// ```
        /// use http_sentinel::{CookieJar, PoolConfig};
        ///
        /// let config = PoolConfig::builder().cookie_store(CookieJar::shared()).build();
        /// assert!(!config.cookie_store().unwrap().is_per_client());
        /// ```
        pub fn shared() -> CookieJar {
            CookieJar::from_store(CookieStore::default())
        }

        /// One empty jar per client: each client of the pool keeps its own cookies (see
        /// [`Client::cookie_jar`](crate::Client::cookie_jar)).
        ///
        /// # Examples
        ///
        /// ```
        /// use http_sentinel::{CookieJar, PoolConfig};
        ///
        /// let config = PoolConfig::builder().cookie_store(CookieJar::per_client()).build();
        /// assert!(config.cookie_store().unwrap().is_per_client());
        /// ```
        pub fn per_client() -> CookieJar {
            CookieJar {
                per_client: true,
                ..CookieJar::shared()
            }
        }

        /// A shared jar holding `store`'s cookies.
        pub fn from_store(store: CookieStore) -> CookieJar {
            CookieJar {
                store: Arc::new(Mutex::new(store)),
                per_client: false,
            }
        }

        /// A per-client jar: each client starts with a copy of this jar's cookies as they
        /// are when the client is created (a saved session every worker resumes separately).
        pub fn into_per_client(self) -> CookieJar {
            CookieJar {
                per_client: true,
                ..self
            }
        }

        /// Whether each client gets its own copy of the jar.
        pub fn is_per_client(&self) -> bool {
            self.per_client
        }

        /// The jar's store, locked: to look at, add or remove cookies
        /// (`cookie_store`'s [`CookieStore`] API). For a per-client jar, the cookies new
        /// clients start with.
        pub fn lock(&self) -> MutexGuard<'_, CookieStore> {
            // The store is a map updated one insert at a time: a panic elsewhere leaves
            // nothing half-done in it.
            crate::sync::lock(&self.store)
        }

        /// Reads a shared jar from JSON written by [`save_json`](Self::save_json)
        /// (`cookie_store::serde::json`'s format; expired cookies are skipped). Needs the
        /// `json` feature too.
        ///
        /// # Errors
        ///
        /// An [`io::ErrorKind::InvalidData`] error when the input is not such JSON or cannot
        /// be read (the message names no cookie).
        ///
        /// # Examples
        ///
        /// ```
        /// use http_sentinel::CookieJar;
        ///
        /// let jar = CookieJar::shared();
        /// let mut saved = Vec::new();
        /// jar.save_json(&mut saved)?;
        /// let again = CookieJar::load_json(&saved[..])?;
        /// assert_eq!(again.lock().iter_unexpired().count(), 0);
        /// # Ok::<(), std::io::Error>(())
        /// ```
        #[cfg(feature = "json")]
        pub fn load_json(reader: impl BufRead) -> io::Result<CookieJar> {
            cookie_store::serde::json::load(reader)
                .map(CookieJar::from_store)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not a saved cookie jar"))
        }

        /// Writes the jar's unexpired persistent cookies (those with `Max-Age` or `Expires`)
        /// as JSON; session cookies are not saved, as browsers do not keep them. Needs the
        /// `json` feature too.
        ///
        /// # Errors
        ///
        /// An I/O error when `writer` fails.
        #[cfg(feature = "json")]
        pub fn save_json(&self, writer: &mut impl Write) -> io::Result<()> {
            cookie_store::serde::json::save(&self.lock(), writer).map_err(|e| {
                match e.downcast::<io::Error>() {
                    Ok(io) => *io,
                    // Not an I/O error: a serialisation one, whose text could quote a cookie.
                    Err(_) => io::Error::other("cookie jar not saved"),
                }
            })
        }
    }

    /// One client's jar: the pool's shared one, or its own (a hedge borrows its caller's).
    #[derive(Clone, Default)]
    pub(crate) struct ClientJar(Option<Arc<Mutex<CookieStore>>>);

    impl ClientJar {
        /// The jar a new client uses: none, the pool's shared one, or a copy of its own.
        pub(crate) fn for_client(jar: Option<&CookieJar>) -> ClientJar {
            ClientJar(jar.map(|jar| match jar.per_client {
                true => Arc::new(Mutex::new(jar.lock().clone())),
                false => jar.store.clone(),
            }))
        }

        /// This client's jar, as a handle users can look into.
        pub(crate) fn handle(&self) -> Option<CookieJar> {
            self.0.as_ref().map(|store| CookieJar {
                store: store.clone(),
                per_client: false,
            })
        }

        fn lock(store: &Mutex<CookieStore>) -> MutexGuard<'_, CookieStore> {
            store.lock().unwrap_or_else(PoisonError::into_inner)
        }

        /// The headers to send to `uri`: `headers` with the jar's `Cookie` header added, or
        /// `None` when nothing is to be added (no jar, no matching cookie, or the request
        /// sets its own `Cookie`).
        pub(crate) fn request_headers(&self, uri: &Uri, headers: &HeaderMap) -> Option<HeaderMap> {
            let store = self.0.as_ref()?;
            if headers.contains_key(COOKIE) {
                return None;
            }
            let url = web_url(uri)?;
            let value = {
                let store = Self::lock(store);
                // RFC 6265 §5.4: longer paths first, then the order they were stored in
                // (the store keeps insertion order; the sort is stable).
                let mut cookies = store.matches(&url);
                cookies.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
                let pairs: Vec<String> = cookies
                    .iter()
                    .map(|c| format!("{}={}", c.name(), c.value()))
                    .collect();
                pairs.join("; ")
            };
            if value.is_empty() {
                return None;
            }
            let mut value = HeaderValue::from_str(&value).ok()?;
            value.set_sensitive(true);
            let mut with_cookie = headers.clone();
            with_cookie.insert(COOKIE, value);
            Some(with_cookie)
        }

        /// Stores the `Set-Cookie` values of a response from `uri`. A value the jar refuses
        /// (another domain, unparsable) is dropped without a word: its text may be a secret.
        pub(crate) fn store(&self, uri: &Uri, headers: &HeaderMap) {
            let Some(store) = &self.0 else {
                return;
            };
            let mut set = headers.get_all(SET_COOKIE).iter().peekable();
            if set.peek().is_none() {
                return;
            }
            let Some(url) = web_url(uri) else {
                return;
            };
            let mut store = Self::lock(store);
            for value in set {
                let Ok(text) = value.to_str() else {
                    continue;
                };
                if let Ok(cookie) = RawCookie::parse(text) {
                    let _ = store.insert_raw(&cookie, &url);
                }
            }
        }
    }

    /// `uri` as the `url` crate's type, which `cookie_store` matches against.
    fn web_url(uri: &Uri) -> Option<::url::Url> {
        ::url::Url::parse(&uri.to_string()).ok()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn headers(set_cookie: &[&str]) -> HeaderMap {
            let mut h = HeaderMap::new();
            for v in set_cookie {
                h.append(SET_COOKIE, HeaderValue::from_str(v).unwrap());
            }
            h
        }

        fn jar(config_jar: CookieJar) -> ClientJar {
            ClientJar::for_client(Some(&config_jar))
        }

        fn cookie_for(jar: &ClientJar, uri: &str) -> Option<String> {
            let h = jar.request_headers(&uri.parse().unwrap(), &HeaderMap::new())?;
            assert!(h[COOKIE].is_sensitive());
            Some(h[COOKIE].to_str().unwrap().to_owned())
        }

        #[test]
        fn cookies_follow_domain_path_and_secure_rules() {
            let jar = jar(CookieJar::shared());
            let from: Uri = "http://app.example.test/login".parse().unwrap();
            jar.store(
                &from,
                &headers(&[
                    "a=1; Path=/",
                    "b=2; Path=/admin",
                    "c=3; Secure; Path=/",
                    "d=4; Domain=other.test; Path=/",
                    "e=5; Domain=example.test; Path=/",
                ]),
            );
            assert_eq!(
                cookie_for(&jar, "http://app.example.test/").as_deref(),
                Some("a=1; e=5")
            );
            assert_eq!(
                cookie_for(&jar, "http://app.example.test/admin/x").as_deref(),
                Some("b=2; a=1; e=5")
            );
            assert_eq!(
                cookie_for(&jar, "https://app.example.test/").as_deref(),
                Some("a=1; c=3; e=5")
            );
            assert_eq!(
                cookie_for(&jar, "http://www.example.test/").as_deref(),
                Some("e=5")
            );
            assert_eq!(cookie_for(&jar, "http://other.test/"), None);
        }

        #[test]
        fn a_request_cookie_header_wins_and_no_jar_adds_nothing() {
            let jar = jar(CookieJar::shared());
            let uri: Uri = "http://h.test/".parse().unwrap();
            jar.store(&uri, &headers(&["s=1"]));
            let mut own = HeaderMap::new();
            own.insert(COOKIE, HeaderValue::from_static("mine=1"));
            assert!(jar.request_headers(&uri, &own).is_none());
            let none = ClientJar::for_client(None);
            none.store(&uri, &headers(&["s=1"]));
            assert!(none.request_headers(&uri, &HeaderMap::new()).is_none());
        }

        #[test]
        fn per_client_jars_start_from_a_copy() {
            let template = CookieJar::shared();
            let uri: Uri = "http://h.test/".parse().unwrap();
            let url = web_url(&uri).unwrap();
            template.lock().parse("start=1", &url).unwrap();
            let per_client = template.clone().into_per_client();
            let (a, b) = (
                ClientJar::for_client(Some(&per_client)),
                ClientJar::for_client(Some(&per_client)),
            );
            a.store(&uri, &headers(&["only_a=1"]));
            assert_eq!(
                cookie_for(&a, "http://h.test/").as_deref(),
                Some("start=1; only_a=1")
            );
            assert_eq!(cookie_for(&b, "http://h.test/").as_deref(), Some("start=1"));
            assert_eq!(template.lock().iter_unexpired().count(), 1);
        }

        #[test]
        fn debug_shows_a_count_only() {
            let jar = CookieJar::shared();
            let url = web_url(&"http://h.test/".parse().unwrap()).unwrap();
            jar.lock().parse("session=s3cret-value", &url).unwrap();
            let shown = format!("{jar:?}");
            assert_eq!(shown, "CookieJar { per_client: false, cookies: 1 }");
        }
    }
}
