//! `SharedBytes`: memory owned by Rust that every interpreter can view without
//! a copy. Sending one sends a reference; the memory is freed when the last
//! holder (a view, an object, a `Value` in transit) in any interpreter lets go.
//!
//! The bytes are `AtomicU8` so that handing out a raw pointer for the buffer
//! protocol needs no `unsafe` here; concurrent writers must coordinate among
//! themselves, exactly as with shared memory between processes.

use std::sync::atomic::AtomicU8;
use std::sync::Arc;

pub struct SharedBytes {
    data: Box<[AtomicU8]>,
}

impl SharedBytes {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> Arc<SharedBytes> {
        Arc::new(SharedBytes { data: (0..len).map(|_| AtomicU8::new(0)).collect() })
    }

    /// A copy of `bytes`.
    pub fn copy_of(bytes: &[u8]) -> Arc<SharedBytes> {
        Arc::new(SharedBytes { data: bytes.iter().map(|&b| AtomicU8::new(b)).collect() })
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The start of the memory, for the buffer protocol.
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.data.as_ptr().cast::<u8>().cast_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_and_zeroes() {
        let z = SharedBytes::zeroed(16);
        assert_eq!(z.len(), 16);
        let c = SharedBytes::copy_of(b"abc");
        assert_eq!(c.len(), 3);
        assert!(!c.is_empty());
        assert!(!c.as_mut_ptr().is_null());
    }
}
