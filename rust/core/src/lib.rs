//! The pure-Rust core of interpreters-aio.
//!
//! Nothing here touches Python: the binding crate (`rust/python`) converts
//! objects to and from [`Value`]s and owns every CPython pointer, which this
//! crate only ever sees as an opaque [`interpreters::Handle`]. That split is
//! what lets the rules of DESIGN.md section 3 be unit-tested with `cargo test`.

#![forbid(unsafe_code)]

pub mod interpreters;
pub mod value;

pub use interpreters::{CloseTicket, Handle, InterpreterTable, RunTicket, TableError};
pub use value::{Seq, ShippedFunction, Value, MAX_DEPTH};
