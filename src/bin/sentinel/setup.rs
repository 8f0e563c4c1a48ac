//! The client pool a run uses, configured from the command line on top of the library's
//! `SENTINEL_*` environment overrides.

use std::sync::Arc;

use http_sentinel::{BreakerConfig, ClientPool, PoolConfig, Proxy, RetryPolicy};

use crate::args::Options;
use crate::exit;
use crate::resolve;
use crate::summary::Reuse;

/// Builds the pool; the error carries the exit code: 77 for a CA file that cannot be read or
/// parsed, 5 for an unusable proxy, 2 for a bad `SENTINEL_*` value.
pub(crate) fn pool(opts: &Options, reuse: Arc<Reuse>) -> Result<ClientPool, (u8, String)> {
    let usage = |e: http_sentinel::Error| (exit::USAGE, e.to_string());
    let mut config = PoolConfig::from_env()
        .map_err(usage)?
        .max_clients(opts.workers)
        .retry(RetryPolicy::new().with_max_attempts(opts.attempts))
        .event_handler(reuse);
    // curl has no body limit; the library's 10 MiB default suits a service, not a download
    // tool. The body is streamed, never held, so no limit costs no memory.
    match opts.max_filesize {
        Some(n) => config = config.body_limit(n),
        None if std::env::var_os("SENTINEL_BODY_LIMIT").is_none() => {
            config = config.body_limit(u64::MAX)
        }
        None => {}
    }
    if let Some(d) = opts.deadline {
        config = config.deadline(d);
    }
    if let Some(d) = opts.connect_timeout {
        config = config.connect_timeout(d);
    }
    if let Some(n) = opts.max_redirs {
        config = config.max_redirects(n);
    }
    if !opts.breaker {
        config = config.breaker(BreakerConfig::disabled());
    }
    if let Some(path) = &opts.cacert {
        let pem = std::fs::read(path)
            .map_err(|e| (exit::CACERT, format!("cannot read --cacert {path}: {e}")))?;
        // Checked on its own first, so a bad file is told apart from a bad proxy.
        ClientPool::new(PoolConfig::builder().add_root_certificate(&pem).build())
            .map_err(|e| (exit::CACERT, format!("--cacert {path}: {e}")))?;
        config = config.add_root_certificate(pem);
    }
    let entries = opts
        .resolve
        .iter()
        .map(|r| resolve::parse(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| (exit::USAGE, m))?;
    config = resolve::apply(config, &entries);
    if let Some(proxy) = &opts.proxy {
        // curl takes "host:port" as an http proxy.
        let url = match proxy.contains("://") {
            true => proxy.clone(),
            false => format!("http://{proxy}"),
        };
        config = config.proxy(Proxy::Url(url));
    }
    ClientPool::new(config.build()).map_err(|e| match opts.proxy {
        Some(_) => (exit::PROXY, format!("--proxy: {e}")),
        None => (exit::USAGE, e.to_string()),
    })
}
