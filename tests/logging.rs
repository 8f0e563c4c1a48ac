//! Scenario 27: with every crate logging at `trace`, no secret appears in any log record:
//! not in the crate's own lines, not in ureq's request and response lines, and not in
//! ureq-proto's hex dumps of the heads it writes and parses (also when a secret straddles two
//! 16-byte dump rows). Every kind of secret is used, through same-origin and cross-origin
//! redirects, over plain HTTP and over TLS, set directly or through `bearer_auth`, `basic_auth`
//! and a pool's default headers; the servers must still receive the real values.
//!
//! The logger is process-wide, so this file holds one test that runs the cases in turn.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use http_sentinel::{ClientPool, PoolConfig};
use log::{LevelFilter, Log, Metadata, Record};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use support::server::{Behaviour, Reply, TestServer};

const BEARER: &str = "bearer-SECRET-4f1a9c";
const COOKIE: &str = "cookie-SECRET-77ab0e";
const PASSWORD: &str = "pw-SECRET-91c2d5";
const API_KEY: &str = "apikey-SECRET-0d3e6b";
const QUERY: &str = "query-SECRET-5b6c1f";
const LOCATION_QUERY: &str = "locquery-SECRET-2e8d";
const LOCATION_PASSWORD: &str = "locpw-SECRET-c3d4aa";
const SET_COOKIE: &str = "setcookie-SECRET-a8e9b7";
const SET_COOKIE_2: &str = "setcookie2-SECRET-6f5e";
const JAR_COOKIE: &str = "jarcookie-SECRET-3c7d9e";

/// Every secret, and the Basic form of the URL credentials.
fn secrets() -> Vec<String> {
    let basic = |user: &str, pass: &str| {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    };
    let mut all: Vec<String> = [
        BEARER,
        COOKIE,
        PASSWORD,
        API_KEY,
        QUERY,
        LOCATION_QUERY,
        LOCATION_PASSWORD,
        SET_COOKIE,
        SET_COOKIE_2,
        JAR_COOKIE,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    all.push(basic("alice", PASSWORD));
    all.push(basic("lu", LOCATION_PASSWORD));
    all
}

static RECORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Keeps every record of every crate, in order.
struct Shared;

impl Log for Shared {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }

    fn log(&self, record: &Record) {
        let line = format!("{} {}", record.target(), record.args());
        RECORDS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }

    fn flush(&self) {}
}

fn take_records() -> Vec<String> {
    std::mem::take(&mut *RECORDS.lock().unwrap_or_else(PoisonError::into_inner))
}

/// The bytes of one ureq-proto hex-dump row (`4854 5450 ... --  HTTP/1.1`), if it is one.
fn hex_row(message: &str) -> Option<Vec<u8>> {
    let groups: Vec<&str> = message.split(' ').take(8).collect();
    if groups.len() != 8 || groups.iter().any(|g| g.len() != 4) {
        return None;
    }
    let mut bytes = Vec::new();
    for g in groups {
        for pair in [&g[..2], &g[2..]] {
            if pair == "--" {
                continue;
            }
            bytes.push(u8::from_str_radix(pair, 16).ok()?);
        }
    }
    Some(bytes)
}

/// What the records say: each record as text, and the hex-dump rows joined in order.
struct Findings {
    records: Vec<String>,
    dump: String,
    rows: usize,
}

fn findings(records: Vec<String>) -> Findings {
    let mut dump = Vec::new();
    let mut rows = 0;
    for r in &records {
        let message = r.split_once(' ').map_or("", |(_, m)| m);
        if let Some(bytes) = hex_row(message) {
            rows += 1;
            dump.extend(bytes);
        }
    }
    Findings {
        records,
        dump: String::from_utf8_lossy(&dump).into_owned(),
        rows,
    }
}

