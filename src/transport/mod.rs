//! The only module that touches `ureq::unversioned` (not semver-stable; ureq is pinned `~3.5`).
//!
//! - [`CountingConnector`] counts connections opened: ureq calls a connector only on a pool
//!   miss, so the count is the number of new connections, and a call whose count did not move
//!   ran on a reused one.
//! - [`TlsConnector`] wraps TCP in rustls with the webpki roots plus the pool's private CAs
//!   (ureq's `RootCerts` is either/or), TLS 1.2+ only, verification always on.
//! - [`CachingResolver`] caches lookups: ureq resolves before every request, and spawns a thread
//!   per lookup when a timeout is set.
//!
//! - [`SwapConnector`] wraps every connection, whatever carries it, in the head filter that
//!   keeps secrets out of ureq (and so out of its trace wire dumps).
//!
//! One file per piece: `conns` (a client's connection bookkeeping and the deadline it
//! enforces), `framing` (the checks on response heads that ureq-proto leaves out), `tcp`
//! (sockets with armed timeouts and a one-syscall liveness probe), `tls`
//! (rustls), `buffers` (connection buffers that grow on demand), `resolver` (the caching
//! resolver), `secrets` (placeholders and what they stand for), `heads` (the filter that
//! swaps them in request heads and blanks secrets in response heads); this file wires them
//! into a ureq `Agent`.

mod buffers;
mod conns;
mod framing;
mod heads;
mod resolver;
#[cfg(feature = "fuzzing")]
pub(crate) mod scripted;
mod secrets;
mod tcp;
mod tls;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use ureq::unversioned::transport::{ConnectProxyConnector, ConnectionDetails, Connector};
use ureq::Agent;

use crate::config::PoolConfig;
use crate::error::{Error, ErrorKind};

use conns::BufferSizes;
use heads::SwapConnector;
use resolver::CachingResolver;
use tcp::TcpConnector;
use tls::TlsConnector;

pub(crate) use conns::Connections;
pub(crate) use tls::tls_config;

/// The ureq agent of one client, wired to this module's connector and resolver, and whether
/// ureq itself must enforce the call's deadline (through a proxy, whose connections ureq
/// makes itself; otherwise the transport enforces the deadline and the connect timeout).
pub(crate) fn agent(
    c: &PoolConfig,
    tls: &Arc<ClientConfig>,
    conns: &Arc<Connections>,
    #[cfg(feature = "fuzzing")] script: Option<&Arc<scripted::Script>>,
) -> (Agent, bool) {
    let proxy = match &c.proxy {
        crate::config::Proxy::None => None,
        crate::config::Proxy::FromEnv => ureq::Proxy::try_from_env(),
        // Checked when the pool was built.
        crate::config::Proxy::Url(u) => ureq::Proxy::new(u).ok(),
    };
    let ureq_timeouts = proxy.is_some();
    let config = Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .allow_non_standard_methods(true)
        .proxy(proxy)
        .user_agent(c.user_agent.as_str())
        .timeout_global(ureq_timeouts.then_some(c.deadline))
        .timeout_connect(ureq_timeouts.then_some(c.connect_timeout))
        .max_idle_connections(c.max_idle)
        .max_idle_connections_per_host(c.max_idle_per_host)
        .max_idle_age(c.idle_age)
        .input_buffer_size(c.input_buffer)
        .output_buffer_size(c.output_buffer)
        .max_response_header_size(c.max_header_size)
        .build();
    #[cfg(feature = "fuzzing")]
    if let Some(script) = script {
        let connector = SwapConnector {
            inner: scripted::ScriptedConnector(script.clone()),
            conns: conns.clone(),
        };
        let agent = Agent::with_parts(config, connector, scripted::ScriptedResolver);
        return (agent, ureq_timeouts);
    }
    let sizes = BufferSizes {
        input: c.input_buffer,
        max_input: c.max_header_size,
        output: c.output_buffer,
    };
    let connector = connector(tls.clone(), conns.clone(), sizes, c.connect_timeout);
    let resolver = CachingResolver::new(c.dns_ttl, c.dns_negative_ttl, conns.clone());
    (
        Agent::with_parts(config, connector, resolver),
        ureq_timeouts,
    )
}

/// Refuses a proxy URL that ureq cannot use, when the pool is built rather than per request.
pub(crate) fn check_proxy(proxy: &crate::config::Proxy) -> Result<(), Error> {
    if let crate::config::Proxy::Url(u) = proxy {
        ureq::Proxy::new(u)
            .map_err(|_| Error::new(ErrorKind::InvalidConfig("proxy url is invalid".into())))?;
    }
    Ok(())
}

/// The connector chain of one client: proxy CONNECT, TCP, TLS, counted.
pub(crate) fn connector(
    tls: Arc<ClientConfig>,
    conns: Arc<Connections>,
    sizes: BufferSizes,
    connect_timeout: Duration,
) -> impl Connector {
    let chain = ()
        .chain(ConnectProxyConnector::default())
        .chain(TcpConnector {
            sizes,
            conns: conns.clone(),
            connect_timeout,
        })
        .chain(TlsConnector {
            config: tls,
            sizes,
            connect_timeout,
        });
    CountingConnector {
        inner: SwapConnector {
            inner: chain,
            conns: conns.clone(),
        },
        conns,
    }
}

/// Counts the connections its inner connector opens.
#[derive(Debug)]
pub(crate) struct CountingConnector<C> {
    inner: C,
    conns: Arc<Connections>,
}

impl<C: Connector> Connector for CountingConnector<C> {
    type Out = C::Out;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let out = self.inner.connect(details, chained)?;
        if out.is_some() {
            self.conns.opened.fetch_add(1, Ordering::Relaxed);
        }
        Ok(out)
    }
}
