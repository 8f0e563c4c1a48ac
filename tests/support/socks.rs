#![allow(dead_code)]
//! A minimal SOCKS5 server on loopback (RFC 1928, CONNECT only), with no authentication or
//! username/password (RFC 1929), for the proxy tests. It logs each handshake (the method
//! chosen, the credentials, the target as the client named it) and relays to the target,
//! which must be 127.0.0.1 or `localhost`: nothing leaves the machine.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::proxy::{relay, shutdown_all};

/// One SOCKS5 handshake as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocksHandshake {
    /// Credentials the client sent (RFC 1929), if it authenticated.
    pub credentials: Option<(String, String)>,
    /// The target as named by the client: `127.0.0.1:port` (address) or `host:port` (name).
    pub target: String,
    /// Whether the client named the target by domain (SOCKS5h) rather than by address.
    pub by_name: bool,
}

#[derive(Default)]
struct Shared {
    log: Mutex<Vec<SocksHandshake>>,
    connections: AtomicUsize,
    sockets: Mutex<Vec<TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stopping: AtomicBool,
    /// `Some`: username/password required and must match.
    required: Mutex<Option<(String, String)>>,
}

/// The SOCKS5 server; stops when dropped.
pub struct Socks5Server {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl Socks5Server {
    /// Starts a server that accepts clients without authentication, or, with `credentials`,
    /// only clients that send exactly those (username/password method).
    pub fn start(credentials: Option<(&str, &str)>) -> Socks5Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind socks");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        *shared.required.lock().unwrap() = credentials.map(|(u, p)| (u.to_string(), p.to_string()));
        let for_accept = shared.clone();
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if for_accept.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                for_accept.connections.fetch_add(1, Ordering::SeqCst);
                if let Ok(c) = stream.try_clone() {
                    for_accept.sockets.lock().unwrap().push(c);
                }
                let s = for_accept.clone();
                let handle = thread::spawn(move || {
                    let _ = serve(&s, stream);
                });
                for_accept.threads.lock().unwrap().push(handle);
            }
        });
        Socks5Server {
            shared,
            addr,
            accept: Some(accept),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn handshakes(&self) -> Vec<SocksHandshake> {
        self.shared.log.lock().unwrap().clone()
    }

    pub fn connections_accepted(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Socks5Server {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
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

fn read_n(s: &mut TcpStream, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

fn read_string(s: &mut TcpStream) -> io::Result<String> {
    let len = read_n(s, 1)?[0];
    Ok(String::from_utf8_lossy(&read_n(s, usize::from(len))?).into_owned())
}

fn serve(shared: &Shared, mut s: TcpStream) -> io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    // Greeting: VER, NMETHODS, METHODS.
    let head = read_n(&mut s, 2)?;
    if head[0] != 5 {
        return Ok(());
    }
    let methods = read_n(&mut s, usize::from(head[1]))?;
    let required = shared.required.lock().unwrap().clone();
    let credentials = match &required {
        None if methods.contains(&0) => {
            s.write_all(&[5, 0])?;
            None
        }
        Some(want) if methods.contains(&2) => {
            s.write_all(&[5, 2])?;
            // RFC 1929: VER 1, ULEN, UNAME, PLEN, PASSWD.
            let _ver = read_n(&mut s, 1)?;
            let user = read_string(&mut s)?;
            let pass = read_string(&mut s)?;
            let ok = (user.as_str(), pass.as_str()) == (want.0.as_str(), want.1.as_str());
            s.write_all(&[1, if ok { 0 } else { 1 }])?;
            if !ok {
                return Ok(());
            }
            Some((user, pass))
        }
        _ => {
            s.write_all(&[5, 0xff])?;
            return Ok(());
        }
    };
    // Request: VER, CMD, RSV, ATYP, DST.ADDR, DST.PORT.
    let req = read_n(&mut s, 4)?;
    let (host, by_name) = match req[3] {
        1 => (
            Ipv4Addr::from(<[u8; 4]>::try_from(read_n(&mut s, 4)?).unwrap()).to_string(),
            false,
        ),
        4 => (
            Ipv6Addr::from(<[u8; 16]>::try_from(read_n(&mut s, 16)?).unwrap()).to_string(),
            false,
        ),
        3 => (read_string(&mut s)?, true),
        _ => return Ok(()),
    };
    let port = u16::from_be_bytes(read_n(&mut s, 2)?.try_into().unwrap());
    shared.log.lock().unwrap().push(SocksHandshake {
        credentials,
        target: format!("{host}:{port}"),
        by_name,
    });
    let reply = |code: u8| [5, code, 0, 1, 127, 0, 0, 1, 0, 0];
    if req[1] != 1 || !matches!(host.as_str(), "127.0.0.1" | "localhost") {
        s.write_all(&reply(2))?; // connection not allowed by ruleset
        return Ok(());
    }
    let upstream = match TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))) {
        Ok(u) => u,
        Err(_) => {
            s.write_all(&reply(5))?; // connection refused
            return Ok(());
        }
    };
    if let Ok(c) = upstream.try_clone() {
        shared.sockets.lock().unwrap().push(c);
    }
    s.write_all(&reply(0))?;
    let from_client = s.try_clone()?;
    relay(from_client, s, upstream)
}
