//! Response facts: the peer address, the HTTP version and whether the connection was reused,
//! over loopback.

mod support;

use std::time::Duration;

use http_sentinel::http::Version;
use support::server::{Behaviour, Reply, TestServer};

#[test]
fn a_response_names_its_peer_version_and_whether_its_connection_was_reused() {
    support::scenario(|| {
        let server = TestServer::builder()
            .route("/keep", Behaviour::Respond(Reply::text(200, "kept")))
            .route("/old", Behaviour::Http10(b"legacy".to_vec()))
            .start();
        let pool = support::pool(support::config(Duration::from_secs(5)));
        let client = pool.checkout().unwrap();

        let first = client.get(&server.url("/keep")).send().unwrap();
        assert_eq!(first.remote_addr(), Some(server.addr()));
        assert_eq!(first.version(), Version::HTTP_11);
        assert!(
            !first.connection_reused(),
            "the first request opens a connection"
        );
        first.bytes().unwrap();

        let second = client.get(&server.url("/keep")).send().unwrap();
        assert!(
            second.connection_reused(),
            "the kept-alive connection serves the second"
        );
        assert_eq!(second.remote_addr(), Some(server.addr()));
        second.bytes().unwrap();

        let old = client.get(&server.url("/old")).send().unwrap();
        assert_eq!(old.version(), Version::HTTP_10);
        assert!(old.connection_reused());
        assert_eq!(old.text().unwrap(), "legacy");

        // The HTTP/1.0 response closed its connection: the next request opens another.
        let after = client.get(&server.url("/keep")).send().unwrap();
        assert!(!after.connection_reused());
        after.bytes().unwrap();
        drop(client);
        drop(pool);
        server.shutdown();
    });
}
