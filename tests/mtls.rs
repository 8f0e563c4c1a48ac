//! Mutual TLS against a local rustls server that requires a client certificate signed by its
//! own CA: the pool's identity is accepted, no identity or an untrusted one is refused with a
//! typed TLS error, and `tls_built_in_root_certs(false)` trusts only the given roots.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use http_sentinel::{error::TlsFailure, ClientPool, ErrorKind, Identity, PoolConfig, RetryPolicy};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;

mod support;

use support::scenario;

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

    /// A leaf for `name` (and 127.0.0.1), as PEM chain and PEM key.
    fn leaf(&self, name: &str) -> (String, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key)
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }
}

/// A TLS server requiring a client certificate signed by `client_ca`; answers "mutual". It
/// serves exactly `connections` connections, then ends: join it so that its listener is closed
/// before `support::scenario` counts descriptors (a server left waiting in `accept` keeps one).
fn server(
    server_ca: &Ca,
    client_ca: &Ca,
    connections: usize,
) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let (pem, key) = server_ca.leaf("localhost");
    let cert = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(client_ca.der()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert], key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        for tcp in listener.incoming().take(connections).flatten() {
            tcp.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            let complete = loop {
                if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    break true;
                }
                match tls.read(&mut chunk) {
                    Ok(0) | Err(_) => break false,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            if complete {
                let _ = tls.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nmutual",
                );
                tls.conn.send_close_notify();
            }
            let _ = tls.flush();
        }
    });
    (addr, handle)
}

use rustls::pki_types::pem::PemObject;

fn pool(server_ca: &Ca, identity: Option<Identity>) -> ClientPool {
    let mut config = PoolConfig::builder()
        .deadline(Duration::from_secs(5))
        .retry(RetryPolicy::none())
        .tls_built_in_root_certs(false)
        .add_root_certificate(server_ca.issuer.pem());
    if let Some(id) = identity {
        config = config.identity(id);
    }
    ClientPool::new(config.build()).unwrap()
}

#[test]
fn a_server_requiring_a_client_certificate_accepts_the_pools_and_refuses_others() {
    scenario(|| {
        let (server_ca, client_ca, stranger_ca) = (Ca::new(), Ca::new(), Ca::new());
        // One connection per case below.
        let (addr, server_thread) = server(&server_ca, &client_ca, 3);
        let url = format!("https://localhost:{}/", addr.port());

        let (chain, key) = client_ca.leaf("client.test");
        let identity =
            Identity::from_pem_parts(chain.as_bytes(), key.serialize_pem().as_bytes()).unwrap();
        let body = pool(&server_ca, Some(identity))
            .checkout()
            .unwrap()
            .get(&url)
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert_eq!(body, "mutual");

        let err = pool(&server_ca, None)
            .checkout()
            .unwrap()
            .get(&url)
            .send()
            .unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::Tls(TlsFailure::ClientCertificate),
            "{err}"
        );
        assert!(err.is_tls());

        // A certificate from a CA the server does not trust, given as one PEM.
        let (chain, key) = stranger_ca.leaf("client.test");
        let both = format!("{chain}{}", key.serialize_pem());
        let stranger = Identity::from_pem(both.as_bytes()).unwrap();
        assert!(!format!("{stranger:?}").contains("PRIVATE KEY"));
        let err = pool(&server_ca, Some(stranger))
            .checkout()
            .unwrap()
            .get(&url)
            .send()
            .unwrap_err();
        // rustls' server answers an untrusted chain with a decode-level alert that does not
        // name the certificate: a TLS error, typed as such.
        assert!(err.is_tls(), "{err}");
        server_thread.join().unwrap();
    });
}

#[test]
fn without_built_in_roots_only_the_given_roots_are_trusted() {
    scenario(|| {
        // The server's CA is not given: with the webpki roots off nothing vouches for it.
        let (server_ca, client_ca) = (Ca::new(), Ca::new());
        let other = Ca::new();
        let (addr, server_thread) = server(&server_ca, &client_ca, 1);
        let url = format!("https://localhost:{}/", addr.port());
        let err = pool(&other, None)
            .checkout()
            .unwrap()
            .get(&url)
            .send()
            .unwrap_err();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::Tls(TlsFailure::UnknownIssuer | TlsFailure::BadCertificate)
            ),
            "{err}"
        );
        server_thread.join().unwrap();
    });
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_refused_when_the_pool_is_built() {
    scenario(|| {
        let ca = Ca::new();
        let (chain, _key) = ca.leaf("client.test");
        let other_key = KeyPair::generate().unwrap().serialize_pem();
        let identity = Identity::from_pem_parts(chain.as_bytes(), other_key.as_bytes()).unwrap();
        let err = ClientPool::new(PoolConfig::builder().identity(identity).build()).unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::InvalidConfig(_)), "{err}");
    });
}
