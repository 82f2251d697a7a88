//! Decoding a chunked request body (RFC 9112 section 7.1) incrementally.
//!
//! The decoder consumes what it can of the input and reports data slices as
//! they arrive, so chunk data is never buffered here; only an incomplete
//! chunk-size line or trailer section is left unconsumed for the caller to
//! keep and present again with more bytes. Framing lines must end in CRLF
//! (a bare LF is refused: lenient line endings are a smuggling vector), the
//! size is at most 16 hex digits, and extensions may hold no control bytes.

use crate::error::HttpError;

/// Longest chunk-size line accepted (size, extensions and CRLF).
pub const MAX_SIZE_LINE: usize = 4096;

/// Where the decoder is within the chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// After chunk data, this many bytes of its CRLF still to come (2 or 1).
    DataEnd(u8),
    /// After the last (zero-size) chunk: the trailer section.
    Trailers,
}

/// What one `decode` call found.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Consumed `.0` bytes; `.1` is chunk data found (possibly empty). Call
    /// again with the rest, or with more input once the rest is incomplete.
    Data(usize, &'a [u8]),
    /// The input ends inside a framing line: keep the rest (from the
    /// consumed offset `.0`) and present it again with more bytes.
    Partial(usize),
    /// The body ended after consuming `.0` bytes.
    Done(usize),
}

impl Chunked {
    /// Decodes from `input`, which starts at the decoder's position.
    /// `max_trailers` bounds the trailer section.
    pub fn decode<'a>(&mut self, input: &'a [u8], max_trailers: usize) -> Result<Step<'a>, HttpError> {
        match *self {
            Chunked::Data(left) => {
                if input.is_empty() {
                    return Ok(Step::Partial(0));
                }
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                let rest = left - take as u64;
                *self = if rest == 0 { Chunked::DataEnd(2) } else { Chunked::Data(rest) };
                Ok(Step::Data(take, &input[..take]))
            }
            Chunked::DataEnd(need) => {
                let expected: &[u8] = if need == 2 { b"\r\n" } else { b"\n" };
                let n = expected.len().min(input.len());
                if n == 0 {
                    return Ok(Step::Partial(0));
                }
                if input[..n] != expected[..n] {
                    return Err(HttpError::bad("Chunk data not followed by CRLF"));
                }
                let left = need - n as u8;
                *self = if left == 0 { Chunked::Size } else { Chunked::DataEnd(left) };
                Ok(Step::Data(n, &[]))
            }
            Chunked::Size => match parse_size_line(input)? {
                None => {
                    if input.len() >= MAX_SIZE_LINE {
                        return Err(HttpError::bad("Chunk size line too long"));
                    }
                    Ok(Step::Partial(0))
                }
                // The same limit whether the line came in one read or many.
                Some((used, _)) if used > MAX_SIZE_LINE => Err(HttpError::bad("Chunk size line too long")),
                Some((used, 0)) => {
                    *self = Chunked::Trailers;
                    Ok(Step::Data(used, &[]))
                }
                Some((used, size)) => {
                    *self = Chunked::Data(size);
                    Ok(Step::Data(used, &[]))
                }
            },
            Chunked::Trailers => {
                if input.starts_with(b"\r\n") {
                    return Ok(Step::Done(2));
                }
                // httparse takes a bare LF as a line end; framing here does not.
                // The input always starts at the trailer section, so every LF
                // in it has its predecessor here: the check does not depend
                // on how the bytes were split into reads.
                if input.iter().enumerate().any(|(i, &b)| b == b'\n' && (i == 0 || input[i - 1] != b'\r')) {
                    return Err(HttpError::bad("Bare LF in chunked trailer section"));
                }
                if input.len() < 2 {
                    return Ok(Step::Partial(0));
                }
                let mut headers = [httparse::EMPTY_HEADER; 32];
                match httparse::parse_headers(input, &mut headers) {
                    Ok(httparse::Status::Complete((used, _))) if used <= max_trailers => Ok(Step::Done(used)),
                    Ok(httparse::Status::Partial) if input.len() <= max_trailers => Ok(Step::Partial(0)),
                    Ok(_) => Err(crate::error::HEAD_TOO_LARGE),
                    Err(_) => Err(HttpError::bad("Invalid chunked trailer section")),
                }
            }
        }
    }
}

