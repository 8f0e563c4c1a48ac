//! Streaming completions from a rate-limited LLM API, from plain threads through one pool.
//!
//! An embedded mock of a chat-completions endpoint (the crate's loopback test server) answers
//! the first request with `429 Too Many Requests`, `Retry-After: 1`, `retry-after-ms` and the
//! `x-ratelimit-*` headers OpenAI sends, and every request after it with a server-sent events
//! stream of tokens ending in `data: [DONE]`. Four worker threads each stream one completion
//! and print its tokens as they arrive; the call that got the 429 waits out the server's
//! `Retry-After` before its stream starts (the retry happens before any body byte reached the
//! caller, never after). Every call carries its own request id, the same on its retry.
//!
//! ```text
//! cargo run --example llm_stream
//! ```

#[path = "../tests/support/server.rs"]
mod server;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_sentinel::{ClientPool, PoolConfig, RetryPolicy};
use server::{Behaviour, LoggedRequest, Reply, StreamStep, TestServer};

const REPLY: &str = "Blocking threads can stream tokens too , one event at a time .";

/// The mock endpoint: a 429 for the first request, a token stream for the others.
fn mock_llm() -> TestServer {
    let seen = Arc::new(AtomicUsize::new(0));
    let handler = move |request: &LoggedRequest| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            return Behaviour::Respond(
                Reply::text(429, r#"{"error":{"type":"rate_limit_exceeded"}}"#)
                    .header("retry-after", "1")
                    .header("retry-after-ms", "1000")
                    .header("x-ratelimit-limit-requests", "60")
                    .header("x-ratelimit-remaining-requests", "0")
                    .header("x-ratelimit-reset-requests", "1s")
                    .header("x-request-id", "req_limited"),
            );
        }
        let prompt = String::from_utf8_lossy(&request.body).into_owned();
        Behaviour::Stream(token_stream(&prompt, request.connection))
    };
    TestServer::builder()
        .route(
            "/v1/chat/completions",
            Behaviour::Handler(Arc::new(handler)),
        )
        .start()
}

/// A chunked `text/event-stream` response: one event per token, 30 ms apart, then `[DONE]`.
fn token_stream(prompt: &str, connection: usize) -> Vec<StreamStep> {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
         x-request-id: req_{connection}\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let mut steps = vec![StreamStep::Write(head.into_bytes())];
    let tokens = std::iter::once(prompt).chain(REPLY.split(' '));
    for (i, token) in tokens.enumerate() {
        let event = format!(
            "id: {i}\nevent: delta\ndata: {{\"token\":\"{}\"}}\n\n",
            token.replace('"', "'")
        );
        steps.push(chunk(event.as_bytes()));
        steps.push(StreamStep::Pause(Duration::from_millis(30)));
    }
    steps.push(chunk(b": the end\ndata: [DONE]\n\n"));
    steps.push(StreamStep::Write(b"0\r\n\r\n".to_vec()));
    steps
}

fn chunk(bytes: &[u8]) -> StreamStep {
    let mut out = format!("{:x}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    StreamStep::Write(out)
}

/// The token of a `{"token":"..."}` event, without a JSON parser.
fn token(data: &str) -> &str {
    data.strip_prefix(r#"{"token":""#)
        .and_then(|rest| rest.strip_suffix(r#""}"#))
        .unwrap_or(data)
}

/// One worker: streams a completion and prints each token as it arrives.
fn complete(pool: &ClientPool, url: &str, worker: usize) -> Result<String, http_sentinel::Error> {
    let client = pool.checkout()?;
    let started = Instant::now();
    let response = client
        .post(url)
        .header("accept", "text/event-stream")
        .header("content-type", "text/plain")
        .body(format!("[worker {worker}]"))
        .send()?
        .error_for_status()?;
    let request_id = response.request_id().unwrap_or("-").to_owned();
    let attempts = response.attempts();
    let mut text = Vec::new();
    for event in response.events().idle_timeout(Duration::from_secs(5)) {
        let event = event?;
        if event.data == "[DONE]" {
            break;
        }
        let token = token(&event.data).to_owned();
        println!("w{worker} +{:>4}ms  {token}", started.elapsed().as_millis());
        let _ = std::io::stdout().flush();
        text.push(token);
    }
    Ok(format!(
        "w{worker} ({attempts} attempt(s), server request id {request_id}): {}",
        text.join(" ")
    ))
}

fn main() {
    let server = mock_llm();
    let url = server.url("/v1/chat/completions");
    let pool = ClientPool::new(
        PoolConfig::builder()
            .max_clients(4)
            .deadline(Duration::from_secs(10))
            // POST is retried only when the caller says so: a completion that never started
            // streaming is safe to ask again.
            .retry(
                RetryPolicy::new()
                    .with_max_attempts(3)
                    .with_retry_non_idempotent(true),
            )
            .request_ids("x-client-request-id", "x-retry-count")
            .build(),
    )
    .expect("pool");
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|w| {
                let (pool, url) = (&pool, &url);
                s.spawn(move || complete(pool, url, w))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect()
    });
    println!();
    for r in &results {
        match r {
            Ok(line) => println!("{line}"),
            Err(e) => println!("error: {e}"),
        }
    }
    for r in server.requests() {
        println!(
            "server saw {} {} id {} retry-count {}",
            r.method,
            r.path,
            r.header("x-client-request-id").unwrap_or("-"),
            r.header("x-retry-count").unwrap_or("-")
        );
    }
    println!("\n{}", pool.stats());
}
