//! HTTP/1.1 for the server side of interpreters-aio's ASGI protocol: request
//! parsing with limits, and response framing. Pure Rust, no Python, no
//! `unsafe`; the CPython binding (`rust/python/src/http.rs`) turns what this
//! crate reports into Python objects in one call per `data_received`.
//!
//! Why our own layer over [`httparse`]: httparse parses one request head from
//! a byte slice and says "partial" when it needs more, which is the right
//! primitive, but leaves buffering, body framing, chunked decoding and the
//! request-smuggling rules (RFC 9112 section 6.3) to the caller. Those live
//! here, as a push parser ([`request::Parser`]) that reports heads, body
//! chunks, ends and errors to a [`request::Sink`], so the binding can build
//! Python objects straight from the borrowed bytes without a copy in between.
//!
//! Strictness follows h11 where h11 and the RFC agree, and refuses where
//! they allow leniency that smuggling attacks rely on (duplicate
//! Content-Length, Content-Length with Transfer-Encoding, bare LF in chunk
//! framing). The test suite checks this against h11 on random input.

pub mod chunked;
pub mod error;
pub mod request;
pub mod response;
mod status;

pub use error::HttpError;
pub use request::{Framing, Head, Limits, Parser, Sink};
pub use response::{BodyMode, FrameError, ResponseHead};
pub use status::reason_phrase;
