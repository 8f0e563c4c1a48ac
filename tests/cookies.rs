//! The cookie jar (feature `cookies`): cookies set on redirect hops are sent on the next hops
//! and later calls of the same origin, never to another origin against their domain rules;
//! one jar shared by the pool or one per client; a request's own `Cookie` header wins; the
//! jar saves and loads; no cookie value in any `Debug` or error. Checked against the loopback
//! test server's request log.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_sentinel::{ClientPool, CookieJar, PoolConfigBuilder};

mod support;

use support::scenario;
use support::server::{Behaviour, LoggedRequest, Reply, TestServer};

fn config(jar: CookieJar) -> PoolConfigBuilder {
    support::config(Duration::from_secs(5)).cookie_store(jar)
}

fn redirect_setting(location: &str, cookies: &[&str]) -> Behaviour {
    let mut reply = Reply::new(302).header("location", location);
    for c in cookies {
        reply = reply.header("set-cookie", *c);
    }
    Behaviour::Respond(reply)
}

fn last_to(server: &TestServer, path: &str) -> LoggedRequest {
    server
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("no request to {path}"))
}

fn cookie_header(request: &LoggedRequest) -> Option<String> {
    let all: Vec<&str> = request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(all.len() <= 1, "more than one Cookie header: {all:?}");
    all.first().map(|v| v.to_string())
}

/// `/login` (302, sets `session`) -> `/step` (302, sets `step`) -> `/home`; `/me` echoes.
fn login_server() -> TestServer {
    TestServer::builder()
        .route(
            "/login",
            redirect_setting("/step", &["session=s3ss-login-7f; Path=/; HttpOnly"]),
        )
        .route("/step", redirect_setting("/home", &["step=2; Path=/"]))
        .route("/home", Behaviour::EchoHeaders)
        .route("/me", Behaviour::EchoHeaders)
        .start()
}

#[test]
fn a_cookie_set_by_a_redirect_hop_is_sent_on_the_next_hops_and_later_calls() {
    scenario(|| {
        let server = login_server();
        let pool = support::pool(config(CookieJar::shared()));
        let client = pool.checkout().unwrap();
        let response = client
            .post(server.url("/login").as_str())
            .form(&[("user", "alice")])
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.redirects(), 2);
        drop(response);
        assert_eq!(cookie_header(&last_to(&server, "/login")), None);
        assert_eq!(
            cookie_header(&last_to(&server, "/step")).as_deref(),
            Some("session=s3ss-login-7f")
        );
        assert_eq!(
            cookie_header(&last_to(&server, "/home")).as_deref(),
            Some("session=s3ss-login-7f; step=2")
        );
        let _ = client
            .get(server.url("/me").as_str())
            .send()
            .unwrap()
            .text();
        assert_eq!(
            cookie_header(&last_to(&server, "/me")).as_deref(),
            Some("session=s3ss-login-7f; step=2")
        );
    });
}

/// Server `a` (reached as `localhost`) sets cookies and redirects to `b` (reached as
/// `127.0.0.1`), which redirects back to `a`'s `/back`.
fn two_origins() -> (TestServer, TestServer) {
    let back = Arc::new(OnceLock::<String>::new());
    let b = {
        let back = back.clone();
        TestServer::builder()
            .route(
                "/hop",
                Behaviour::Handler(Arc::new(move |_: &LoggedRequest| {
                    redirect_setting(back.get().map_or("", String::as_str), &["b_own=1"])
                })),
            )
            .start()
    };
    let a = TestServer::builder()
        .route(
            "/start",
            redirect_setting(
                &b.url("/hop"),
                &[
                    "session=a-only-91; Path=/",
                    // Not a's to set: refused by the jar's domain rules.
                    "planted=1; Domain=127.0.0.1; Path=/",
                ],
            ),
        )
        .route("/back", Behaviour::EchoHeaders)
        .start();
    back.set(localhost(&a, "/back")).unwrap();
    (a, b)
}

fn localhost(server: &TestServer, path: &str) -> String {
    format!("http://localhost:{}{path}", server.addr().port())
}

#[test]
fn a_cookie_is_never_sent_to_another_origin_on_a_redirect() {
    scenario(|| {
        let (a, b) = two_origins();
        let pool = support::pool(config(CookieJar::shared()));
        let client = pool.checkout().unwrap();
        let response = client
            .get(localhost(&a, "/start").as_str())
            .header("cookie", "own=from-the-caller")
            .send()
            .unwrap();
        assert_eq!(response.redirects(), 2);
        drop(response);
        // The caller's own Cookie went to the first origin only.
        assert_eq!(
            cookie_header(&last_to(&a, "/start")).as_deref(),
            Some("own=from-the-caller")
        );
        let far = last_to(&b, "/hop");
        assert_eq!(cookie_header(&far), None, "{:?}", far.headers);
        // Back on the first origin: the jar's cookie for it, and nothing b set (b's cookie
        // is for 127.0.0.1) nor the caller's header (dropped for the rest of the chain).
        assert_eq!(
            cookie_header(&last_to(&a, "/back")).as_deref(),
            Some("session=a-only-91")
        );
        // A later call to b, directly: b's own cookie, never a's.
        let _ = client.get(b.url("/hop").as_str()).send();
        assert_eq!(
            cookie_header(&last_to(&b, "/hop")).as_deref(),
            Some("b_own=1")
        );
    });
}

