//! `RequestBuilder`: builds one request; invalid input is remembered and reported by `send`
//! before anything is sent.

use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use ureq::http::header::{Entry, AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
use ureq::http::{self, HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::call::{Body, Call};
use crate::download::BodySettings;
use crate::engine::Engine;
use crate::error::Error;
use crate::multipart::{Encoded, Form};
use crate::response::Response;
use crate::retry::RetryPolicy;
use crate::shared::HostKey;
use crate::target::Target;
use crate::url;

/// Builds one request; [`send`](RequestBuilder::send) runs it.
///
/// Invalid input (a malformed URL, a header with CR/LF/NUL) is remembered and reported by
/// `send` as [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest) before anything
/// is sent.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use http_sentinel::{ClientPool, PoolConfig};
///
/// let pool = ClientPool::new(PoolConfig::default())?;
/// let client = pool.checkout()?;
/// let response = client
///     .post("http://127.0.0.1:8080/orders")
///     .header("Idempotency-Key", "order-42")
///     .query("dry_run", "true")
///     .body("{\"qty\":1}")
///     .timeout(Duration::from_secs(2))
///     .send()?
///     .error_for_status()?;
/// println!("{}", response.text()?);
/// # Ok::<(), http_sentinel::Error>(())
/// ```
pub struct RequestBuilder<'c> {
    engine: &'c Engine,
    method: Method,
    url: Target,
    query: String,
    headers: HeaderMap,
    sensitive: Vec<HeaderName>,
    sensitive_query: Vec<String>,
    body: Body,
    timeout: Option<Duration>,
    policy: Option<RetryPolicy>,
    download: BodySettings,
    max_redirects: Option<u32>,
    error: Option<Error>,
}

impl fmt::Debug for RequestBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let secret = is_credential(k) || self.sensitive.contains(k);
                let shown = match secret {
                    true => "[redacted]",
                    false => v.to_str().unwrap_or("[binary]"),
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field(
                "url",
                &url::redact_query(self.url.as_str(), &self.sensitive_query),
            )
            .field("headers", &headers)
            .finish_non_exhaustive()
    }
}

fn is_credential(name: &HeaderName) -> bool {
    name == AUTHORIZATION || name == COOKIE || name == PROXY_AUTHORIZATION
}

impl<'c> RequestBuilder<'c> {
    pub(crate) fn new(engine: &'c Engine, method: Result<Method, Error>, url: &str) -> Self {
        let (method, error) = match method {
            Ok(m) => (m, None),
            Err(e) => (Method::GET, Some(e)),
        };
        RequestBuilder {
            engine,
            method,
            url: engine.urls().target(url),
            query: String::new(),
            headers: HeaderMap::new(),
            sensitive: Vec::new(),
            sensitive_query: Vec::new(),
            body: Body::None,
            timeout: None,
            policy: None,
            download: BodySettings::default(),
            max_redirects: None,
            error,
        }
    }

