//! The response side: framing a response head (status line, the app's and
//! the server's headers, the body-length decision) and the first body part
//! into one buffer, so the common response costs one write.
//!
//! The rules are uvicorn's httptools protocol's, so apps see the same
//! behaviour: names are lowercased, the first Content-Length wins, a
//! `Transfer-Encoding: chunked` header means chunked, `Connection: close`
//! ends keep-alive, and a response with neither length nor chunking is sent
//! chunked (except to HEAD, and for 1xx/204/304 which have no body). One
//! addition: an HTTP/1.0 client cannot read chunked framing, so such a body
//! is delimited by closing the connection instead.

use std::fmt;

use crate::status::reason_phrase;

/// What the app got wrong in a response (uvicorn raises `RuntimeError` or
/// `ValueError` for the same cases).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    Status,
    HeaderName,
    HeaderValue,
    ContentLength,
    TooLong,
    TooShort,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameError::Status => "Invalid HTTP status code.",
            FrameError::HeaderName => "Invalid HTTP header name.",
            FrameError::HeaderValue => "Invalid HTTP header value.",
            FrameError::ContentLength => "Invalid Content-Length header value.",
            FrameError::TooLong => "Response content longer than Content-Length",
            FrameError::TooShort => "Response content shorter than Content-Length",
        })
    }
}

impl std::error::Error for FrameError {}

/// How the response body goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyMode {
    /// Exactly this many more bytes (Content-Length).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (HTTP/1.0 without a length).
    UntilClose,
    /// No body is sent whatever the app gives (HEAD, 1xx, 204, 304).
    Discard,
}

/// A response head being framed.
#[derive(Debug)]
pub struct ResponseHead {
    out: Vec<u8>,
    status: u16,
    content_length: Option<u64>,
    chunked: bool,
    close: bool,
    keep_alive_header: bool,
    length_error: bool,
}

impl ResponseHead {
    /// Starts a head with its status line; `capacity` is a size hint.
    pub fn new(status: u16, capacity: usize) -> Result<ResponseHead, FrameError> {
        if !(100..=599).contains(&status) {
            return Err(FrameError::Status);
        }
        let mut out = Vec::with_capacity(capacity.max(64));
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(reason_phrase(status).as_bytes());
        out.extend_from_slice(b"\r\n");
        Ok(ResponseHead {
            out,
            status,
            content_length: None,
            chunked: false,
            close: false,
            keep_alive_header: false,
            length_error: false,
        })
    }

    /// Adds one header field (validated, name lowercased).
    pub fn header(&mut self, name: &[u8], value: &[u8]) -> Result<(), FrameError> {
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err(FrameError::HeaderName);
        }
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(FrameError::HeaderValue);
        }
        let start = self.out.len();
        self.out.extend(name.iter().map(u8::to_ascii_lowercase));
        let lower = &self.out[start..];
        if lower == b"content-length" {
            if self.content_length.is_none() && !self.chunked {
                match parse_decimal(value) {
                    Some(n) => self.content_length = Some(n),
                    None => self.length_error = true,
                }
            }
        } else if lower == b"transfer-encoding" {
            if value.eq_ignore_ascii_case(b"chunked") {
                self.chunked = true;
            }
        } else if lower == b"connection" {
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    self.keep_alive_header = true;
                }
            }
        }
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// Ends the head. `head_request` is a HEAD request, `http10` an
    /// HTTP/1.0 client, `keep_alive` whether the request allows reuse.
    /// Returns the bytes, the body mode and whether the connection stays open.
    pub fn finish(
        mut self,
        head_request: bool,
        http10: bool,
        keep_alive: bool,
    ) -> Result<(Vec<u8>, BodyMode, bool), FrameError> {
        if self.length_error {
            return Err(FrameError::ContentLength);
        }
        let bodiless = head_request || self.status < 200 || self.status == 204 || self.status == 304;
        let mut keep_alive = keep_alive && !self.close;
        let mode = if self.chunked && !http10 {
            if bodiless {
                BodyMode::Discard
            } else {
                BodyMode::Chunked
            }
        } else if let (Some(n), false) = (self.content_length, self.chunked) {
            if bodiless {
                BodyMode::Discard
            } else {
                BodyMode::Length(n)
            }
        } else if bodiless {
            BodyMode::Discard
        } else if http10 {
            keep_alive = false;
            BodyMode::UntilClose
        } else {
            self.out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            BodyMode::Chunked
        };
        if !keep_alive && !self.close {
            self.out.extend_from_slice(b"connection: close\r\n");
        } else if keep_alive && http10 && !self.keep_alive_header {
            self.out.extend_from_slice(b"connection: keep-alive\r\n");
        }
        self.out.extend_from_slice(b"\r\n");
        Ok((self.out, mode, keep_alive))
    }
}

