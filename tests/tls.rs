//! TLS against a real local rustls server with certificates made at test time: a private CA
//! trusted through the pool's extra roots works; self-signed, expired and wrong-host
//! certificates fail with a typed error that says which, after one attempt and no fallback;
//! a server that offers only TLS 1.0/1.1 is refused.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_sentinel::{
    error::TlsFailure, retry::Jitter, ClientPool, ErrorKind, PoolConfig, RetryPolicy,
};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

mod support;

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn leaf(&self, names: &[&str], expired: bool) -> (CertificateDer<'static>, KeyPair) {
        let (cert, key) = self.leaf_cert(names, expired);
        (cert.der().clone(), key)
    }

    fn leaf_cert(&self, names: &[&str], expired: bool) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let cert = leaf_params(names, expired)
            .signed_by(&key, &self.issuer)
            .unwrap();
        (cert, key)
    }
}

fn leaf_params(names: &[&str], expired: bool) -> CertificateParams {
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    if expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
    }
    params
}

/// A TLS server on loopback answering every request with 200 "secure"; counts handshakes.
struct TlsServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl TlsServer {
    fn start(cert: CertificateDer<'static>, key: &KeyPair) -> TlsServer {
        Self::answering(
            cert,
            key,
            b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nsecure".to_vec(),
        )
    }

    /// A server that answers every request with `response`, then `close_notify`.
    fn answering(cert: CertificateDer<'static>, key: &KeyPair, response: Vec<u8>) -> TlsServer {
        Self::answering_then(cert, key, response, true)
    }

    /// A server that answers every request with `response`, then closes the TCP connection
    /// with or without sending `close_notify` first.
    fn answering_then(
        cert: CertificateDer<'static>,
        key: &KeyPair,
        response: Vec<u8>,
        close_notify: bool,
    ) -> TlsServer {
        let response = Arc::new(response);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        // Serves until the test process ends; each connection is bounded by its timeouts.
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let config = config.clone();
                let response = response.clone();
                std::thread::spawn(move || {
                    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok();
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let _ = tls.write_all(&response);
                    if close_notify {
                        tls.conn.send_close_notify();
                    }
                    let _ = tls.flush();
                });
            }
        });
        TlsServer { addr, connections }
    }

    fn url(&self, host: &str) -> String {
        format!("https://{host}:{}/", self.addr.port())
    }
}

/// Retries that would happen at once if TLS errors were retryable.
fn pool_trusting(roots: &[&str]) -> ClientPool {
    let mut b = PoolConfig::builder().retry(
        RetryPolicy::new()
            .with_max_attempts(5)
            .with_base_delay(Duration::from_millis(1))
            .with_jitter(Jitter::None),
    );
    for r in roots {
        b = b.add_root_certificate(r.as_bytes());
    }
    ClientPool::new(b.build()).unwrap()
}

fn tls_kind(err: &http_sentinel::Error) -> TlsFailure {
    match err.kind() {
        ErrorKind::Tls(t) => *t,
        other => panic!("expected a TLS error, got {other:?} ({err})"),
    }
}

#[test]
fn a_private_ca_trusted_through_extra_roots_works() {
    let ca = Ca::new();
    let (cert, key) = ca.leaf(&["localhost"], false);
    let server = TlsServer::start(cert, &key);
    let pool = pool_trusting(&[&ca.pem()]);
    let client = pool.checkout().unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let r = client.get(&server.url(host)).send().unwrap();
        assert_eq!(
            (r.status().as_u16(), r.text().unwrap().as_str()),
            (200, "secure")
        );
    }
}