fn assert_no_secret(case: &str, f: &Findings) {
    for secret in secrets() {
        for r in &f.records {
            assert!(!r.contains(&secret), "{case}: {secret} in a record: {r}");
        }
        assert!(
            !f.dump.contains(&secret),
            "{case}: {secret} in the joined hex dump:\n{}",
            f.dump
        );
    }
    // Not vacuous: ureq-proto dumped the heads it wrote and parsed, placeholders and all.
    assert!(
        f.rows > 10,
        "{case}: no hex dump captured ({} rows)",
        f.rows
    );
    assert!(f.dump.contains("GET /"), "{case}: {}", f.dump);
    assert!(f.dump.contains("HTTP/1.1 "), "{case}: {}", f.dump);
    assert!(
        f.dump.contains("sentinelph"),
        "{case}: no placeholder in {}",
        f.dump
    );
}

/// Plain HTTP: URL password (Basic), Cookie, a sensitive header and a sensitive query
/// parameter through a same-origin redirect (whose Location carries another sensitive query
/// value) and a cross-origin one (whose Location carries userinfo); then a bearer token; a
/// response Set-Cookie on every hop.
fn plain_http(pool: &ClientPool) {
    let other = TestServer::builder()
        .route(
            "/cross",
            Behaviour::Respond(Reply::text(200, "other").header("Set-Cookie", SET_COOKIE_2)),
        )
        .start();
    let cross = format!(
        "http://lu:{LOCATION_PASSWORD}@127.0.0.1:{}/cross",
        other.addr().port()
    );
    let server = TestServer::builder()
        .route(
            "/start",
            Behaviour::Respond(
                Reply::new(302)
                    .header("Location", format!("/same?api_key={LOCATION_QUERY}"))
                    .header("Set-Cookie", format!("sid={SET_COOKIE}; HttpOnly")),
            ),
        )
        .route(
            "/same",
            Behaviour::Respond(Reply::new(302).header("Location", cross.clone())),
        )
        .route(
            "/plain",
            Behaviour::Respond(Reply::text(200, "ok").header("Set-Cookie", SET_COOKIE)),
        )
        .start();
    let port = server.addr().port();
    let client = pool.checkout().unwrap();
    let response = client
        .get(format!("http://alice:{PASSWORD}@127.0.0.1:{port}/start?api_key={QUERY}").as_str())
        .header("Cookie", format!("c={COOKIE}"))
        .sensitive_header("x-api-key")
        .header("x-api-key", API_KEY)
        .sensitive_query("api_key")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.redirects(), 2);
    // The caller gets the real Set-Cookie back.
    assert_eq!(response.header("set-cookie"), Some(SET_COOKIE_2));
    drop(response);

    let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    let seen = server.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (r, query) in seen.iter().zip([QUERY, LOCATION_QUERY]) {
        // The real values reached the wire, same-origin hops included.
        assert_eq!(
            r.header("authorization"),
            Some(format!("Basic {basic}").as_str())
        );
        assert_eq!(r.header("cookie"), Some(format!("c={COOKIE}").as_str()));
        assert_eq!(r.header("x-api-key"), Some(API_KEY));
        assert_eq!(
            r.query.as_deref(),
            Some(format!("api_key={query}").as_str())
        );
    }
    let far = &other.requests()[0];
    assert!(far.header("authorization").is_none() && far.header("cookie").is_none());
    assert!(far.header("x-api-key").is_none());

    let response = client
        .get(server.url("/plain").as_str())
        .header("Authorization", format!("Bearer {BEARER}"))
        .query("api_key", QUERY)
        .sensitive_query("api_key")
        .send()
        .unwrap();
    assert_eq!(response.url().query(), Some("api_key=***"));
    assert_eq!(response.header("set-cookie"), Some(SET_COOKIE));
    let last = server.requests().pop().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {BEARER}").as_str())
    );
    assert_eq!(
        last.query.as_deref(),
        Some(format!("api_key={QUERY}").as_str())
    );
    drop(response);

    // A redirect returned to the caller keeps its real Location.
    let no_follow = support::pool(support::config(Duration::from_secs(5)).max_redirects(0));
    let response = no_follow
        .checkout()
        .unwrap()
        .get(server.url("/same").as_str())
        .send()
        .unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(response.header("location"), Some(cross.as_str()));
}