/// Parses `1*HEXDIG [";" ext] CRLF` or `1*HEXDIG OWS CRLF` at the start of
/// `input`: `None` if the line is not complete yet, else (line length, size).
fn parse_size_line(input: &[u8]) -> Result<Option<(usize, u64)>, HttpError> {
    const BAD: HttpError = HttpError::bad("Invalid chunk size");
    let mut size: u64 = 0;
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => break,
        };
        if i == 16 {
            return Err(BAD);
        }
        size = (size << 4) | u64::from(digit);
        i += 1;
    }
    if i == input.len() {
        return Ok(None);
    }
    if i == 0 {
        return Err(BAD);
    }
    if input[i] == b';' {
        // Extensions: skipped, but with no control bytes besides HTAB.
        while let Some(&b) = input.get(i) {
            if b == b'\r' {
                break;
            }
            if (b < 0x20 && b != b'\t') || b == 0x7f {
                return Err(BAD);
            }
            i += 1;
        }
    } else {
        while matches!(input.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
    }
    match (input.get(i), input.get(i + 1)) {
        (None, _) | (Some(b'\r'), None) => Ok(None),
        (Some(b'\r'), Some(b'\n')) => Ok(Some((i + 2, size))),
        _ => Err(BAD),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes, as a caller would.
    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), HttpError> {
        let mut dec = Chunked::Size;
        let mut body = Vec::new();
        let mut kept: Vec<u8> = Vec::new();
        let mut fed = 0;
        let mut consumed_total = 0;
        loop {
            let mut pos = 0;
            loop {
                match dec.decode(&kept[pos..], 1024)? {
                    Step::Data(n, data) => {
                        body.extend_from_slice(data);
                        pos += n;
                    }
                    Step::Partial(n) => {
                        pos += n;
                        break;
                    }
                    Step::Done(n) => return Ok((body, consumed_total + pos + n)),
                }
            }
            kept.drain(..pos);
            consumed_total += pos;
            if fed >= input.len() {
                return Err(HttpError::bad("incomplete"));
            }
            let end = (fed + step).min(input.len());
            kept.extend_from_slice(&input[fed..end]);
            fed = end;
        }
    }

    #[test]
    fn decodes_in_any_split() {
        let input = b"5\r\nhello\r\n1;name=value\r\n!\r\nA \r\n0123456789\r\n0\r\nx-t: 1\r\n\r\nNEXT";
        for step in 1..input.len() {
            let (body, used) = decode_all(input, step).unwrap();
            assert_eq!(body, b"hello!0123456789", "step {step}");
            assert_eq!(&input[used..], b"NEXT");
        }
    }

    #[test]
    fn bare_lf_never_ends_the_body_or_a_trailer() {
        for input in [&b"0\r\n\n"[..], b"0\r\nx-t: 1\n\r\n", b"0\r\nx-t: 1\r\n\n"] {
            for step in 1..=input.len() {
                assert!(decode_all(input, step).is_err(), "{input:?} in steps of {step}");
            }
        }
    }

    #[test]
    fn a_long_size_line_is_refused_however_it_arrives() {
        let ext = "a".repeat(2 * MAX_SIZE_LINE);
        let input = format!("5;{ext}\r\nhello\r\n0\r\n\r\n");
        for step in [1, 1000, input.len()] {
            let err = decode_all(input.as_bytes(), step).unwrap_err();
            assert_eq!(err.reason, "Chunk size line too long", "steps of {step}");
        }
        // Just under the limit is fine, in one read or many.
        let ext = "a".repeat(MAX_SIZE_LINE - 6);
        let input = format!("1;{ext}\r\n!\r\n0\r\n\r\n");
        for step in [1, 1000, input.len()] {
            assert_eq!(decode_all(input.as_bytes(), step).unwrap().0, b"!");
        }
    }

    #[test]
    fn whole_or_split_input_gives_the_same_outcome() {
        let cases: [&[u8]; 6] = [
            b"5\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"0\r\nx: 1\r\ny: 2\r\n\r\n",
            b"0\r\nbad header\r\n\r\n",
            b"g\r\n",
        ];
        for input in cases {
            let whole = decode_all(input, input.len()).map(|(body, _)| body);
            for step in 1..input.len() {
                let split = decode_all(input, step).map(|(body, _)| body);
                assert_eq!(whole.is_ok(), split.is_ok(), "{input:?} in steps of {step}");
                if let (Ok(a), Ok(b)) = (&whole, &split) {
                    assert_eq!(a, b);
                }
            }
        }
    }

    #[test]
    fn empty_body() {
        assert_eq!(decode_all(b"0\r\n\r\n", 1).unwrap().0, b"");
        assert_eq!(decode_all(b"000\r\n\r\n", 3).unwrap().0, b"");
    }

    #[test]
    fn refuses_bad_sizes() {
        for bad in [
            &b"x\r\n"[..],
            b"-1\r\n",
            b"\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
            b"5 ;a\r\nhello\r\n0\r\n\r\n",
            b"0\r\nbad trailer\r\n\r\n",
        ] {
            assert_eq!(decode_all(bad, 64).unwrap_err().status, 400, "{bad:?}");
        }
    }

    #[test]
    fn largest_size_is_accepted() {
        assert_eq!(parse_size_line(b"ffffffffffffffff\r\n").unwrap(), Some((18, u64::MAX)));
    }

    #[test]
    fn long_lines_are_bounded() {
        let mut line = b"1;".to_vec();
        line.extend(std::iter::repeat_n(b'a', MAX_SIZE_LINE));
        assert!(decode_all(&line, 100).is_err());
        let mut trailers = b"0\r\n".to_vec();
        trailers.extend(std::iter::repeat_n(b'a', 2000));
        assert_eq!(decode_all(&trailers, 100).unwrap_err().status, 431);
    }
}