#[test]
fn an_untrusted_issuer_fails_once_with_unknown_issuer() {
    let ca = Ca::new();
    let (cert, key) = ca.leaf(&["localhost"], false);
    let server = TlsServer::start(cert, &key);
    // Webpki roots only: the private CA is not trusted.
    let pool = pool_trusting(&[]);
    let err = pool
        .checkout()
        .unwrap()
        .get(&server.url("localhost"))
        .send()
        .unwrap_err();
    assert_eq!(tls_kind(&err), TlsFailure::UnknownIssuer, "{err}");
    assert!(err.is_tls());
    assert_eq!(err.attempts(), 1, "TLS failures are never retried");
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn a_self_signed_certificate_is_refused() {
    let key = KeyPair::generate().unwrap();
    let cert = leaf_params(&["localhost"], false)
        .self_signed(&key)
        .unwrap();
    let server = TlsServer::start(cert.der().clone(), &key);
    let pool = pool_trusting(&[]);
    let err = pool
        .checkout()
        .unwrap()
        .get(&server.url("localhost"))
        .send()
        .unwrap_err();
    assert_eq!(tls_kind(&err), TlsFailure::UnknownIssuer, "{err}");
    assert_eq!(err.attempts(), 1);
}

#[test]
fn an_expired_certificate_says_expired() {
    let ca = Ca::new();
    let (cert, key) = ca.leaf(&["localhost"], true);
    let server = TlsServer::start(cert, &key);
    let pool = pool_trusting(&[&ca.pem()]);
    let err = pool
        .checkout()
        .unwrap()
        .get(&server.url("localhost"))
        .send()
        .unwrap_err();
    assert_eq!(tls_kind(&err), TlsFailure::Expired, "{err}");
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn a_certificate_for_another_host_says_name_mismatch() {
    let ca = Ca::new();
    let key = KeyPair::generate().unwrap();
    // Valid for other.test only: no IP address, no localhost.
    let params = CertificateParams::new(vec!["other.test".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let server = TlsServer::start(cert.der().clone(), &key);
    let pool = pool_trusting(&[&ca.pem()]);
    let client = pool.checkout().unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let err = client.get(&server.url(host)).send().unwrap_err();
        assert_eq!(tls_kind(&err), TlsFailure::NameMismatch, "{host}: {err}");
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
}

#[test]
fn an_unparsable_extra_root_is_a_config_error() {
    let config = PoolConfig::builder()
        .add_root_certificate(
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        )
        .build();
    let err = ClientPool::new(config).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::InvalidConfig(_)), "{err}");
}

/// `openssl s_server` offering only TLS 1.0 or 1.1 (the client must refuse both).
struct LegacyServer(Child);

impl Drop for LegacyServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_server_offering_only_tls_1_0_or_1_1_is_refused() {
    let dir = std::env::temp_dir().join(format!("sentinel-legacy-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = Ca::new();
    let (cert, key) = ca.leaf_cert(&["localhost"], false);
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let pool = pool_trusting(&[&ca.pem()]);
    let client = pool.checkout().unwrap();
    for version in ["-tls1", "-tls1_1"] {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let _server = LegacyServer(
            Command::new("openssl")
                .args([
                    "s_server",
                    version,
                    "-quiet",
                    "-www",
                    "-cipher",
                    "DEFAULT:@SECLEVEL=0",
                ])
                .arg("-accept")
                .arg(format!("127.0.0.1:{port}"))
                .arg("-cert")
                .arg(dir.join("cert.pem"))
                .arg("-key")
                .arg(dir.join("key.pem"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("openssl is installed by .ci/run"),
        );
        // Wait (bounded) until the server accepts connections.
        let limit = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < limit, "openssl s_server did not start");
            std::thread::yield_now();
        }
        let err = client
            .get(&format!("https://localhost:{port}/"))
            .send()
            .unwrap_err();
        assert_eq!(tls_kind(&err), TlsFailure::Handshake, "{version}: {err}");
        // The cause: the server could not agree on a protocol version (rustls offers 1.2+).
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            cause
                .as_deref()
                .is_some_and(|c| c.contains("ProtocolVersion")),
            "{version}: {cause:?}"
        );
        assert_eq!(err.attempts(), 1);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// fault scenario 17 (tests/README.md): an https origin redirecting to plain http.
#[test]
fn a_redirect_from_https_to_http_is_refused_and_nothing_reaches_the_http_side() {
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    // The peers the http side accepted, in order.
    let reached = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = reached.clone();
    std::thread::spawn(move || {
        for (_, peer) in std::iter::from_fn(|| plain.accept().ok()) {
            log.lock().unwrap().push(peer);
        }
    });
    let ca = Ca::new();
    let (cert, key) = ca.leaf(&["localhost"], false);
    let redirect = format!(
        "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{plain_port}/downgraded\r\n\
         content-length: 0\r\nconnection: close\r\n\r\n"
    );
    let server = TlsServer::answering(cert, &key, redirect.into_bytes());
    let pool = pool_trusting(&[&ca.pem()]);
    let client = pool.checkout().unwrap();
    let err = client
        .get(&server.url("localhost"))
        .header("authorization", "Bearer SECRET")
        .send()
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::RedirectRefused(_)),
        "{err:?}"
    );
    assert!(err.is_redirect());
    assert!(!err.to_string().contains("SECRET"), "{err}");
    assert_eq!(err.attempts(), 1, "a refused redirect is not retried");
    // Connections are accepted in order: once a control connection made now has been
    // accepted, any connection the client made would have been accepted before it.
    let control = std::net::TcpStream::connect(("127.0.0.1", plain_port)).unwrap();
    let control = control.local_addr().unwrap();
    let limit = Instant::now() + Duration::from_secs(5);
    while !reached.lock().unwrap().contains(&control) {
        assert!(
            Instant::now() < limit,
            "the control connection was never accepted"
        );
        std::thread::yield_now();
    }
    assert_eq!(
        *reached.lock().unwrap(),
        [control],
        "the client connected to the http side"
    );
}

#[test]
fn a_close_delimited_body_that_ends_without_close_notify_is_an_error() {
    let ca = Ca::new();
    let (cert, key) = ca.leaf(&["localhost"], false);
    // No Content-Length, no Transfer-Encoding: only the end of the connection ends the body.
    let response = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nsecure body".to_vec();
    let pool = pool_trusting(&[&ca.pem()]);
    let client = pool.checkout().unwrap();

    // Control: with close_notify the body is known to be whole.
    let server = TlsServer::answering_then(cert.clone(), &key, response.clone(), true);
    let r = client.get(&server.url("localhost")).send().unwrap();
    assert_eq!(r.text().unwrap(), "secure body");
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);

    // Without it the body may have been cut short (RFC 8446 §6.1): an error, not a success,
    // whether read whole or through a reader.
    let server = TlsServer::answering_then(cert, &key, response, false);
    let err = client
        .get(&server.url("localhost"))
        .send()
        .unwrap()
        .bytes()
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Io {
                kind: std::io::ErrorKind::UnexpectedEof,
                may_have_been_processed: true
            }
        ),
        "{err:?}"
    );
    assert!(format!("{err:?}").contains("close_notify"), "{err:?}");
    let mut body = Vec::new();
    let mut reader = client
        .get(&server.url("localhost"))
        .send()
        .unwrap()
        .into_reader();
    let err = reader.read_to_end(&mut body).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err:?}");
    assert_eq!(
        body, b"secure body",
        "the bytes that came are still handed over"
    );
    // One connection per request: nothing was retried, and no connection was reused.
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
}

