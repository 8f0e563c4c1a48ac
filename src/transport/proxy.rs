//! Which proxy a client uses: `Proxy::Url` as given, or `Proxy::FromEnv` read from the
//! environment when each client is created, with the `NO_PROXY` list that lets targets go
//! direct. A proxy the build cannot use is refused (`InvalidConfig`) rather than bypassed:
//! a request must never go around a proxy the user configured.

use ureq::ProxyProtocol;

use crate::config::Proxy;
use crate::error::{Error, ErrorKind};
use crate::url::redact_url;

use super::no_proxy::NoProxy;

/// The variables `Proxy::FromEnv` reads, in ureq's order: the first one set (and not empty)
/// is the proxy for every target, whatever its scheme.
const PROXY_VARS: [&str; 6] = [
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
];

/// A client's proxy: where requests go, and which targets bypass it.
#[derive(Debug, Clone)]
pub(crate) struct ProxySetup {
    /// ureq's form of the proxy, without ureq's own `NO_PROXY` list: bypassing is decided
    /// by `no_proxy` alone (ureq's list knows no CIDR blocks).
    pub(crate) proxy: ureq::Proxy,
    pub(crate) no_proxy: NoProxy,
}

/// The proxy of `p`, read now: `Ok(None)` for a direct connection.
///
/// # Errors
///
/// `InvalidConfig` for a proxy URL that does not parse, or a SOCKS proxy when the `socks`
/// feature is off. The message names the URL without its password.
pub(crate) fn setup(p: &Proxy) -> Result<Option<ProxySetup>, Error> {
    let (url, source, no_proxy) = match p {
        Proxy::None => return Ok(None),
        Proxy::Url(u) => (u.clone(), "the proxy url", NoProxy::default()),
        Proxy::FromEnv => {
            let Some((var, url)) = PROXY_VARS.iter().find_map(|v| {
                std::env::var(v)
                    .ok()
                    .filter(|u| !u.trim().is_empty())
                    .map(|u| (*v, u))
            }) else {
                return Ok(None);
            };
            let no_proxy = ["NO_PROXY", "no_proxy"]
                .iter()
                .find_map(|v| std::env::var(v).ok())
                .map_or_else(NoProxy::default, |l| NoProxy::parse(&l));
            (url, var, no_proxy)
        }
    };
    let url = url.trim();
    let invalid = |why: &str| {
        Error::new(ErrorKind::InvalidConfig(format!(
            "{source} {:?} {why}",
            redact_url(url)
        )))
    };
    let proxy = ureq::Proxy::new(url).map_err(|_| invalid("is invalid"))?;
    if unsupported(proxy.protocol()) {
        return Err(invalid(
            "is a SOCKS proxy, which needs the `socks` cargo feature of http-sentinel; \
             refusing to connect around it",
        ));
    }
    Ok(Some(ProxySetup { proxy, no_proxy }))
}

/// Whether this build has no connector for the protocol. Without one, ureq would dial the
/// target directly (socks4, socks5: it resolves the target itself) or fail with an invented
/// "connection refused" (socks4a, socks5h).
fn unsupported(p: ProxyProtocol) -> bool {
    let socks = matches!(
        p,
        ProxyProtocol::Socks4
            | ProxyProtocol::Socks4A
            | ProxyProtocol::Socks5
            | ProxyProtocol::Socks5h
    );
    socks && !cfg!(feature = "socks")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socks_urls_are_refused_without_the_feature_and_passwords_never_shown() {
        for scheme in ["socks4", "socks4a", "socks5", "socks5h", "socks"] {
            let url = format!("{scheme}://user:hunter2@127.0.0.1:1080");
            let got = setup(&Proxy::Url(url.clone()));
            if cfg!(feature = "socks") {
                assert!(got.unwrap().is_some(), "{url}");
            } else {
                let err = got.unwrap_err();
                assert!(matches!(err.kind(), ErrorKind::InvalidConfig(_)), "{err:?}");
                let shown = format!("{err} {err:?}");
                assert!(shown.contains("SOCKS"), "{shown}");
                assert!(!shown.contains("hunter2"), "{shown}");
            }
        }
    }

    #[test]
    fn http_proxies_are_accepted_and_bad_urls_refused_without_their_password() {
        let ok = setup(&Proxy::Url("http://u:p@127.0.0.1:3128".into())).unwrap();
        assert_eq!(ok.unwrap().proxy.protocol(), ProxyProtocol::Http);
        let err = setup(&Proxy::Url("ftp://u:hunter2@proxy.test:21".into())).unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::InvalidConfig(_)), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("hunter2"));
        assert!(setup(&Proxy::None).unwrap().is_none());
    }
}