    fn set_error(&mut self, e: Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Adds a header; a name may be given more than once. Takes names and values as `&str`,
    /// `String`, or the [`http`] types ([`HeaderName`], [`HeaderValue`]), as reqwest does.
    /// A name or value with CR, LF, NUL or other forbidden bytes makes `send` fail with
    /// [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest) without sending
    /// anything. `Authorization`, `Cookie`, `Proxy-Authorization` and headers named in
    /// [`sensitive_header`](Self::sensitive_header) are redacted from `Debug` output.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{http::header::ACCEPT, ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// let response = client
    ///     .get("http://127.0.0.1:8080/")
    ///     .header(ACCEPT, "application/json")
    ///     .header("X-Trace", "on")
    ///     .send()?;
    /// # let _ = response;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        let Ok(name) = HeaderName::try_from(name) else {
            self.set_error(Error::invalid("invalid header name"));
            return self;
        };
        match HeaderValue::try_from(value) {
            Ok(mut value) => {
                if is_credential(&name) || self.sensitive.contains(&name) {
                    value.set_sensitive(true);
                }
                self.headers.append(name, value);
            }
            // The value is not echoed: it may be a credential.
            Err(_) => self.set_error(Error::invalid(format!(
                "invalid value for header {name:?} (control character)"
            ))),
        }
        self
    }

    /// Marks a header (for example `X-Api-Key`) as a credential: it is redacted from `Debug`
    /// output and dropped on a cross-origin redirect, like `Authorization` and `Cookie`.
    /// Applies to values added before and after this call.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// let request = client
    ///     .get("http://127.0.0.1:8080/")
    ///     .sensitive_header("x-api-key")
    ///     .header("x-api-key", "s3cret");
    /// assert!(!format!("{request:?}").contains("s3cret"));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn sensitive_header<K>(mut self, name: K) -> Self
    where
        HeaderName: TryFrom<K>,
    {
        let Ok(name) = HeaderName::try_from(name) else {
            self.set_error(Error::invalid("invalid header name"));
            return self;
        };
        if let Entry::Occupied(mut e) = self.headers.entry(&name) {
            for v in e.iter_mut() {
                v.set_sensitive(true);
            }
        }
        self.sensitive.push(name);
        self
    }

    /// Appends `key=value` to the query string, both percent-encoded (everything outside
    /// RFC 3986's unreserved characters). Adds to a query already in the URL.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// // Sends GET /search?q=a%20b&page=2
    /// let response = client
    ///     .get("http://127.0.0.1:8080/search")
    ///     .query("q", "a b")
    ///     .query("page", "2")
    ///     .send()?;
    /// # let _ = response;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn query(mut self, key: &str, value: &str) -> Self {
        url::push_query_pair(&mut self.query, key, value);
        self
    }

    /// Appends every `(key, value)` pair to the query string, in order, each percent-encoded
    /// as [`query`](Self::query) does. Takes any iterator of string pairs: a slice of tuples,
    /// a `Vec`, a `HashMap` or a `BTreeMap`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// // Sends GET /search?q=a%20b&lang=en
    /// let response = client
    ///     .get("http://127.0.0.1:8080/search")
    ///     .query_pairs([("q", "a b"), ("lang", "en")])
    ///     .send()?;
    /// # let _ = response;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn query_pairs<I, K, V>(mut self, pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (key, value) in pairs {
            url::push_query_pair(&mut self.query, key.as_ref(), value.as_ref());
        }
        self
    }

    /// Marks a query parameter (for example `api_key`) as a secret: its value is sent for real
    /// on the wire, but shows as `***` in this builder's `Debug` output, in errors, in
    /// [`Response::url`] and in every log record (ureq underneath included: it is handed a
    /// placeholder instead, which the transport swaps for the real value as the request head
    /// goes out). Names are compared with the percent-decoded parameter names, case-sensitively;
    /// this applies to parameters in the URL and to those added with
    /// [`query`](Self::query), before or after this call, and to a redirect target's query.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// let request = client
    ///     .get("http://127.0.0.1:8080/v1/quotes?api_key=s3cret")
    ///     .sensitive_query("api_key");
    /// assert!(!format!("{request:?}").contains("s3cret"));
    /// let response = request.send()?;
    /// assert_eq!(response.url().query(), Some("api_key=***"));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn sensitive_query(mut self, name: &str) -> Self {
        self.sensitive_query.push(name.to_owned());
        self
    }

    /// Sets the body from bytes or a string. The body is kept, so the request can be retried
    /// and re-sent on a 307/308 redirect.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// let response = client
    ///     .put("http://127.0.0.1:8080/notes/1")
    ///     .header("content-type", "text/plain")
    ///     .body("remember the milk")
    ///     .send()?;
    /// # let _ = response;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Body::Bytes(Arc::from(body.into()));
        self
    }

    /// Streams the body from a reader (sent chunked). A streamed request is sent once: it is
    /// never retried, replayed or re-sent on a 307/308 redirect.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// let file = std::fs::File::open("upload.bin")?;
    /// let response = client.post("http://127.0.0.1:8080/upload").body_reader(file).send()?;
    /// # let _ = response;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn body_reader(mut self, reader: impl Read + Send + 'static) -> Self {
        self.body = Body::Stream(Some(Box::new(reader)));
        self
    }

    /// Serialises `value` as the JSON body and sets `Content-Type: application/json`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// let order = serde_json::json!({ "sku": "A-1", "qty": 2 });
    /// let response = client
    ///     .post("http://127.0.0.1:8080/orders")
    ///     .header("idempotency-key", "order-7")
    ///     .json(&order)
    ///     .send()?;
    /// # let _ = response;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(v) => {
                self.body = Body::Bytes(Arc::from(v));
                self.header(http::header::CONTENT_TYPE, "application/json")
            }
            Err(e) => {
                self.set_error(Error::invalid(format!("json body: {e}")));
                self
            }
        }
    }

    /// Sets the body to `pairs` encoded as `application/x-www-form-urlencoded` (`k=v&k2=v2`,
    /// a space as `+`, everything but letters, digits and `*-._` percent-encoded), and
    /// `Content-Type: application/x-www-form-urlencoded`. The body is kept, so the request
    /// can be retried and re-sent on a 307/308 redirect.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// // Sends the body `grant_type=client_credentials&scope=read+write`
    /// let response = client
    ///     .post("http://127.0.0.1:8080/oauth/token")
    ///     .form(&[("grant_type", "client_credentials"), ("scope", "read write")])
    ///     .send()?;
    /// # let _ = response;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn form<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Self {
        self.body = Body::Bytes(Arc::from(url::encode_form(pairs).into_bytes()));
        self.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        self
    }

    /// Sets the body to `form`, encoded as `multipart/form-data` with its random boundary,
    /// and the matching `Content-Type`. A form of text and bytes parts is kept, so the
    /// request can be retried and re-sent on a 307/308 redirect; a form with a file or reader
    /// part is streamed, sent once and never retried (as [`body_reader`](Self::body_reader)),
    /// with a `Content-Length` when every part's length is known.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::multipart::{Form, Part};
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// let form = Form::new()
    ///     .text("purpose", "fine-tune")
    ///     .part("file", Part::file("train.jsonl")?.mime_str("application/jsonl")?);
    /// let response = client.post("http://127.0.0.1:8080/v1/files").multipart(form).send()?;
    /// # let _ = response;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn multipart(mut self, form: Form) -> Self {
        let content_type = form.content_type();
        match form.encode() {
            Encoded::Bytes(b) => self.body = Body::Bytes(Arc::from(b)),
            Encoded::Stream(reader, len) => {
                self.body = Body::Stream(Some(reader));
                if let Some(len) = len {
                    self.headers
                        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
                }
            }
        }
        match HeaderValue::try_from(content_type) {
            Ok(v) => {
                self.headers.insert(http::header::CONTENT_TYPE, v);
            }
            Err(_) => self.set_error(Error::invalid("multipart: invalid boundary")),
        }
        self
    }

    /// Sets `Authorization: Bearer <token>`, replacing any `Authorization` set before. The
    /// value is a credential: redacted from `Debug`, errors and logs, and dropped on a
    /// redirect to another origin. A token with CR, LF or NUL makes `send` fail with
    /// [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest) (the token is not
    /// echoed).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// let request = client.get("http://127.0.0.1:8080/v1/models").bearer_auth("sk-s3cret");
    /// assert!(!format!("{request:?}").contains("s3cret"));
    /// let response = request.send()?;
    /// # let _ = response;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn bearer_auth<T: fmt::Display>(mut self, token: T) -> Self {
        self.set_authorization(format!("Bearer {token}"));
        self
    }

    /// Sets `Authorization: Basic` (RFC 7617) for `username` and, when given, `password`,
    /// replacing any `Authorization` set before (credentials in the URL included). The value
    /// is a credential: redacted from `Debug`, errors and logs, and dropped on a redirect to
    /// another origin.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// // Sends `Authorization: Basic YWxpY2U6aHVudGVyMg==`
    /// let request = client
    ///     .get("http://127.0.0.1:8080/private")
    ///     .basic_auth("alice", Some("hunter2"));
    /// assert!(!format!("{request:?}").contains("YWxpY2U6aHVudGVyMg"));
    /// let response = request.send()?;
    /// # let _ = response;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn basic_auth<U: fmt::Display, P: fmt::Display>(
        mut self,
        username: U,
        password: Option<P>,
    ) -> Self {
        let userinfo = match password {
            Some(password) => format!("{username}:{password}"),
            None => format!("{username}:"),
        };
        match url::basic_auth(userinfo.as_bytes()) {
            Ok(value) => {
                self.headers.insert(AUTHORIZATION, value);
            }
            Err(_) => self.set_error(Error::invalid("invalid basic_auth credentials")),
        }
        self
    }

    fn set_authorization(&mut self, value: String) {
        match HeaderValue::try_from(value) {
            Ok(mut value) => {
                value.set_sensitive(true);
                self.headers.insert(AUTHORIZATION, value);
            }
            // The value is not echoed: it is a credential.
            Err(_) => self.set_error(Error::invalid(
                "invalid value for header \"authorization\" (control character)",
            )),
        }
    }

    /// Overrides the pool's retry policy for this call, e.g. [`RetryPolicy::none`] for a
    /// request that must be sent at most once.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig, RetryPolicy};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// let response = client
    ///     .post("http://127.0.0.1:8080/charge")
    ///     .retry(RetryPolicy::none())
    ///     .send()?;
    /// # let _ = response;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Overrides the pool's overall deadline for this call: attempts, retries and their waits
    /// all end within it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// let response = client
    ///     .get("http://127.0.0.1:8080/slow")
    ///     .timeout(Duration::from_millis(250))
    ///     .send();
    /// if let Err(e) = &response {
    ///     assert!(e.is_timeout());
    /// }
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Sets this response's body limit, in place of the pool's
    /// ([`PoolConfigBuilder::body_limit`](crate::PoolConfigBuilder::body_limit)), tighter or
    /// looser: [`bytes`](Response::bytes), [`text`](Response::text), `json`,
    /// [`into_reader`](Response::into_reader) and each line of [`events`](Response::events)
    /// fail with [`ErrorKind::BodyTooLarge`](crate::ErrorKind::BodyTooLarge) past it (at
    /// once when the `Content-Length` declares more). Replaces a
    /// [`no_body_limit`](Self::no_body_limit) set before. Defaults to the pool's limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// // A 64 MiB model card, on a pool that keeps 10 MiB for everything else.
    /// let card = client
    ///     .get("http://127.0.0.1:8080/models/7/card")
    ///     .body_limit(64 * 1024 * 1024)
    ///     .send()?
    ///     .bytes()?;
    /// # let _ = card;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn body_limit(mut self, bytes: u64) -> Self {
        self.download.limit = Some(bytes);
        self.download.unlimited_reader = false;
        self
    }

    /// Lifts the body limit for [`Response::into_reader`] only, for a download of any size
    /// streamed to a file. Everything that holds the body in memory keeps a limit:
    /// [`bytes`](Response::bytes), [`text`](Response::text), `json` and the lines of
    /// [`events`](Response::events) still stop at the pool's limit (or the one given to
    /// [`body_limit`](Self::body_limit) before). The call's deadline still bounds the body
    /// unless [`body_idle_timeout`](Self::body_idle_timeout) replaces it. Defaults to off:
    /// every body has a limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// let response = client
    ///     .get("http://127.0.0.1:8080/images/disk.img")
    ///     .no_body_limit()
    ///     .body_idle_timeout(Duration::from_secs(30))
    ///     .send()?
    ///     .error_for_status()?;
    /// let mut file = std::fs::File::create("disk.img")?;
    /// std::io::copy(&mut response.into_reader(), &mut file)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn no_body_limit(mut self) -> Self {
        self.download.unlimited_reader = true;
        self
    }

    /// Bounds the response body by stalls instead of by the call's deadline: the deadline
    /// covers the call up to the response head, and from then on each read of the body
    /// ([`into_reader`](Response::into_reader), [`bytes`](Response::bytes), `text`, `json`)
    /// fails with [`TimeoutPhase::Idle`](crate::error::TimeoutPhase::Idle) once no byte has
    /// come for `idle`, however long the body has been running. A body that keeps coming is
    /// bounded only by its limit (see [`no_body_limit`](Self::no_body_limit)); a
    /// [`timeout`](Self::timeout) set on the request itself still bounds the whole body, as
    /// it does an event stream's. Through a proxy, the pool's deadline bounds the body too.
    /// Defaults to none: the call's deadline bounds the body.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// // 30 s (the pool's deadline) to the head; then as long as bytes keep coming.
    /// let response = client
    ///     .get("http://127.0.0.1:8080/export.csv")
    ///     .body_limit(2 * 1024 * 1024 * 1024)
    ///     .body_idle_timeout(Duration::from_secs(10))
    ///     .send()?;
    /// std::io::copy(&mut response.into_reader(), &mut std::io::sink())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn body_idle_timeout(mut self, idle: Duration) -> Self {
        self.download.idle = Some(idle);
        self
    }

    /// Follows at most `max` redirects for this call, in place of the pool's
    /// ([`PoolConfigBuilder::max_redirects`](crate::PoolConfigBuilder::max_redirects)): one
    /// more is [`ErrorKind::TooManyRedirects`](crate::ErrorKind::TooManyRedirects); 0 returns
    /// the first redirect as the response. Defaults to the pool's limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// let response = client.get("http://127.0.0.1:8080/short/abc").redirects(2).send()?;
    /// println!("{} hops to {}", response.redirect_history().len(), response.url());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn redirects(mut self, max: u32) -> Self {
        self.max_redirects = Some(max);
        self
    }

    /// Follows no redirect for this call: a 3xx is the response, its `Location` for the
    /// caller to read. The same as [`redirects(0)`](Self::redirects).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{http::header::LOCATION, ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// let response = client.get("http://127.0.0.1:8080/login").no_redirects().send()?;
    /// if response.status().is_redirection() {
    ///     println!("to {:?}", response.header(LOCATION));
    /// }
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn no_redirects(self) -> Self {
        self.redirects(0)
    }

    /// Validates the request as `send` would, without sending it. For fuzzing only.
    #[cfg(feature = "fuzzing")]
    #[doc(hidden)]
    pub fn validate(self) -> Result<(), Error> {
        self.prepare().map(drop).map_err(|(e, _)| e)
    }

    /// Sends the request and returns the response head; the body is read through
    /// [`Response`]. Non-2xx statuses are responses, not errors
    /// (see [`Response::error_for_status`]).
    ///
    /// # Errors
    ///
    /// Invalid input, DNS, connect, TLS, timeout, protocol and redirect failures, each as its
    /// [`ErrorKind`](crate::ErrorKind), with the host and the number of attempts. A request
    /// refused before anything is sent (invalid input) is still a call in
    /// [`Stats`](crate::Stats): one with no attempt, counted under its host, or under `-` when
    /// its URL did not parse.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// let err = client.get("http://127.0.0.1:8080/\r\nX: y").send().unwrap_err();
    /// assert!(err.is_invalid_request());
    /// assert_eq!(err.attempts(), 0);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn send(self) -> Result<Response, Error> {
        let engine = self.engine;
        match self.prepare() {
            Ok(mut call) => engine.execute(&mut call),
            Err((e, host)) => Err(engine.refuse(e, host.as_deref())),
        }
    }

    /// The call to send, or why it cannot be sent and the host it was for (when the URL
    /// parsed), so that the refusal is counted under it.
    fn prepare(mut self) -> Result<Call, (Error, Option<HostKey>)> {
        let (uri, host, userinfo) = match self.parse_target() {
            Ok(parsed) => parsed,
            // An invalid method or header set earlier is reported first, as it was found first.
            Err(e) => return Err((self.error.take().unwrap_or(e), None)),
        };
        if let Some(e) = self.error.take() {
            return Err((e, Some(host)));
        }
        if let Some(userinfo) = userinfo {
            if !self.headers.contains_key(AUTHORIZATION) {
                match url::basic_auth(&userinfo) {
                    Ok(value) => self.headers.insert(AUTHORIZATION, value),
                    Err(e) => return Err((e, Some(host))),
                };
            }
        }
        let config = &self.engine.shared().config;
        config.apply_default_headers(&mut self.headers, &mut self.sensitive);
        let deadline = config.deadline;
        Ok(Call {
            host,
            method: self.method,
            uri,
            headers: self.headers,
            sensitive: self.sensitive,
            sensitive_query: self.sensitive_query,
            body: self.body,
            timeout: self.timeout.unwrap_or(deadline),
            custom_timeout: self.timeout.is_some(),
            policy: self.policy,
            download: self.download,
            max_redirects: self.max_redirects,
        })
    }

    /// The checked URL with the pairs added by [`query`](Self::query), its host key and its
    /// userinfo. The client's last URL is parsed once: given again (and no pairs added), its
    /// parse is reused.
    fn parse_target(&mut self) -> Result<(Uri, HostKey, Option<Vec<u8>>), Error> {
        if let (Target::Known(p), true) = (&self.url, self.query.is_empty()) {
            return Ok((p.uri().clone(), Arc::clone(p.host()), None));
        }
        let target = self.target();
        let (uri, userinfo) = url::parse(&target, &self.sensitive_query)?;
        let host = self.engine.host_key(&uri);
        if userinfo.is_none() && self.query.is_empty() {
            self.engine.urls().remember(target, &uri, &host);
        }
        Ok((uri, host, userinfo))
    }

    /// The URL with the pairs added by [`query`](Self::query).
    fn target(&mut self) -> String {
        let mut target =
            std::mem::replace(&mut self.url, Target::Given(String::new())).into_string();
        if !self.query.is_empty() {
            // A fragment is never sent (RFC 9110 §4.2.4): the pairs added by `query()` go
            // before it, not into it where they would be dropped with it.
            if let Some(hash) = target.find('#') {
                target.truncate(hash);
            }
            target.push(if target.contains('?') { '&' } else { '?' });
            target.push_str(&self.query);
        }
        target
    }
}
