//! The request side: a push parser that turns the bytes a connection
//! receives into request heads, body chunks and ends, in order, with
//! pipelined requests one after another.
//!
//! A request head is parsed only once the blank line that ends it has
//! arrived (a cheap scan decides when to run [`httparse`]), so a slow client
//! costs one scan per read, not one parse. Body bytes are never buffered:
//! they are reported as slices of the input as soon as they arrive, and the
//! caller applies back-pressure. After a request that will not keep the
//! connection alive, or after an error, the parser ignores further input.

use crate::chunked::{Chunked, Step};
use crate::error::{self, HttpError};

/// Limits on what a client may send in a request head.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request head in bytes (request line, headers, blank line);
    /// also bounds a chunked body's trailer section. Beyond it: 431.
    pub max_head: usize,
    /// Most header fields in one head. Beyond it: 431.
    pub max_headers: usize,
}

impl Default for Limits {
    /// 16 KiB (as uvicorn's h11 `max_incomplete_event_size`) and 100 fields.
    fn default() -> Limits {
        Limits { max_head: 16 * 1024, max_headers: 100 }
    }
}

/// How the request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Content-Length: this many bytes (more than zero).
    Length(u64),
    /// Transfer-Encoding: chunked.
    Chunked,
}

/// A parsed request head, borrowing the bytes it was parsed from.
#[derive(Debug)]
pub struct Head<'a> {
    pub method: &'a str,
    /// The request target as sent (origin form: path and query).
    pub target: &'a [u8],
    /// The target up to the first `?` (still percent-encoded).
    pub path: &'a [u8],
    /// The target after the first `?`, without it (empty if none).
    pub query: &'a [u8],
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header fields in order, names as sent (see [`lowercase`] for ASGI).
    pub headers: &'a [httparse::Header<'a>],
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue` (HTTP/1.1 only).
    pub expect_continue: bool,
    /// The Upgrade header's value when `Connection` has the `upgrade` token.
    pub upgrade: Option<&'a [u8]>,
    pub framing: Framing,
}

/// Receives what the parser finds, in order. A `Sink` error stops the feed
/// and is returned from [`Parser::feed`] (the parser is then unusable).
pub trait Sink {
    type Error;
    /// A request head. For an upgrade request the parser pauses after it.
    fn head(&mut self, head: &Head<'_>) -> Result<(), Self::Error>;
    /// Part of the current request's body (never empty).
    fn body(&mut self, data: &[u8]) -> Result<(), Self::Error>;
    /// The current request's body is complete.
    fn end(&mut self) -> Result<(), Self::Error>;
    /// The input is refused; nothing more will be reported.
    fn error(&mut self, error: HttpError) -> Result<(), Self::Error>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    Chunked(Chunked),
    /// Paused after an upgrade head, until `resume` (with its framing).
    Upgrade(Framing),
    /// The last request did not keep the connection alive.
    Closed,
    /// An error was reported.
    Dead,
}

/// The request parser of one connection.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    state: State,
    /// The unconsumed tail of earlier input: an incomplete head or framing line.
    buf: Vec<u8>,
    /// How much of `buf` is known not to contain the end of a head.
    scanned: usize,
    /// Whether the request being read keeps the connection alive.
    keep_alive: bool,
}

impl Parser {
    pub fn new(limits: Limits) -> Parser {
        Parser { limits, state: State::Head, buf: Vec::new(), scanned: 0, keep_alive: true }
    }

    /// Parses `data` (the next bytes of the connection), reporting to `sink`.
    pub fn feed<S: Sink>(&mut self, data: &[u8], sink: &mut S) -> Result<(), S::Error> {
        match self.state {
            State::Closed | State::Dead => return Ok(()),
            State::Upgrade(_) => {
                self.buf.extend_from_slice(data);
                return Ok(());
            }
            _ => {}
        }
        if self.buf.is_empty() {
            let used = self.step(data, sink)?;
            if self.wants_rest() {
                self.buf.extend_from_slice(&data[used..]);
            }
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(data);
            let used = self.step(&buf, sink);
            match used {
                Ok(used) if self.wants_rest() => {
                    buf.drain(..used);
                    self.buf = buf;
                }
                Ok(_) => {}
                Err(e) => {
                    self.state = State::Dead;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Whether the parser is paused after an upgrade request's head.
    pub fn is_paused(&self) -> bool {
        matches!(self.state, State::Upgrade(_))
    }

    /// Continues after an upgrade request that is served as plain HTTP: the
    /// bytes kept while paused are parsed by the next `feed` (which may be empty).
    pub fn resume(&mut self) {
        if let State::Upgrade(framing) = self.state {
            self.state = State::Head;
            self.begin_body(framing);
        }
    }

    /// Takes the bytes received after an upgrade request's head, for the
    /// protocol that takes over the connection; the parser ignores the rest.
    pub fn take_rest(&mut self) -> Vec<u8> {
        self.state = State::Closed;
        std::mem::take(&mut self.buf)
    }

    fn wants_rest(&self) -> bool {
        !matches!(self.state, State::Closed | State::Dead)
    }

    fn begin_body(&mut self, framing: Framing) {
        self.state = match framing {
            Framing::Empty => State::Head,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(Chunked::Size),
        };
    }

    /// Finishes the current message: the next state is the next head, or
    /// closed when this request does not keep the connection alive.
    fn end_message<S: Sink>(&mut self, sink: &mut S) -> Result<(), S::Error> {
        self.state = if self.keep_alive { State::Head } else { State::Closed };
        sink.end()
    }

    fn fail<S: Sink>(&mut self, error: HttpError, sink: &mut S) -> Result<usize, S::Error> {
        self.state = State::Dead;
        self.buf = Vec::new();
        sink.error(error)?;
        Ok(0)
    }

    /// Consumes as much of `input` as can be parsed; returns how much.
    fn step<S: Sink>(&mut self, input: &[u8], sink: &mut S) -> Result<usize, S::Error> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Head => {
                    let rest = &input[pos..];
                    if rest.is_empty() {
                        return Ok(pos);
                    }
                    let from = self.scanned.saturating_sub(3).min(rest.len());
                    if !has_blank_line(&rest[from..]) {
                        if rest.len() > self.limits.max_head {
                            return self.fail(error::HEAD_TOO_LARGE, sink);
                        }
                        self.scanned = rest.len();
                        return Ok(pos);
                    }
                    match self.parse_head(rest, sink)? {
                        Ok(Some(used)) => {
                            self.scanned = 0;
                            pos += used;
                            if self.is_paused() {
                                return Ok(pos);
                            }
                        }
                        Ok(None) => {
                            self.scanned = rest.len();
                            if rest.len() > self.limits.max_head {
                                return self.fail(error::HEAD_TOO_LARGE, sink);
                            }
                            return Ok(pos);
                        }
                        Err(e) => return self.fail(e, sink),
                    }
                }
                State::Length(left) => {
                    let rest = &input[pos..];
                    if rest.is_empty() {
                        return Ok(pos);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                    sink.body(&rest[..take])?;
                    pos += take;
                    let left = left - take as u64;
                    if left == 0 {
                        self.end_message(sink)?;
                    } else {
                        self.state = State::Length(left);
                    }
                }
                State::Chunked(mut dec) => {
                    let result = dec.decode(&input[pos..], self.limits.max_head);
                    self.state = State::Chunked(dec);
                    match result {
                        Ok(Step::Data(n, data)) => {
                            if !data.is_empty() {
                                sink.body(data)?;
                            }
                            pos += n;
                        }
                        Ok(Step::Partial(n)) => return Ok(pos + n),
                        Ok(Step::Done(n)) => {
                            pos += n;
                            self.end_message(sink)?;
                        }
                        Err(e) => return self.fail(e, sink),
                    }
                }
                State::Upgrade(_) | State::Closed | State::Dead => return Ok(pos),
            }
        }
    }

    /// Parses the head at the start of `input` and reports it; `Ok(None)` if
    /// incomplete. The outer `Result` is the sink's.
    fn parse_head<S: Sink>(
        &mut self,
        input: &[u8],
        sink: &mut S,
    ) -> Result<Result<Option<usize>, HttpError>, S::Error> {
        let mut inline = [httparse::EMPTY_HEADER; 100];
        let mut heap;
        let slots: &mut [httparse::Header<'_>] = if self.limits.max_headers <= inline.len() {
            &mut inline[..self.limits.max_headers]
        } else {
            heap = vec![httparse::EMPTY_HEADER; self.limits.max_headers];
            &mut heap
        };
        let mut req = httparse::Request::new(slots);
        let used = match req.parse(input) {
            Ok(httparse::Status::Complete(used)) => used,
            Ok(httparse::Status::Partial) => return Ok(Ok(None)),
            Err(httparse::Error::TooManyHeaders) => return Ok(Err(error::TOO_MANY_HEADERS)),
            Err(httparse::Error::Version) if names_another_version(input) => {
                return Ok(Err(error::VERSION_NOT_SUPPORTED))
            }
            Err(_) => return Ok(Err(HttpError::bad("Invalid HTTP request"))),
        };
        if used > self.limits.max_head {
            return Ok(Err(error::HEAD_TOO_LARGE));
        }
        let head = match check_head(req) {
            Ok(head) => head,
            Err(e) => return Ok(Err(e)),
        };
        self.keep_alive = head.keep_alive;
        if head.upgrade.is_some() {
            self.state = State::Upgrade(head.framing);
            sink.head(&head)?;
            return Ok(Ok(Some(used)));
        }
        let framing = head.framing;
        sink.head(&head)?;
        self.begin_body(framing);
        if framing == Framing::Empty {
            self.end_message(sink)?;
        }
        Ok(Ok(Some(used)))
    }
}

/// Whether the request line ends in a well-formed version other than 1.0
/// and 1.1 (`HTTP/2.0`, `HTTP/1.2`): answered 505, where a malformed one is 400.
fn names_another_version(input: &[u8]) -> bool {
    let line = input.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
    matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit())
}

/// Whether `data` holds the blank line that ends a head (LF CRLF or LF LF).
fn has_blank_line(data: &[u8]) -> bool {
    let mut rest = data;
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        rest = &rest[i + 1..];
        if rest.first() == Some(&b'\n') || rest.starts_with(b"\r\n") {
            return true;
        }
    }
    false
}

/// Lowercases an ASCII header name into `out` (the same length as `name`).
pub fn lowercase(name: &[u8], out: &mut [u8]) {
    for (o, b) in out.iter_mut().zip(name) {
        *o = b.to_ascii_lowercase();
    }
}

/// Whether a comma-separated header value lists `token` (case-insensitively).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Validates a parsed request and works out its framing and connection use.
fn check_head<'h, 'b: 'h>(req: httparse::Request<'h, 'b>) -> Result<Head<'h>, HttpError> {
    let headers: &'h [httparse::Header<'h>] = req.headers;
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HttpError::bad("Invalid HTTP request"));
    };
    if method == "CONNECT" {
        // A tunnel (RFC 9110 section 9.3.6), which an ASGI app cannot be: refused
        // as httptools does, rather than served as a request whose connection
        // then stays in HTTP mode.
        return Err(error::CONNECT_NOT_SUPPORTED);
    }
    let target = target.as_bytes();
    // httparse allows bytes >= 0x80 in the target; RFC 9112 does not.
    if target.iter().any(|&b| !(0x21..=0x7e).contains(&b)) {
        return Err(HttpError::bad("Invalid request target"));
    }
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(i) => (&target[..i], &target[i + 1..]),
        None => (target, &target[target.len()..]),
    };
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut hosts = 0;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut upgrade_token = false;
    let mut upgrade = None;
    let mut expect_continue = false;
    for h in headers {
        let name = h.name.as_bytes();
        let value = h.value;
        if name.eq_ignore_ascii_case(b"content-length") {
            if content_length.is_some() {
                return Err(HttpError::bad("Duplicate Content-Length"));
            }
            content_length = Some(parse_length(value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if chunked {
                return Err(HttpError::bad("Duplicate Transfer-Encoding"));
            }
            if !value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(error::UNSUPPORTED_CODING);
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"connection") {
            close |= has_token(value, b"close");
            keep_alive_token |= has_token(value, b"keep-alive");
            upgrade_token |= has_token(value, b"upgrade");
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade = Some(value);
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue |= minor == 1 && has_token(value, b"100-continue");
        }
    }
    if chunked && content_length.is_some() {
        return Err(HttpError::bad("Both Content-Length and Transfer-Encoding"));
    }
    if chunked && minor == 0 {
        return Err(HttpError::bad("Transfer-Encoding in an HTTP/1.0 request"));
    }
    if hosts > 1 {
        return Err(HttpError::bad("Duplicate Host header"));
    }
    if minor == 1 && hosts == 0 {
        return Err(HttpError::bad("Missing Host header"));
    }
    let framing = match (chunked, content_length) {
        (true, _) => Framing::Chunked,
        (false, Some(n)) if n > 0 => Framing::Length(n),
        _ => Framing::Empty,
    };
    let keep_alive = if minor == 1 { !close } else { keep_alive_token && !close };
    Ok(Head {
        method,
        target,
        path,
        query,
        minor_version: minor,
        headers,
        keep_alive,
        expect_continue,
        upgrade: if upgrade_token { upgrade } else { None },
        framing,
    })
}

/// A Content-Length value: 1 to 18 ASCII digits (a list such as `5, 5` is refused).
fn parse_length(value: &[u8]) -> Result<u64, HttpError> {
    const BAD: HttpError = HttpError::bad("Invalid Content-Length");
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return Err(BAD);
    }
    Ok(value.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