// fault scenario 26 (tests/README.md): an https target through an HTTP proxy is tunnelled.
#[test]
fn an_https_target_through_an_http_proxy_goes_through_a_connect_tunnel() {
    let ca = Ca::new();
    let (cert, key) = ca.leaf(&["localhost"], false);
    let server = TlsServer::start(cert, &key);
    let proxy = support::proxy::ForwardProxy::start(200);
    let pool = ClientPool::new(
        PoolConfig::builder()
            .add_root_certificate(ca.pem().as_bytes())
            .proxy(http_sentinel::Proxy::Url(proxy.url(Some("user:pass"))))
            .build(),
    )
    .unwrap();
    let client = pool.checkout().unwrap();
    let r = client.get(&server.url("127.0.0.1")).send().unwrap();
    assert_eq!(r.text().unwrap(), "secure");
    let seen = proxy.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    // The TLS session runs inside the tunnel: the proxy saw CONNECT and nothing in clear.
    assert_eq!(
        seen[0].line,
        format!("CONNECT 127.0.0.1:{} HTTP/1.1", server.addr.port())
    );
    assert_eq!(
        seen[0].header("proxy-authorization"),
        Some("Basic dXNlcjpwYXNz")
    );
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn a_resolve_override_connects_to_the_address_and_verifies_the_name() {
    let ca = Ca::new();
    let key = KeyPair::generate().unwrap();
    // Valid for api.example.test only: reached through the override, never through DNS.
    let params = CertificateParams::new(vec!["api.example.test".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let server = TlsServer::start(cert.der().clone(), &key);
    let port = server.addr.port();
    let loopback: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let config = PoolConfig::builder()
        .add_root_certificate(ca.pem().as_bytes())
        .resolve("api.example.test", port, [loopback])
        .resolve("other.example.test", port, [loopback]);
    let pool = ClientPool::new(config.build()).unwrap();
    let client = pool.checkout().unwrap();
    let r = client.get(&server.url("api.example.test")).send().unwrap();
    assert_eq!(r.remote_addr(), Some(server.addr));
    assert_eq!(r.text().unwrap(), "secure");
    // Same address, another name: the certificate is checked against the name, not the address.
    let err = client
        .get(&server.url("other.example.test"))
        .send()
        .unwrap_err();
    assert_eq!(tls_kind(&err), TlsFailure::NameMismatch, "{err}");
}