/// Appends a body part framed for `mode` (and the last chunk when
/// `more_body` is false), updating the bytes still due under Content-Length.
pub fn frame_body(
    out: &mut Vec<u8>,
    mode: &mut BodyMode,
    body: &[u8],
    more_body: bool,
) -> Result<(), FrameError> {
    match mode {
        BodyMode::Length(left) => {
            let n = body.len() as u64;
            if n > *left {
                return Err(FrameError::TooLong);
            }
            *left -= n;
            if !more_body && *left != 0 {
                return Err(FrameError::TooShort);
            }
            out.extend_from_slice(body);
        }
        BodyMode::Chunked => {
            if !body.is_empty() {
                out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
                out.extend_from_slice(body);
                out.extend_from_slice(b"\r\n");
            }
            if !more_body {
                out.extend_from_slice(b"0\r\n\r\n");
            }
        }
        BodyMode::UntilClose => out.extend_from_slice(body),
        BodyMode::Discard => {}
    }
    Ok(())
}

fn is_token(b: u8) -> bool {
    matches!(b, b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
        || b.is_ascii_alphanumeric()
}

fn parse_decimal(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(status: u16, headers: &[(&[u8], &[u8])], flags: (bool, bool, bool)) -> (String, BodyMode, bool) {
        let mut head = ResponseHead::new(status, 0).unwrap();
        for (n, v) in headers {
            head.header(n, v).unwrap();
        }
        let (bytes, mode, keep) = head.finish(flags.0, flags.1, flags.2).unwrap();
        (String::from_utf8(bytes).unwrap(), mode, keep)
    }

    #[test]
    fn content_length_response() {
        let (text, mode, keep) =
            frame(200, &[(b"Content-Length", b"5"), (b"X-A", b"b")], (false, false, true));
        assert_eq!(text, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: b\r\n\r\n");
        assert_eq!((mode, keep), (BodyMode::Length(5), true));
    }

    #[test]
    fn chunked_when_no_length() {
        let (text, mode, _) = frame(200, &[], (false, false, true));
        assert_eq!(text, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
        assert_eq!(mode, BodyMode::Chunked);
        let mut out = Vec::new();
        let mut mode = BodyMode::Chunked;
        frame_body(&mut out, &mut mode, b"hello world!!!!!", true).unwrap();
        frame_body(&mut out, &mut mode, b"", false).unwrap();
        assert_eq!(out, b"10\r\nhello world!!!!!\r\n0\r\n\r\n");
    }

    #[test]
    fn head_and_bodiless_statuses() {
        assert_eq!(frame(200, &[], (true, false, true)).1, BodyMode::Discard);
        assert_eq!(frame(204, &[], (false, false, true)).0, "HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(frame(304, &[(b"content-length", b"9")], (false, false, true)).1, BodyMode::Discard);
        let mut out = Vec::new();
        frame_body(&mut out, &mut BodyMode::Discard, b"dropped", false).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn connection_close() {
        let (text, _, keep) = frame(200, &[(b"content-length", b"0")], (false, false, false));
        assert!(text.ends_with("connection: close\r\n\r\n"));
        assert!(!keep);
        let (text, _, keep) =
            frame(200, &[(b"Connection", b"Close"), (b"content-length", b"0")], (false, false, true));
        assert_eq!(text.matches("onnection").count(), 1);
        assert!(!keep);
    }

    #[test]
    fn http10() {
        let (text, mode, keep) = frame(200, &[], (false, true, true));
        assert_eq!((mode, keep), (BodyMode::UntilClose, false));
        assert!(text.contains("connection: close") && !text.contains("chunked\r\n\r\n"));
        let (text, mode, keep) = frame(200, &[(b"content-length", b"1")], (false, true, true));
        assert_eq!((mode, keep), (BodyMode::Length(1), true));
        assert!(text.ends_with("connection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn refuses_bad_headers() {
        let mut head = ResponseHead::new(200, 0).unwrap();
        assert_eq!(head.header(b"bad name", b"v"), Err(FrameError::HeaderName));
        assert_eq!(head.header(b"", b"v"), Err(FrameError::HeaderName));
        assert_eq!(head.header(b"x", b"a\r\nb"), Err(FrameError::HeaderValue));
        head.header(b"content-length", b"abc").unwrap();
        assert_eq!(head.finish(false, false, true).unwrap_err(), FrameError::ContentLength);
        assert_eq!(ResponseHead::new(99, 0).unwrap_err(), FrameError::Status);
        assert_eq!(ResponseHead::new(600, 0).unwrap_err(), FrameError::Status);
    }

    #[test]
    fn length_is_enforced() {
        let mut out = Vec::new();
        let mut mode = BodyMode::Length(3);
        assert_eq!(frame_body(&mut out, &mut mode, b"abcd", true), Err(FrameError::TooLong));
        frame_body(&mut out, &mut mode, b"ab", true).unwrap();
        assert_eq!(frame_body(&mut out, &mut mode, b"", false), Err(FrameError::TooShort));
    }

    #[test]
    fn unknown_status_has_empty_phrase() {
        assert_eq!(
            frame(599, &[(b"content-length", b"0")], (false, false, true)).0,
            "HTTP/1.1 599 \r\ncontent-length: 0\r\n\r\n"
        );
    }
}
