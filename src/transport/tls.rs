//! TLS: the rustls configuration of a pool and the connector that wraps TCP in it.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, NextTimeout, Transport, TransportAdapter,
};

use crate::config::PoolConfig;
use crate::error::{Error, ErrorKind, Refused};
use crate::telemetry::Phase;

use super::buffers::GrowBuffers;
use super::conns::{BufferSizes, Connections};

/// Builds the rustls configuration once per pool: the webpki roots (unless turned off), plus
/// the private CAs, and the client identity if any.
///
/// # Errors
///
/// `InvalidConfig` when an extra root certificate cannot be parsed.
pub(crate) fn tls_config(config: &PoolConfig) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    if config.built_in_roots {
        roots.roots = webpki_roots::TLS_SERVER_ROOTS.to_vec();
    }
    for cert in &config.extra_roots {
        let der = if cert.starts_with(b"-----BEGIN") {
            ureq::tls::Certificate::from_pem(cert)
                .map_err(|e| bad_root(&e))?
                .der()
                .to_vec()
        } else {
            cert.to_vec()
        };
        roots
            .add(CertificateDer::from(der))
            .map_err(|e| bad_root(&e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| bad_root(&e))?
        .with_root_certificates(roots);
    let tls = match &config.identity {
        None => tls.with_no_client_auth(),
        // A key that does not fit the certificate (or an unsupported key type) is refused
        // here, when the pool is built, not at the first handshake.
        Some(id) => tls
            .with_client_auth_cert(id.chain(), id.key())
            .map_err(|e| Error::new(ErrorKind::InvalidConfig(format!("client identity: {e}"))))?,
    };
    Ok(Arc::new(tls))
}

fn bad_root(e: &dyn fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidConfig(format!("root certificate: {e}")))
}

/// Wraps a TCP transport in rustls when the URL is https.
pub(crate) struct TlsConnector {
    pub(super) config: Arc<ClientConfig>,
    pub(super) sizes: BufferSizes,
    pub(super) connect_timeout: Duration,
    pub(super) conns: Arc<Connections>,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector").finish()
    }
}

// Takes the TCP connector's box as it is: boxing it again (as a generic `In` would need) puts
// a second virtual call in front of every read, write and probe.
impl Connector<Box<dyn Transport>> for TlsConnector {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(transport));
        }
        self.handshake(details, transport).map(Some)
    }
}

impl TlsConnector {
    /// Wraps `transport` in a TLS session and completes the handshake. Out of line: the
    /// session is built on this function's stack, several KiB deep, which a plain http
    /// connection (passed through above) then never touches, so an idle worker's thread keeps
    /// that much less stack resident.
    #[inline(never)]
    fn handshake(
        &self,
        details: &ConnectionDetails,
        transport: Box<dyn Transport>,
    ) -> Result<Box<dyn Transport>, ureq::Error> {
        let host = details.uri.host().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| ureq::Error::Tls("invalid server name for tls"))?;
        let mut conn = ClientConnection::new(self.config.clone(), name)?;
        let mut sock = TransportAdapter::new(transport, details.current_time.clone());
        // The handshake is part of connecting: bounded by the connect timeout (and, through
        // the TCP transport, by the call's deadline), and reported as a connect timeout.
        let after = match details.timeout.not_zero() {
            Some(t) => (*t).min(self.connect_timeout),
            None => self.connect_timeout,
        };
        sock.set_timeout(NextTimeout {
            after: after.into(),
            reason: ureq::Timeout::Connect,
            ..NextTimeout::default()
        });
        let started = Instant::now();
        conn.complete_io(&mut sock)?;
        self.conns.clock().record(Phase::Tls, started.elapsed());
        let buffers = GrowBuffers::new(self.sizes, true);
        Ok(Box::new(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        }))
    }
}

struct TlsTransport {
    buffers: GrowBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport").finish()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        self.buffers.request_sent();
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.append_buf()?;
        let amount = match self.stream.read(input) {
            // rustls: the TCP stream ended without close_notify. ureq takes UnexpectedEof as
            // the end of a body that only the close ends, but without close_notify an
            // attacker (or a middlebox) may have cut it short: RFC 8446 §6.1, and curl and Go
            // fail such a body too. Before a response (a pooled connection the server closed)
            // and within a framed body, ureq's handling stays right.
            Err(e)
                if e.kind() == io::ErrorKind::UnexpectedEof
                    && self.buffers.in_close_delimited_body() =>
            {
                return Err(ureq::Error::Other(Box::new(Refused::new(
                    ErrorKind::Io {
                        kind: io::ErrorKind::UnexpectedEof,
                        may_have_been_processed: true,
                    },
                    "tls connection closed without close_notify: the body may be truncated",
                ))));
            }
            r => r?,
        };
        self.buffers.appended(amount)?;
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.buffers.reusable() && self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