/// The cookie jar (feature `cookies`): a `Set-Cookie` on a redirect hop is stored and sent on
/// the next hop, and no record carries its value (`cookie_store`'s own bulk insert logs each
/// cookie, value included, at `debug`).
#[cfg(feature = "cookies")]
fn cookie_jar() {
    let server = TestServer::builder()
        .route(
            "/login",
            Behaviour::Respond(
                Reply::new(302)
                    .header("Location", "/home")
                    .header("Set-Cookie", format!("jar={JAR_COOKIE}; Path=/")),
            ),
        )
        .route("/home", Behaviour::Respond(Reply::text(200, "home")))
        .start();
    let jar = http_sentinel::CookieJar::shared();
    let pool = support::pool(support::config(Duration::from_secs(5)).cookie_store(jar));
    let client = pool.checkout().unwrap();
    let response = client.get(server.url("/login").as_str()).send().unwrap();
    assert_eq!(response.redirects(), 1);
    drop(response);
    let home = server.requests().pop().unwrap();
    assert_eq!(home.path, "/home");
    assert_eq!(
        home.header("cookie"),
        Some(format!("jar={JAR_COOKIE}").as_str())
    );
}

/// `bearer_auth`, `basic_auth` and a default sensitive header, through a cross-origin
/// redirect: the first origin gets the real values, the other none, no log record any.
fn request_helpers() {
    let other = TestServer::builder()
        .route("/cross", Behaviour::Respond(Reply::text(200, "other")))
        .start();
    let server = TestServer::builder()
        .route(
            "/start",
            Behaviour::Respond(Reply::new(302).header("Location", other.url("/cross"))),
        )
        .start();
    let pool = support::pool(
        support::config(Duration::from_secs(5)).default_sensitive_header("x-api-key", API_KEY),
    );
    let client = pool.checkout().unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    let expected = [format!("Bearer {BEARER}"), format!("Basic {basic}")];
    for (i, auth) in expected.iter().enumerate() {
        let request = client.get(server.url("/start").as_str());
        let request = match i {
            0 => request.bearer_auth(BEARER),
            _ => request.basic_auth("alice", Some(PASSWORD)),
        };
        let response = request.send().unwrap();
        assert_eq!(response.redirects(), 1);
        drop(response);
        let first = server.requests().pop().unwrap();
        assert_eq!(first.header("authorization"), Some(auth.as_str()));
        assert_eq!(first.header("x-api-key"), Some(API_KEY));
        let far = other.requests().pop().unwrap();
        assert!(far.header("authorization").is_none() && far.header("x-api-key").is_none());
    }
}

