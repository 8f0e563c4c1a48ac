//! Instructions per request, for `benches/instructions.sh` under callgrind: a small keep-alive
//! HTTP/1.1 server (`serve PORT`, run as its own process so its instructions are not counted)
//! and a client (`client URL N [none|noop]`) that sends N GETs on one client of a default pool
//! (`URL` may be a comma-separated list, sent in turn: `URLS` in `benches/instructions.sh`).
//!
//! `noop` installs a subscriber that enables every span and event and discards them: what the
//! `tracing` feature costs once an application has a subscriber, before any layer's own work.
//! `ureq` sends the same GETs through a bare `ureq::Agent` (its defaults, 128 KiB buffers),
//! the engine the library wraps, for comparison; `ureq-8k` through one with the library's
//! 8 KiB buffers.
//!
//! `LIVE=N` in the environment keeps N-1 other clients (or Agents) of the same kind alive
//! beside the measured one, each holding a kept-alive connection it opened with one request
//! before the measured loop: one thread's cost per request with 1 or 1000 live clients, for
//! the cache-miss comparison (`CGOPTS=--cache-sim=yes` in `benches/instructions.sh`).
//!
//! A counting global allocator prints the run's allocations (`allocations: N`) on stderr, so
//! the script can report allocations per request beside instructions.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};

use http_sentinel::{ClientPool, PoolConfig};

/// The system allocator, counting allocations (a `realloc` counts as one).
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn serve(port: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        std::thread::spawn(move || {
            let mut writer = stream.try_clone().expect("clone");
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            loop {
                // One request head: lines up to the empty one.
                let mut any = false;
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => any = true,
                    }
                }
                if any
                    && writer
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\nhello, world\n")
                        .is_err()
                {
                    return;
                }
            }
        });
    }
}

#[cfg(feature = "tracing")]
mod noop {
    use super::*;
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    /// Enables everything, keeps nothing.
    pub struct Noop(pub AtomicU64);

    impl Subscriber for Noop {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(self.0.fetch_add(1, Ordering::Relaxed) + 1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, _: &Event<'_>) {}
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
}

fn client(url: &str, n: u64, subscriber: &str) {
    match subscriber {
        "none" => {}
        "ureq" => return bare_ureq(url, n, ureq::Agent::new_with_defaults),
        "ureq-8k" => {
            return bare_ureq(url, n, || {
                ureq::Agent::config_builder()
                    .input_buffer_size(8 * 1024)
                    .output_buffer_size(8 * 1024)
                    .build()
                    .new_agent()
            })
        }
        #[cfg(feature = "tracing")]
        "noop" => {
            tracing::subscriber::set_global_default(noop::Noop(AtomicU64::new(0)))
                .expect("one subscriber");
        }
        other => panic!("unknown subscriber {other} (noop needs --features tracing)"),
    }
    let live = live();
    let pool =
        ClientPool::new(PoolConfig::builder().max_clients(live.max(1)).build()).expect("pool");
    // The other live clients, each holding its connection (checked out, not returned).
    let first = url.split(',').next().unwrap_or(url);
    let others: Vec<_> = (1..live)
        .map(|_| {
            let c = pool.checkout().expect("client");
            assert_eq!(
                c.get(first)
                    .send()
                    .and_then(|r| r.bytes())
                    .expect("warm-up")
                    .len(),
                13
            );
            c
        })
        .collect();
    let client = pool.checkout().expect("client");
    let errors = AtomicU64::new(0);
    let urls: Vec<&str> = url.split(',').collect();
    for url in urls.iter().cycle().take(n as usize) {
        match client.get(url).send().and_then(|r| r.bytes()) {
            Ok(body) if body.len() == 13 => {}
            _ => {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let errors = errors.load(Ordering::Relaxed);
    assert_eq!(errors, 0, "{errors} failed requests");
    eprintln!("allocations: {}", ALLOCATIONS.load(Ordering::Relaxed));
    drop(others);
}

/// `LIVE` from the environment: how many clients are alive in all (at least 1).
fn live() -> usize {
    std::env::var("LIVE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// The same loop through a bare `ureq::Agent` made by `make`.
fn bare_ureq(url: &str, n: u64, make: impl Fn() -> ureq::Agent) {
    let first = url.split(',').next().unwrap_or(url);
    let others: Vec<ureq::Agent> = (1..live())
        .map(|_| {
            let agent = make();
            let body = agent
                .get(first)
                .call()
                .and_then(|mut r| r.body_mut().read_to_vec())
                .expect("warm-up");
            assert_eq!(body.len(), 13);
            agent
        })
        .collect();
    let agent = make();
    let urls: Vec<&str> = url.split(',').collect();
    for url in urls.iter().cycle().take(n as usize) {
        let body = agent
            .get(*url)
            .call()
            .and_then(|mut r| r.body_mut().read_to_vec())
            .expect("request");
        assert_eq!(body.len(), 13);
    }
    eprintln!("allocations: {}", ALLOCATIONS.load(Ordering::Relaxed));
    drop(others);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", port] => serve(port.parse().expect("port")),
        ["client", url, n, subscriber] => client(url, n.parse().expect("count"), subscriber),
        // `cargo bench` runs every bench target with `--bench`: nothing to do without a server.
        _ => eprintln!("usage: instructions serve PORT | client URL N none|noop|ureq|ureq-8k"),
    }
}
