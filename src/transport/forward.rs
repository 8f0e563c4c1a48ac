//! Plain-http targets through an HTTP proxy, forwarded in absolute form (RFC 9112 §3.2.2:
//! `GET http://host:port/path HTTP/1.1`, sent to the proxy) rather than tunnelled with
//! `CONNECT`, which ureq uses for every target and which common proxy setups (Squid's
//! default `http_access deny CONNECT !SSL_ports`) refuse for any port but 443. curl and Go
//! forward http the same way; https targets keep `CONNECT` (ureq's `ConnectProxyConnector`).
//!
//! ureq-proto always writes the request line in origin form (`GET /path`), so the transport
//! rewrites the first line of each request on its way out, and adds `Proxy-Authorization`
//! from the proxy URL's credentials (RFC 9110 §11.7.1) unless the request has one already.

use std::fmt;

use ureq::http::uri::Scheme;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, NextTimeout, Transport,
};
use ureq::ProxyProtocol;

use crate::url::basic_auth;

/// Connects an http target's request to the HTTP proxy itself, as a forwarding connection.
pub(crate) struct ForwardProxyConnector {
    /// The agent's configuration without its proxy: the connection to the proxy is made by
    /// the rest of the chain (TCP, and TLS for an https proxy) as a direct one. `None` for a
    /// client without a proxy, which never forwards.
    pub(super) direct: Option<Box<ureq::config::Config>>,
}

impl fmt::Debug for ForwardProxyConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardProxyConnector").finish()
    }
}

impl<In: Transport> Connector<In> for ForwardProxyConnector {
    type Out = Either<In, Box<dyn Transport>>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        if let Some(t) = chained {
            return Ok(Some(Either::A(t)));
        }
        let Some(proxy) = details.config.proxy() else {
            return Ok(None);
        };
        let http_proxy = matches!(proxy.protocol(), ProxyProtocol::Http | ProxyProtocol::Https);
        let Some(direct) = self.direct.as_deref() else {
            return Ok(None);
        };
        if !http_proxy || details.uri.scheme() != Some(&Scheme::HTTP) {
            return Ok(None);
        }
        let Some(authority) = details.uri.authority() else {
            return Err(ureq::Error::BadUri("no host in url".into()));
        };
        let proxy_uri = proxy.uri();
        let addrs = details
            .resolver
            .resolve(proxy_uri, direct, details.timeout)?;
        let to_proxy = ConnectionDetails {
            uri: proxy_uri,
            addrs,
            config: direct,
            request_level: details.request_level,
            resolver: details.resolver,
            now: details.now,
            timeout: details.timeout,
            current_time: details.current_time.clone(),
            run_connector: details.run_connector.clone(),
            register_shutdown: details.register_shutdown.clone(),
        };
        let inner = (details.run_connector)(&to_proxy)?;
        let proxy_auth = match (proxy.username(), proxy.password()) {
            (None, None) => None,
            (user, pass) => {
                let userinfo = format!("{}:{}", user.unwrap_or(""), pass.unwrap_or(""));
                let value =
                    basic_auth(userinfo.as_bytes()).map_err(|_| ureq::Error::InvalidProxyUrl)?;
                let mut line = b"Proxy-Authorization: ".to_vec();
                line.extend_from_slice(value.as_bytes());
                line.extend_from_slice(b"\r\n");
                Some(line)
            }
        };
        Ok(Some(Either::B(Box::new(ForwardTransport {
            inner,
            origin: format!("http://{authority}"),
            proxy_auth,
            at_request_start: true,
        }))))
    }
}

/// A connection to the proxy that carries requests for one target origin (ureq pools
/// connections by target scheme and authority, so it never serves another one).
struct ForwardTransport {
    inner: Box<dyn Transport>,
    /// `http://host:port` of the target, put in front of each request's path.
    origin: String,
    /// The `Proxy-Authorization` line to add, credentials included.
    proxy_auth: Option<Vec<u8>>,
    /// The next output starts a request: true on a new connection and whenever the pool
    /// hands the connection to a request (ureq probes it with `is_open` then). Later output
    /// of the same request (the rest of a large head, the body, a body after
    /// `100 Continue`) is passed through untouched.
    at_request_start: bool,
}

