//! Server-sent events: the parser of the WHATWG `text/event-stream` format, pure and I/O-free
//! (feed it bytes, take events out), so that it can be fuzzed and fed any split of a stream.
//!
//! The rules followed, from the HTML standard's "Parsing an event stream" (§9.2.6):
//!
//! - one leading U+FEFF (a BOM) is skipped; the rest is decoded as UTF-8, invalid sequences
//!   replaced;
//! - a line ends at CRLF, LF or CR, and a CR that ends one read followed by an LF that starts
//!   the next is one line end;
//! - a line starting with `:` is a comment; `field: value` drops one space after the colon; a
//!   line without a colon is a field with an empty value; unknown fields are ignored;
//! - `data` lines are joined with `\n`; `event` sets the type (`message` when none was given);
//!   `id` sets the last event id unless its value holds a NUL; `retry` sets the reconnection
//!   time when its value is ASCII digits only;
//! - a blank line dispatches the event, unless no `data` line came (then the type is reset and
//!   nothing is dispatched); at the end of the stream an unterminated event is dropped.
//!
//! Sentinels such as OpenAI's `data: [DONE]` are ordinary data here: the caller decides what
//! they mean. Memory is bounded: a line, or an event's data, longer than the parser's limit is
//! an error, not an ever-growing buffer.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

/// One server-sent event.
///
/// # Examples
///
/// ```
/// use http_sentinel::sse::Parser;
///
/// let mut parser = Parser::new(1024);
/// parser.feed(b"event: delta\nid: 7\ndata: hel\ndata: lo\n\n")?;
/// let event = parser.next_event().unwrap();
/// assert_eq!(event.event, "delta");
/// assert_eq!(event.data, "hel\nlo");
/// assert_eq!(event.id, "7");
/// assert_eq!(event.retry, None);
/// # Ok::<(), http_sentinel::sse::EventTooLarge>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The event type: the last `event` field of the event, `message` when none was given.
    pub event: String,
    /// The `data` lines of the event, joined with `\n` (no trailing newline).
    pub data: String,
    /// The last event id when the event was dispatched (ids carry over to later events, as
    /// in the standard); empty when none was set.
    pub id: String,
    /// The reconnection time a `retry` field of this event set, if one did.
    pub retry: Option<Duration>,
}

/// A line, or an event's data, longer than the parser's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTooLarge {
    /// The limit, in bytes.
    pub limit: usize,
}

impl fmt::Display for EventTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server-sent event over the {} byte limit", self.limit)
    }
}

impl std::error::Error for EventTooLarge {}

/// The server-sent events parser: [`feed`](Parser::feed) it bytes as they arrive, in pieces
/// of any size, and take whole events out with [`next_event`](Parser::next_event).
///
/// # Examples
///
/// ```
/// use http_sentinel::sse::Parser;
///
/// let mut parser = Parser::new(64 * 1024);
/// // A CR at the end of one read and the LF at the start of the next are one line end.
/// parser.feed(b"data: one\r")?;
/// parser.feed(b"\n\r\ndata: [DONE]\n")?;
/// assert_eq!(parser.next_event().unwrap().data, "one");
/// // The second event has not been terminated by a blank line yet.
/// assert!(parser.next_event().is_none());
/// parser.feed(b"\n")?;
/// assert_eq!(parser.next_event().unwrap().data, "[DONE]");
/// # Ok::<(), http_sentinel::sse::EventTooLarge>(())
/// ```
#[derive(Debug)]
pub struct Parser {
    limit: usize,
    /// The bytes of the line being read (without its line end).
    line: Vec<u8>,
    /// Whether the last byte seen was a CR: an LF right after it is part of the same line end.
    after_cr: bool,
    /// How many bytes of a leading BOM have been matched (3: the start is behind us).
    bom: u8,
    data: String,
    event: String,
    /// Whether a `data` field came in the current event (the data may still be empty).
    has_data: bool,
    /// The last event id buffer: set by `id` fields, committed to `last_id` at each blank line.
    id_buffer: String,
    last_id: String,
    retry: Option<Duration>,
    event_retry: Option<Duration>,
    ready: VecDeque<Event>,
}

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

