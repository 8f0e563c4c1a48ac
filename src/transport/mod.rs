//! The only module that touches `ureq::unversioned` (not semver-stable; ureq is pinned `~3.5`).
//!
//! - [`CountingConnector`] counts connections opened: ureq calls a connector only on a pool
//!   miss, so the count is the number of new connections, and a call whose count did not move
//!   ran on a reused one.
//! - [`TlsConnector`] wraps TCP in rustls with the webpki roots plus the pool's private CAs
//!   (ureq's `RootCerts` is either/or), TLS 1.2+ only, verification always on.
//! - [`ForwardProxyConnector`] sends plain-http requests to an HTTP proxy in absolute form
//!   instead of ureq's `CONNECT` tunnel; `proxy` reads the proxy setting (the environment's
//!   too) and refuses one this build cannot use; `no_proxy` matches `NO_PROXY`, CIDR blocks
//!   included.
//! - [`CachingResolver`] caches lookups: ureq resolves before every request, and spawns a thread
//!   per lookup when a timeout is set. It answers the pool's `resolve` overrides first and asks
//!   the pool's custom resolver, if any, instead of the system's (`dns.rs`).
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
mod forward;
mod framing;
mod heads;
mod no_proxy;
mod proxy;
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
use ureq::config::Config;
use ureq::unversioned::transport::{ConnectProxyConnector, ConnectionDetails, Connector};
use ureq::Agent;

use crate::config::PoolConfig;
use crate::error::{Error, ErrorKind};

use conns::{is_proxy_leg, BufferSizes};
use forward::ForwardProxyConnector;
use heads::SwapConnector;
use no_proxy::NoProxy;
use resolver::CachingResolver;
use tcp::TcpConnector;
use tls::TlsConnector;

pub(crate) use conns::{Connections, StreamDeadline};
pub(crate) use tls::tls_config;

/// One client's ureq agent and what the engine must know about how it connects.
pub(crate) struct ClientAgent {
    pub(crate) agent: Agent,
    /// Whether ureq itself must enforce the call's deadline (through a proxy, whose
    /// connections ureq makes itself; otherwise the transport enforces the deadline and the
    /// connect timeout).
    pub(crate) ureq_timeouts: bool,
    pub(crate) route: Route,
}

/// How a client's requests reach their targets: the proxy's `NO_PROXY` list, or why
/// nothing may be sent at all.
#[derive(Debug, Default)]
pub(crate) struct Route {
    no_proxy: Option<NoProxy>,
    /// Set when the proxy read from the environment for this client cannot be used (it was
    /// usable when the pool was built): every request fails rather than going direct.
    refusal: Option<String>,
}

impl Route {
    /// Whether a request to `uri` goes direct although a proxy is configured: its host is
    /// on the `NO_PROXY` list. The engine then takes the proxy off at the request level.
    pub(crate) fn bypasses(&self, uri: &ureq::http::Uri) -> bool {
        match (&self.no_proxy, uri.host()) {
            (Some(list), Some(host)) => list.matches(host),
            _ => false,
        }
    }

    /// The error every request of this client fails with, if any.
    pub(crate) fn refusal(&self) -> Option<Error> {
        let why = self.refusal.as_ref()?;
        Some(Error::new(ErrorKind::InvalidConfig(why.clone())))
    }
}

/// The ureq agent of one client, wired to this module's connector and resolver. A
/// `Proxy::FromEnv` proxy is read from the environment here, once per client.
pub(crate) fn agent(
    c: &PoolConfig,
    tls: &Arc<ClientConfig>,
    conns: &Arc<Connections>,
    #[cfg(feature = "fuzzing")] script: Option<&Arc<scripted::Script>>,
) -> ClientAgent {
    let (route, proxy) = route(c);
    let ureq_timeouts = proxy.is_some();
    // Only a proxied client connects anywhere but directly: the others keep no second copy.
    let direct = proxy
        .is_some()
        .then(|| Box::new(ureq_config(c, None, ureq_timeouts)));
    let config = ureq_config(c, proxy, ureq_timeouts);
    #[cfg(feature = "fuzzing")]
    if let Some(script) = script {
        let connector = SwapConnector {
            inner: scripted::ScriptedConnector(script.clone()),
            conns: conns.clone(),
            proxy: None,
        };
        let agent = Agent::with_parts(config, connector, scripted::ScriptedResolver);
        return ClientAgent {
            agent,
            ureq_timeouts,
            route,
        };
    }
    let sizes = BufferSizes {
        input: c.input_buffer,
        max_input: c.max_header_size,
        output: c.output_buffer,
    };
    let proxy_uri = config.proxy().map(|p| p.uri().clone());
    let connector = connector(
        tls.clone(),
        conns.clone(),
        sizes,
        c.connect_timeout,
        direct,
        proxy_uri,
    );
    let resolver = CachingResolver::new(
        c.dns_ttl,
        c.dns_negative_ttl,
        conns.clone(),
        c.names.clone(),
    );
    ClientAgent {
        agent: Agent::with_parts(config, connector, resolver),
        ureq_timeouts,
        route,
    }
}