impl fmt::Debug for ForwardTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The credentials stay out of Debug output.
        f.debug_struct("ForwardTransport")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Transport for ForwardTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if !std::mem::take(&mut self.at_request_start) {
            return self.inner.transmit_output(amount, timeout);
        }
        let output = &self.inner.buffers().output()[..amount];
        let Some(head) = absolute_form(output, &self.origin, self.proxy_auth.as_deref()) else {
            return self.inner.transmit_output(amount, timeout);
        };
        send_all(&mut *self.inner, &head, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.at_request_start = true;
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// Writes `bytes` through `t`'s output buffer, a buffer-full at a time.
fn send_all(t: &mut dyn Transport, bytes: &[u8], timeout: NextTimeout) -> Result<(), ureq::Error> {
    let size = t.buffers().output().len();
    if size == 0 {
        return Err(ureq::Error::Io(std::io::ErrorKind::WriteZero.into()));
    }
    for chunk in bytes.chunks(size) {
        t.buffers().output()[..chunk.len()].copy_from_slice(chunk);
        t.transmit_output(chunk.len(), timeout)?;
    }
    Ok(())
}

/// The start of a request rewritten for a forward proxy: the origin-form target of the
/// request line (`GET /p?q HTTP/1.1`) made absolute (`GET http://h:1/p?q HTTP/1.1`), and
/// `proxy_auth` inserted after it unless the head already has a `Proxy-Authorization`.
/// `None` when `output` does not start with an origin-form request line (nothing to do).
pub(crate) fn absolute_form(
    output: &[u8],
    origin: &str,
    proxy_auth: Option<&[u8]>,
) -> Option<Vec<u8>> {
    let space = output.iter().position(|&b| b == b' ')?;
    if output.get(space + 1) != Some(&b'/') {
        return None;
    }
    let line_end = output.windows(2).position(|w| w == b"\r\n")? + 2;
    if line_end <= space {
        return None;
    }
    let mut head =
        Vec::with_capacity(output.len() + origin.len() + proxy_auth.map_or(0, <[u8]>::len));
    head.extend_from_slice(&output[..=space]);
    head.extend_from_slice(origin.as_bytes());
    head.extend_from_slice(&output[space + 1..line_end]);
    let has_auth = output[line_end..]
        .split(|&b| b == b'\n')
        .take_while(|l| *l != b"\r" && !l.is_empty())
        .any(|l| l.len() > 20 && l[..20].eq_ignore_ascii_case(b"proxy-authorization:"));
    if let (Some(auth), false) = (proxy_auth, has_auth) {
        head.extend_from_slice(auth);
    }
    head.extend_from_slice(&output[line_end..]);
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(out: &str, auth: Option<&str>) -> Option<String> {
        absolute_form(
            out.as_bytes(),
            "http://h.test:8080",
            auth.map(str::as_bytes),
        )
        .map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn the_request_line_becomes_absolute_and_the_rest_is_kept() {
        let out = "GET /p?q=1 HTTP/1.1\r\nhost: h.test:8080\r\n\r\nbody";
        assert_eq!(
            form(out, None).unwrap(),
            "GET http://h.test:8080/p?q=1 HTTP/1.1\r\nhost: h.test:8080\r\n\r\nbody"
        );
        let auth = "Proxy-Authorization: Basic dTpw\r\n";
        assert_eq!(
            form("POST / HTTP/1.1\r\nhost: h\r\n\r\n", Some(auth)).unwrap(),
            format!("POST http://h.test:8080/ HTTP/1.1\r\n{auth}host: h\r\n\r\n")
        );
    }

    #[test]
    fn a_proxy_authorization_of_the_request_is_not_doubled() {
        let out = "GET / HTTP/1.1\r\nPROXY-AUTHORIZATION: Basic eDp5\r\n\r\n";
        let got = form(out, Some("Proxy-Authorization: Basic dTpw\r\n")).unwrap();
        assert_eq!(got.matches("Basic").count(), 1, "{got}");
        assert!(got.contains("eDp5"));
        // Only the head counts: a body that looks like the header does not.
        let out = "GET / HTTP/1.1\r\nhost: h\r\n\r\nproxy-authorization: x\r\n";
        let got = form(out, Some("Proxy-Authorization: Basic dTpw\r\n")).unwrap();
        assert!(got.contains("dTpw"), "{got}");
    }

    #[test]
    fn output_that_is_not_an_origin_form_request_line_is_left_alone() {
        for out in [
            "",
            "GET",
            "GET /p",
            "OPTIONS * HTTP/1.1\r\n\r\n",
            "abc def\r\n",
            "\r\n /x",
        ] {
            assert_eq!(form(out, None), None, "{out:?}");
        }
    }
}