/// A TLS server on loopback: answers each request by its path, records each request head.
struct TlsServer {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TlsServer {
    fn start(issuer: &CertifiedIssuer<'static, KeyPair>, answer: fn(&str) -> String) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let cert = params.signed_by(&key, issuer).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert.der().clone()], key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopping) = (heads.clone(), stop.clone());
        // One connection at a time: the client under test makes one request at a time, and
        // every answer closes its connection.
        let thread = std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                serve_one(tcp, &config, &log, answer);
            }
        });
        TlsServer {
            addr,
            heads,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, userinfo: &str, path: &str) -> String {
        format!("https://{userinfo}127.0.0.1:{}{path}", self.addr.port())
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(
    tcp: TcpStream,
    config: &Arc<rustls::ServerConfig>,
    heads: &Mutex<Vec<String>>,
    answer: fn(&str) -> String,
) {
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let conn = rustls::ServerConnection::new(config.clone()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    // Bounded by the read timeout and by the head size.
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
    heads.lock().unwrap().push(head);
    let _ = tls.write_all(answer(&path).as_bytes());
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

/// The port of the TLS server that the cross-origin redirect leads to.
static FAR_PORT: AtomicU16 = AtomicU16::new(0);

fn tls_answer(path: &str) -> String {
    let (status, extra) = if path.starts_with("/start") {
        (
            "302 Found",
            format!("location: /next?api_key={LOCATION_QUERY}\r\nset-cookie: sid={SET_COOKIE}\r\n"),
        )
    } else if path.starts_with("/next") {
        let far = FAR_PORT.load(Ordering::SeqCst);
        (
            "302 Found",
            format!("location: https://lu:{LOCATION_PASSWORD}@127.0.0.1:{far}/far\r\n"),
        )
    } else {
        ("200 OK", format!("set-cookie: {SET_COOKIE_2}\r\n"))
    };
    format!("HTTP/1.1 {status}\r\n{extra}content-length: 2\r\nconnection: close\r\n\r\nok")
}

/// TLS: the same secrets through a same-origin and a cross-origin redirect between two TLS
/// servers trusted through a private CA, then a bearer token.
fn over_tls() {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let far = TlsServer::start(&ca, tls_answer);
    let near = TlsServer::start(&ca, tls_answer);
    FAR_PORT.store(far.addr.port(), Ordering::SeqCst);
    let pool = ClientPool::new(
        PoolConfig::builder()
            .add_root_certificate(ca.pem().as_bytes())
            .deadline(Duration::from_secs(10))
            .build(),
    )
    .unwrap();
    let client = pool.checkout().unwrap();
    let response = client
        .get(near.url(&format!("alice:{PASSWORD}@"), "/start").as_str())
        .query("api_key", QUERY)
        .header("Cookie", format!("c={COOKIE}"))
        .sensitive_header("x-api-key")
        .header("x-api-key", API_KEY)
        .sensitive_query("api_key")
        .send()
        .unwrap();
    assert_eq!((response.status().as_u16(), response.redirects()), (200, 2));
    assert_eq!(response.header("set-cookie"), Some(SET_COOKIE_2));
    drop(response);
    let response = client
        .get(near.url("", "/bearer").as_str())
        .header("Authorization", format!("Bearer {BEARER}"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    drop(response);

    let heads = near.heads();
    assert_eq!(heads.len(), 3, "{heads:?}");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    for (head, query) in heads.iter().zip([QUERY, LOCATION_QUERY]) {
        assert!(head.contains(&format!("api_key={query} ")), "{head}");
        assert!(head.contains(&format!("Basic {basic}\r\n")), "{head}");
        assert!(head.contains(&format!("c={COOKIE}\r\n")), "{head}");
        assert!(head.contains(&format!("{API_KEY}\r\n")), "{head}");
    }
    assert!(
        heads[2].contains(&format!("Bearer {BEARER}\r\n")),
        "{}",
        heads[2]
    );
    let far_heads = far.heads();
    assert_eq!(far_heads.len(), 1, "{far_heads:?}");
    let lower = far_heads[0].to_ascii_lowercase();
    assert!(
        !lower.contains("authorization") && !lower.contains("cookie"),
        "{lower}"
    );
    assert!(!lower.contains("x-api-key"), "{lower}");
}

#[test]
fn no_secret_reaches_any_log_record_at_trace() {
    // `set_boxed_logger` needs log's `std` feature; a static logger is the same thing.
    static LOGGER: Shared = Shared;
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(LevelFilter::Trace);
    support::scenario(|| {
        let pool = support::pool(support::config(Duration::from_secs(5)));
        take_records();
        plain_http(&pool);
        assert_no_secret("plain http", &findings(take_records()));
    });
    support::scenario(|| {
        take_records();
        request_helpers();
        assert_no_secret("request helpers", &findings(take_records()));
    });
    #[cfg(feature = "cookies")]
    support::scenario(|| {
        take_records();
        cookie_jar();
        assert_no_secret("cookie jar", &findings(take_records()));
    });
    support::scenario(|| {
        take_records();
        over_tls();
        assert_no_secret("tls", &findings(take_records()));
    });
}