#[test]
fn a_request_cookie_header_replaces_the_jars_and_the_response_still_fills_it() {
    scenario(|| {
        let server = login_server();
        let jar = CookieJar::shared();
        let pool = support::pool(config(jar.clone()));
        let client = pool.checkout().unwrap();
        let _ = client
            .get(server.url("/login").as_str())
            .header("cookie", "mine=1")
            .send()
            .unwrap();
        // Same origin all along: the caller's header on every hop, the jar adding nothing.
        for path in ["/login", "/step", "/home"] {
            assert_eq!(
                cookie_header(&last_to(&server, path)).as_deref(),
                Some("mine=1"),
                "{path}"
            );
        }
        assert_eq!(jar.lock().iter_unexpired().count(), 2);
        let _ = client.get(server.url("/me").as_str()).send().unwrap();
        assert_eq!(
            cookie_header(&last_to(&server, "/me")).as_deref(),
            Some("session=s3ss-login-7f; step=2")
        );
    });
}

fn two_clients_log_in_on_one(jar: CookieJar) -> (Option<String>, Option<String>) {
    let server = login_server();
    let pool = support::pool(config(jar).max_clients(2));
    let a = pool.checkout().unwrap();
    let b = pool.checkout().unwrap();
    let _ = a.get(server.url("/login").as_str()).send().unwrap();
    let _ = a.get(server.url("/me?who=a").as_str()).send().unwrap();
    let seen_by_a = cookie_header(&last_to(&server, "/me"));
    let _ = b.get(server.url("/me?who=b").as_str()).send().unwrap();
    let seen_by_b = cookie_header(&last_to(&server, "/me"));
    assert_eq!(last_to(&server, "/me").query.as_deref(), Some("who=b"));
    (seen_by_a, seen_by_b)
}

#[test]
fn a_shared_jar_serves_every_client_and_a_per_client_jar_only_its_own() {
    scenario(|| {
        let expected = Some("session=s3ss-login-7f; step=2".to_owned());
        let (a, b) = two_clients_log_in_on_one(CookieJar::shared());
        assert_eq!((&a, &b), (&expected, &expected));
        let (a, b) = two_clients_log_in_on_one(CookieJar::per_client());
        assert_eq!((&a, &b), (&expected, &None));
    });
}

#[cfg(feature = "json")]
#[test]
fn a_saved_jar_resumes_its_persistent_cookies_in_another_pool() {
    scenario(|| {
        let server = TestServer::builder()
            .route(
                "/set",
                Behaviour::Respond(
                    Reply::new(204)
                        .header("set-cookie", "keep=1; Max-Age=3600; Path=/")
                        .header("set-cookie", "session_only=1; Path=/"),
                ),
            )
            .route("/me", Behaviour::EchoHeaders)
            .start();
        let jar = CookieJar::shared();
        let pool = support::pool(config(jar.clone()));
        let _ = pool
            .checkout()
            .unwrap()
            .get(server.url("/set").as_str())
            .send();
        let mut saved = Vec::new();
        jar.save_json(&mut saved).unwrap();
        let loaded = CookieJar::load_json(&saved[..]).unwrap();
        let resumed = support::pool(config(loaded));
        let _ = resumed
            .checkout()
            .unwrap()
            .get(server.url("/me").as_str())
            .send()
            .unwrap();
        assert_eq!(
            cookie_header(&last_to(&server, "/me")).as_deref(),
            Some("keep=1")
        );
        let err = CookieJar::load_json(&b"not json"[..]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    });
}

#[test]
fn no_cookie_value_in_debug_or_errors() {
    scenario(|| {
        const VALUE: &str = "s3ss-login-7f";
        let server = TestServer::builder()
            .route(
                "/login",
                redirect_setting("/home", &[&format!("session={VALUE}; Path=/")]),
            )
            .route("/home", Behaviour::EchoHeaders)
            .route("/stall", Behaviour::Stall)
            .start();
        let jar = CookieJar::shared();
        let pool: ClientPool = support::pool(config(jar.clone()));
        let client = pool.checkout().unwrap();
        let response = client.get(server.url("/login").as_str()).send().unwrap();
        let mut shown = vec![
            format!("{response:?}"),
            format!("{jar:?}"),
            format!("{:?}", client.cookie_jar()),
            format!("{:?}", *client),
            format!("{pool:?}"),
            format!("{:?}", pool.config()),
        ];
        assert!(response.text().unwrap().contains(VALUE), "not sent at all");
        let request = client
            .get(server.url("/stall").as_str())
            .timeout(Duration::from_millis(300));
        shown.push(format!("{request:?}"));
        let err = request.send().unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(cookie_header(&last_to(&server, "/stall")).is_some());
        shown.push(format!("{err:?}"));
        shown.push(format!("{err}"));
        for text in shown {
            assert!(!text.contains(VALUE), "{text}");
        }
    });
}
