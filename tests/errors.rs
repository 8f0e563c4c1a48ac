//! Typed errors within the deadline: DNS failure, refused connection, a server that never answers.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use http_sentinel::{
    error::ConnectFailure, error::TimeoutPhase, ClientPool, ErrorKind, PoolConfig,
};

fn pool(deadline: Duration) -> ClientPool {
    ClientPool::new(PoolConfig::builder().deadline(deadline).build()).unwrap()
}

#[test]
fn unknown_host_is_a_dns_error() {
    let pool = pool(Duration::from_secs(10));
    let client = pool.checkout().unwrap();
    let start = Instant::now();
    // `.invalid` is reserved (RFC 2606): it never resolves.
    let err = client
        .get("http://no-such-host.invalid/")
        .send()
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Dns, "{err:?}");
    assert!(err.is_dns());
    assert_eq!(err.host(), Some("no-such-host.invalid:80"));
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn closed_port_is_connection_refused_fast() {
    // Bind then drop to get a port with nothing listening.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pool = pool(Duration::from_secs(10));
    let client = pool.checkout().unwrap();
    let start = Instant::now();
    let err = client
        .get(&format!("http://127.0.0.1:{port}/"))
        .send()
        .unwrap_err();
    assert_eq!(
        err.kind(),
        &ErrorKind::Connect(ConnectFailure::Refused),
        "{err:?}"
    );
    assert!(err.is_connect());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_server_that_never_answers_hits_the_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    // Accepts (through the backlog) and never reads or writes.
    let pool = pool(Duration::from_millis(500));
    let client = pool.checkout().unwrap();
    let start = Instant::now();
    let err = client.get(&url).send().unwrap_err();
    let took = start.elapsed();
    assert!(err.is_timeout(), "{err:?}");
    assert!(matches!(
        err.kind(),
        ErrorKind::Timeout(TimeoutPhase::Deadline | TimeoutPhase::Response)
    ));
    assert!(took >= Duration::from_millis(450), "{took:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    drop(listener);
}
