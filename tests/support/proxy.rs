#![allow(dead_code)]
//! A tiny HTTP forward proxy on loopback, for the proxy tests: it logs the head of every
//! request it receives (request line and headers, as sent), forwards absolute-form requests
//! to their loopback target, one request per connection, and answers `CONNECT` with a
//! configurable status (200 tunnels to the loopback target; anything else refuses).
//!
//! Targets other than 127.0.0.1 are refused with 403: nothing leaves the machine. Dropping
//! the proxy shuts down every socket it holds and joins its threads (bounded by socket
//! timeouts), so `support::scenario`'s descriptor check holds.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// One request head as the proxy received it.
#[derive(Debug, Clone)]
pub struct ProxiedRequest {
    /// The request line without CRLF, e.g. `GET http://127.0.0.1:1/p HTTP/1.1`.
    pub line: String,
    pub headers: Vec<(String, String)>,
    /// 1-based id of the client connection, in accept order.
    pub connection: usize,
}

impl ProxiedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    log: Mutex<Vec<ProxiedRequest>>,
    connections: AtomicUsize,
    sockets: Mutex<Vec<TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stopping: AtomicBool,
    connect_status: AtomicUsize,
}

/// The forward proxy; stops when dropped.
pub struct ForwardProxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl ForwardProxy {
    /// Starts a proxy on `127.0.0.1:0` that answers `CONNECT` with `connect_status`.
    pub fn start(connect_status: u16) -> ForwardProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        shared
            .connect_status
            .store(usize::from(connect_status), Ordering::SeqCst);
        let for_accept = shared.clone();
        let accept = thread::spawn(move || {
            for (id, stream) in listener.incoming().enumerate() {
                if for_accept.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                for_accept.connections.fetch_add(1, Ordering::SeqCst);
                track(&for_accept, &stream);
                let s = for_accept.clone();
                let handle = thread::spawn(move || {
                    let _ = serve(&s, stream, id + 1);
                });
                for_accept.threads.lock().unwrap().push(handle);
            }
        });
        ForwardProxy {
            shared,
            addr,
            accept: Some(accept),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` with optional `user:password@` credentials.
    pub fn url(&self, userinfo: Option<&str>) -> String {
        match userinfo {
            Some(u) => format!("http://{u}@{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// The request heads received so far, in arrival order.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.shared.log.lock().unwrap().clone()
    }

    pub fn connections_accepted(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        shutdown_all(&self.shared.sockets);
        let threads = std::mem::take(&mut *self.shared.threads.lock().unwrap());
        for t in threads {
            let _ = t.join();
        }
    }
}

fn track(shared: &Shared, stream: &TcpStream) {
    if let Ok(clone) = stream.try_clone() {
        shared.sockets.lock().unwrap().push(clone);
    }
}

/// Shuts down every tracked socket and drops the clones.
pub fn shutdown_all(sockets: &Mutex<Vec<TcpStream>>) {
    for s in std::mem::take(&mut *sockets.lock().unwrap()) {
        let _ = s.shutdown(Shutdown::Both);
    }
}

/// A request line and its headers, each without CRLF.
type Head = (String, Vec<(String, String)>);

/// Reads one request head.
fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let line = line.trim_end().to_string();
    let mut headers = Vec::new();
    for _ in 0..200 {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim_end().is_empty() {
            return Ok(Some((line, headers)));
        }
        if let Some((n, v)) = h.trim_end().split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    Err(io::ErrorKind::InvalidData.into())
}

fn serve(shared: &Shared, client: TcpStream, connection: usize) -> io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let Some((line, headers)) = read_head(&mut reader)? else {
        return Ok(());
    };
    shared.log.lock().unwrap().push(ProxiedRequest {
        line: line.clone(),
        headers: headers.clone(),
        connection,
    });
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut client_w = client.try_clone()?;
    if method == "CONNECT" {
        let status = shared.connect_status.load(Ordering::SeqCst);
        let upstream = (status == 200).then(|| loopback(target)).flatten();
        let Some(upstream) = upstream else {
            write!(
                client_w,
                "HTTP/1.1 {status} Refused\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )?;
            return Ok(());
        };
        let upstream = TcpStream::connect(upstream)?;
        track(shared, &upstream);
        client_w.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        return relay(reader, client_w, upstream);
    }
    // Absolute form: http://host:port/path.
    let Some(rest) = target.strip_prefix("http://") else {
        write!(
            client_w,
            "HTTP/1.1 400 Not Absolute\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )?;
        return Ok(());
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some(addr) = loopback(authority) else {
        write!(
            client_w,
            "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )?;
        return Ok(());
    };
    let mut upstream = TcpStream::connect(addr)?;
    track(shared, &upstream);
    let path = if path.is_empty() { "/" } else { path };
    let version = parts.next().unwrap_or("HTTP/1.1");
    let mut head = format!("{method} {path} {version}\r\n");
    for (n, v) in &headers {
        // Hop-by-hop: the proxy's credentials and connection options are not forwarded.
        let hop = ["proxy-authorization", "proxy-connection", "connection"];
        if !hop.iter().any(|h| n.eq_ignore_ascii_case(h)) {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    head.push_str("connection: close\r\n\r\n");
    upstream.write_all(head.as_bytes())?;
    relay(reader, client_w, upstream)
}

/// `127.0.0.1:port` (or `localhost:port`) as an address; anything else is refused.
fn loopback(authority: &str) -> Option<SocketAddr> {
    let (host, port) = authority.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    matches!(host, "127.0.0.1" | "localhost").then(|| SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Copies bytes both ways until both directions are done: the client's remaining input to
/// `upstream` on a second thread, `upstream`'s output back to the client here.
pub fn relay(
    mut from_client: impl Read + Send + 'static,
    mut to_client: TcpStream,
    upstream: TcpStream,
) -> io::Result<()> {
    upstream.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut up_w = upstream.try_clone()?;
    let up_done = upstream.try_clone()?;
    let forward = thread::spawn(move || {
        let _ = io::copy(&mut from_client, &mut up_w);
        let _ = up_w.shutdown(Shutdown::Write);
    });
    let mut up_r = upstream;
    let _ = io::copy(&mut up_r, &mut to_client);
    let _ = to_client.shutdown(Shutdown::Both);
    let _ = up_done.shutdown(Shutdown::Both);
    let _ = forward.join();
    Ok(())
}
