//! The pure-Rust core of interpreters-aio.
//!
//! Nothing here touches Python: the binding crate (`rust/python`) converts
//! objects to and from [`Value`]s and owns every CPython pointer, which this
//! crate only ever sees as an opaque [`interpreters::Handle`]. That split is
//! what lets the rules of DESIGN.md section 3 be unit-tested with `cargo test`.

// `unsafe` is allowed only in `sys`, the core's OS FFI (eventfd, ppoll), and
// `parallel_copy`, whose helper thread copies through raw pointers.
#![deny(unsafe_code)]

// The core waits on eventfd and futex, which only Linux has (a pipe and a
// condition variable would do elsewhere, but nothing tests them yet): say so
// plainly instead of failing on a missing libc symbol.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "interpreters-aio supports Linux only for now (its core waits on eventfd and futex); \
     prebuilt wheels exist for CPython 3.12-3.15 on Linux x86_64"
);

pub mod channel;
pub mod fifo;
pub mod interpreters;
pub mod lending;
#[allow(unsafe_code)]
pub mod parallel_copy;
pub mod park_spin;
pub mod parker;
pub mod queue;
pub mod registry;
pub mod shared;
pub mod spin;
mod sync;
#[allow(unsafe_code)]
pub mod sys;
pub mod value;

pub use interpreters::{CloseTicket, Handle, InterpreterTable, RunTicket, TableError};
pub use value::{Seq, Shared, SharedView, ShippedFunction, Value, MAX_DEPTH};