impl Parser {
    /// A parser whose lines and event data may each hold up to `limit` bytes.
    pub fn new(limit: usize) -> Parser {
        Parser {
            limit,
            line: Vec::new(),
            after_cr: false,
            bom: 0,
            data: String::new(),
            event: String::new(),
            has_data: false,
            id_buffer: String::new(),
            last_id: String::new(),
            retry: None,
            event_retry: None,
            ready: VecDeque::new(),
        }
    }

    /// Parses the next piece of the stream; the events it completes wait in
    /// [`next_event`](Parser::next_event).
    ///
    /// # Errors
    ///
    /// [`EventTooLarge`] when a line or an event's data passes the limit. The parser is of no
    /// further use then: the stream is out of step.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), EventTooLarge> {
        bytes = self.skip_bom(bytes);
        while let Some((&first, rest)) = bytes.split_first() {
            if self.after_cr && first == b'\n' {
                self.after_cr = false;
                bytes = rest;
                continue;
            }
            self.after_cr = false;
            match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.extend_line(&bytes[..end])?;
                    self.after_cr = bytes[end] == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.process_line(&line)?;
                    self.line = line;
                    self.line.clear();
                    bytes = &bytes[end + 1..];
                }
                None => {
                    self.extend_line(bytes)?;
                    bytes = &[];
                }
            }
        }
        Ok(())
    }

    /// The next whole event, in stream order.
    pub fn next_event(&mut self) -> Option<Event> {
        self.ready.pop_front()
    }

    /// The last event id as of the last blank line (the value to send as `Last-Event-ID` on
    /// reconnecting): an `id` in an event cut short before its blank line does not count.
    pub fn last_event_id(&self) -> &str {
        &self.last_id
    }

    /// The reconnection time the stream last asked for with a `retry` field.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// Whether the stream ended between events: no line or event is half read. At the end
    /// of a stream anything half read is dropped, as the standard says.
    pub fn is_between_events(&self) -> bool {
        self.line.is_empty()
            && !self.has_data
            && self.event.is_empty()
            && self.id_buffer == self.last_id
    }

    /// Skips a leading BOM, which may come split over several feeds.
    fn skip_bom<'b>(&mut self, mut bytes: &'b [u8]) -> &'b [u8] {
        while self.bom < 3 {
            let Some((&b, rest)) = bytes.split_first() else {
                return bytes;
            };
            if b != BOM[self.bom as usize] {
                // Not a BOM after all: the bytes matched so far belong to the first line.
                let matched = &BOM[..self.bom as usize];
                self.line.extend_from_slice(matched);
                self.bom = 3;
                return bytes;
            }
            self.bom += 1;
            bytes = rest;
        }
        bytes
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), EventTooLarge> {
        if self.line.len() + bytes.len() > self.limit {
            return Err(EventTooLarge { limit: self.limit });
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, line: &[u8]) -> Result<(), EventTooLarge> {
        if line.is_empty() {
            self.dispatch();
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"event" => self.event = value.into_owned(),
            b"data" => {
                if self.data.len() + value.len() + 1 > self.limit {
                    return Err(EventTooLarge { limit: self.limit });
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"id" if !value.contains('\0') => self.id_buffer = value.into_owned(),
            b"retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // More digits than a u64 holds: the longest wait there is.
                let ms = value.parse::<u64>().unwrap_or(u64::MAX);
                self.retry = Some(Duration::from_millis(ms));
                self.event_retry = self.retry;
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self) {
        self.last_id.clone_from(&self.id_buffer);
        let event = std::mem::take(&mut self.event);
        let retry = self.event_retry.take();
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        self.ready.push_back(Event {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data: std::mem::take(&mut self.data),
            id: self.last_id.clone(),
            retry,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c).unwrap();
            while let Some(e) = p.next_event() {
                out.push(e);
            }
        }
        out
    }

    fn data(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn the_standards_examples_parse_as_it_says() {
        // HTML §9.2.6 examples: a stream of three data-only events and the id/type rules.
        let e = parse(&[b"data: YHOO\ndata: +2\ndata: 10\n\n"]);
        assert_eq!(data(&e), ["YHOO\n+2\n10"]);
        assert_eq!(e[0].event, "message");
        let e = parse(&[b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"]);
        assert_eq!(data(&e), ["first event", "second event", " third event"]);
        assert_eq!(
            e.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["1", "", ""]
        );
        // "data" alone is an empty data line; two of them make one "\n".
        let e = parse(&[b"data\n\ndata\ndata\n\ndata:\n"]);
        assert_eq!(data(&e), ["", "\n"]);
    }

    #[test]
    fn line_ends_cr_lf_and_crlf_mix_and_a_cr_at_a_read_boundary_is_one_end() {
        let e = parse(&[
            b"data: a\r\rdata: b\n\ndata: c\r\n\r\ndata: d\r",
            b"\n",
            b"\r\n",
        ]);
        assert_eq!(data(&e), ["a", "b", "c", "d"]);
        // CR then CR is two line ends (a blank line), not one.
        let e = parse(&[b"data: x\r", b"\r"]);
        assert_eq!(data(&e), ["x"]);
    }

    #[test]
    fn a_leading_bom_is_skipped_once_even_split_and_a_second_one_is_data() {
        let e = parse(&[b"\xEF", b"\xBB", b"\xBFdata: a\n\n"]);
        assert_eq!(data(&e), ["a"]);
        // A second BOM makes the first field name "\u{FEFF}data", which is unknown.
        let e = parse(&[b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n"]);
        assert_eq!(data(&e), ["b"]);
        // Bytes that start like a BOM but are not one are kept.
        let e = parse(&[b"\xEF\xBBx: y\ndata: c\n\n"]);
        assert_eq!(data(&e), ["c"]);
    }

    #[test]
    fn ids_with_nul_and_retry_values_other_than_digits_are_ignored() {
        let e = parse(&[b"id: 1\n\nid: 2\0x\ndata: a\nretry: 12x\nretry: -1\nretry: 1500\n\ndata: b\nretry: 99\n\n"]);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].id, "1");
        assert_eq!(e[0].retry, Some(Duration::from_millis(1500)));
        assert_eq!(e[1].retry, Some(Duration::from_millis(99)));
        let mut p = Parser::new(100);
        p.feed(b"retry: 99999999999999999999999\nretry\nretry: \n")
            .unwrap();
        assert_eq!(p.retry(), Some(Duration::from_millis(u64::MAX)));
    }

    #[test]
    fn comments_unknown_fields_and_events_without_data_dispatch_nothing() {
        let e = parse(&[b": keep-alive\n\nfoo: bar\nevent: ping\n\nevent: x\nid: 3\ndata: y\n\n"]);
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].event.as_str(), e[0].data.as_str(), e[0].id.as_str()),
            ("x", "y", "3")
        );
        // The type reset by the data-less event does not leak into the next one.
        let e = parse(&[b"event: ping\n\ndata: z\n\n"]);
        assert_eq!(e[0].event, "message");
    }

    #[test]
    fn an_unterminated_event_at_the_end_is_not_dispatched_and_done_is_data() {
        let mut p = Parser::new(100);
        p.feed(b"id: 1\ndata: [DONE]\n\nid: 2\ndata: half").unwrap();
        assert_eq!(
            p.last_event_id(),
            "1",
            "id 2 came in an event not yet finished"
        );
        assert_eq!(p.next_event().unwrap().data, "[DONE]");
        assert!(p.next_event().is_none());
        assert!(!p.is_between_events());
        p.feed(b"\n").unwrap();
        assert!(
            p.next_event().is_none(),
            "a data line but no blank line yet"
        );
    }

    #[test]
    fn a_hostile_endless_line_or_event_is_an_error_not_unbounded_memory() {
        let mut p = Parser::new(16);
        assert_eq!(p.feed(&[b'a'; 17]), Err(EventTooLarge { limit: 16 }));
        let mut p = Parser::new(16);
        for _ in 0..16 {
            assert!(p.feed(b"a").is_ok());
        }
        assert!(p.feed(b"a").is_err());
        // Many short data lines add up to the limit too.
        let mut p = Parser::new(16);
        let r = (0..20).try_for_each(|_| p.feed(b"data: abc\n"));
        assert_eq!(r, Err(EventTooLarge { limit: 16 }));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let e = parse(&[b"data: a\xFFb\n\n"]);
        assert_eq!(e[0].data, "a\u{FFFD}b");
    }
}
