//! Why a request was refused: the HTTP status to answer with (400, 413,
//! 431, 501, 505) and a short reason for the log and the response body.

use std::fmt;

/// A request the parser refuses. The connection cannot be reused after one:
/// the caller answers with `status` and `Connection: close`, then closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpError {
    /// The status code to answer with.
    pub status: u16,
    /// What was wrong, in a few words (ASCII, no CR or LF).
    pub reason: &'static str,
}

impl HttpError {
    pub(crate) const fn bad(reason: &'static str) -> HttpError {
        HttpError { status: 400, reason }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.status)
    }
}

impl std::error::Error for HttpError {}

pub(crate) const HEAD_TOO_LARGE: HttpError =
    HttpError { status: 431, reason: "Request header fields too large" };
pub(crate) const TOO_MANY_HEADERS: HttpError = HttpError { status: 431, reason: "Too many request headers" };
pub(crate) const UNSUPPORTED_CODING: HttpError =
    HttpError { status: 501, reason: "Unsupported Transfer-Encoding" };
pub(crate) const CONNECT_NOT_SUPPORTED: HttpError =
    HttpError { status: 501, reason: "CONNECT is not supported" };
pub(crate) const VERSION_NOT_SUPPORTED: HttpError =
    HttpError { status: 505, reason: "HTTP version not supported" };