/// The client's route and its proxy, read now. A proxy that cannot be used (the environment
/// changed since the pool checked it) leaves no proxy and a refusal: nothing is sent.
fn route(c: &PoolConfig) -> (Route, Option<ureq::Proxy>) {
    match proxy::setup(&c.proxy) {
        Ok(None) => (Route::default(), None),
        Ok(Some(s)) => {
            let route = Route {
                no_proxy: Some(s.no_proxy),
                refusal: None,
            };
            (route, Some(s.proxy))
        }
        Err(e) => {
            let why = match e.kind() {
                ErrorKind::InvalidConfig(why) => why.clone(),
                other => other.to_string(),
            };
            let route = Route {
                no_proxy: None,
                refusal: Some(why),
            };
            (route, None)
        }
    }
}

/// ureq's configuration for a client: no redirects or status errors of its own, the pool's
/// limits, and ureq's timeouts only when it makes the connections itself (through a proxy).
fn ureq_config(c: &PoolConfig, proxy: Option<ureq::Proxy>, ureq_timeouts: bool) -> Config {
    // ureq's SOCKS connector makes its own socket with fixed-size buffers of this size, which
    // cannot grow like ours: give them room for the largest head accepted, or a head over
    // `input_buffer` would fail as an end of file. Only SOCKS connections use this setting.
    let socks = proxy.as_ref().is_some_and(|p| {
        !matches!(
            p.protocol(),
            ureq::ProxyProtocol::Http | ureq::ProxyProtocol::Https
        )
    });
    let ureq_input = if socks {
        c.input_buffer.max(c.max_header_size)
    } else {
        c.input_buffer
    };
    Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .allow_non_standard_methods(true)
        .proxy(proxy)
        .user_agent(c.user_agent.as_str())
        .accept_encoding(crate::decode::ACCEPT_ENCODING)
        .timeout_global(ureq_timeouts.then_some(c.deadline))
        .timeout_connect(ureq_timeouts.then_some(c.connect_timeout))
        .max_idle_connections(c.max_idle)
        .max_idle_connections_per_host(c.max_idle_per_host)
        .max_idle_age(c.idle_age)
        .input_buffer_size(ureq_input)
        .output_buffer_size(c.output_buffer)
        .max_response_header_size(c.max_header_size)
        .build()
}

/// Refuses a proxy the pool cannot use (an invalid URL, a SOCKS proxy without the `socks`
/// feature), from `Proxy::Url` or from the environment for `Proxy::FromEnv`, when the pool
/// is built rather than per request.
pub(crate) fn check_proxy(p: &crate::config::Proxy) -> Result<(), Error> {
    proxy::setup(p).map(drop)
}

/// The connector chain of one client: forwarding to an HTTP proxy (http targets), SOCKS
/// (feature `socks`), proxy CONNECT (https targets), TCP, TLS, counted. `direct` is the
/// agent's configuration without its proxy, for connecting to the proxy itself (only with a
/// proxy); `proxy` the proxy's URI, if any.
pub(crate) fn connector(
    tls: Arc<ClientConfig>,
    conns: Arc<Connections>,
    sizes: BufferSizes,
    connect_timeout: Duration,
    direct: Option<Box<Config>>,
    proxy: Option<ureq::http::Uri>,
) -> impl Connector {
    let chain = ().chain(ForwardProxyConnector { direct });
    // ureq's SOCKS connector: a SOCKS proxy's connection is made before TCP, and TCP passes
    // it on (it never dials the target itself while a proxy is configured).
    #[cfg(feature = "socks")]
    let chain = chain.chain(ureq::unversioned::transport::SocksConnector::default());
    let chain = chain
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
            conns: conns.clone(),
        });
    CountingConnector {
        inner: SwapConnector {
            inner: chain,
            conns: conns.clone(),
            proxy: proxy.clone(),
        },
        conns,
        proxy,
    }
}

/// Counts the connections its inner connector opens.
#[derive(Debug)]
pub(crate) struct CountingConnector<C> {
    inner: C,
    conns: Arc<Connections>,
    /// The proxy's URI. The proxy connectors make their connection to the proxy through the
    /// whole connector again (ureq's `run_connector`); that inner leg is part of the one
    /// connection counted when the outer call returns, not a second one.
    proxy: Option<ureq::http::Uri>,
}

impl<C: Connector> Connector for CountingConnector<C> {
    type Out = C::Out;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let out = self.inner.connect(details, chained)?;
        if out.is_some() && !is_proxy_leg(self.proxy.as_ref(), details) {
            self.conns.opened.fetch_add(1, Ordering::Relaxed);
        }
        Ok(out)
    }
}
