//! A small non-async service that embeds http-sentinel: std `TcpListener`, a thread per
//! connection, no framework. It answers `GET /quote/<name>` by calling an upstream through one
//! shared `ClientPool` (each connection thread uses its own client via `with_client`), and
//! serves the pool's metrics on `GET /metrics` in the Prometheus text format.
//!
//! ```text
//! cargo run --release --example service                       # embedded upstream, 127.0.0.1:8080
//! cargo run --release --example service -- --listen 127.0.0.1:9000 --upstream http://127.0.0.1:8081
//! curl -s 127.0.0.1:8080/quote/abc; curl -s 127.0.0.1:8080/metrics
//! ```

#[path = "../tests/support/server.rs"]
pub mod server;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use http_sentinel::{ClientPool, PoolConfig};

/// Serves connections from `listener` forever, one thread each.
pub fn serve(listener: TcpListener, pool: ClientPool, upstream: String) {
    for stream in listener.incoming().flatten() {
        let pool = pool.clone();
        let upstream = upstream.clone();
        std::thread::spawn(move || {
            let _ = handle(stream, &pool, &upstream);
        });
    }
}

fn handle(stream: TcpStream, pool: &ClientPool, upstream: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        // Skip the request headers; this service's requests have no body.
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
                break;
            }
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (status, content_type, body) = route(method, path, pool, upstream);
        write!(
            writer,
            "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            if status < 400 { "OK" } else { "Error" },
            body.len()
        )?;
        writer.write_all(&body)?;
    }
}

fn route(
    method: &str,
    path: &str,
    pool: &ClientPool,
    upstream: &str,
) -> (u16, &'static str, Vec<u8>) {
    const TEXT: &str = "text/plain; charset=utf-8";
    match (method, path) {
        ("GET", "/metrics") => (
            200,
            "text/plain; version=0.0.4",
            pool.stats().to_prometheus().into_bytes(),
        ),
        ("GET", p) if p.starts_with("/quote/") => {
            let url = format!("{upstream}{p}");
            // The thread's own client: no lock shared with other connection threads.
            let fetched = pool
                .with_client(|client| client.get(&url).send()?.error_for_status()?.bytes())
                .and_then(|r| r);
            match fetched {
                Ok(body) => (200, TEXT, body),
                Err(e) => (502, TEXT, format!("upstream failed: {e}\n").into_bytes()),
            }
        }
        _ => (404, TEXT, b"not found\n".to_vec()),
    }
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let listen = flag("--listen").unwrap_or_else(|| "127.0.0.1:8080".into());
    let embedded = flag("--upstream").is_none().then(|| {
        server::TestServer::builder()
            .fallback(server::Behaviour::Respond(server::Reply::text(
                200, "42.00\n",
            )))
            .start()
    });
    let upstream = flag("--upstream").unwrap_or_else(|| {
        embedded
            .as_ref()
            .map(|s| format!("http://{}", s.addr()))
            .unwrap_or_default()
    });
    let pool = ClientPool::new(PoolConfig::from_env()?.build())?;
    let listener = TcpListener::bind(&listen)?;
    eprintln!(
        "listening on http://{listen} (upstream {upstream}); GET /quote/<name>, GET /metrics"
    );
    serve(listener, pool, upstream);
    Ok(())
}
