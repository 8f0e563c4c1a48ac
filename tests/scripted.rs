//! The in-memory scripted peer behind the `fuzzing` feature (what the `client_exchange` fuzz
//! target drives): a redirect chain across origins, checked on the bytes the client wrote.
#![cfg(feature = "fuzzing")]

use http_sentinel::{ClientPool, PoolConfig};

#[test]
fn scripted_redirect_chain_strips_credentials_on_the_wire() {
    let responses = vec![
        b"HTTP/1.1 302 Found\r\nlocation: http://other.test:81/next\r\ncontent-length: 0\r\n\r\n"
            .to_vec(),
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
    ];
    let (pool, written) = ClientPool::scripted(PoolConfig::default(), responses).unwrap();
    let client = pool.checkout().unwrap();
    let r = client
        .get("http://first.test/start")
        .header("Authorization", "Bearer secret-token")
        .header("X-Api-Key", "key-123")
        .sensitive_header("X-Api-Key")
        .send()
        .unwrap();
    assert_eq!((r.status().as_u16(), r.redirects()), (200, 1));
    assert_eq!(r.text().unwrap(), "ok");
    let written = written();
    assert_eq!(written.len(), 2);
    let first = String::from_utf8_lossy(&written[0]).to_lowercase();
    let second = String::from_utf8_lossy(&written[1]).to_lowercase();
    assert!(first.starts_with("get /start http/1.1\r\n"), "{first}");
    assert!(first.contains("secret-token") && first.contains("key-123"));
    assert!(second.starts_with("get /next http/1.1\r\n"), "{second}");
    assert!(second.contains("host: other.test:81"), "{second}");
    assert!(
        !second.contains("secret-token") && !second.contains("key-123"),
        "{second}"
    );
}
