//! PEP 734 queues (as in CPython 3.14's `concurrent.interpreters`), plus
//! closing: after `close()`, puts fail and gets drain what is left.

use std::sync::Arc;

use crate::fifo::{Capacity, Fifo, Unbound};
use crate::registry::Registry;

/// Every live queue in the process.
pub static QUEUES: Registry<Queue> = Registry::new();

pub struct Queue {
    id: u64,
    /// As given: 0 or negative means unbounded, and is reported back as given (as in 3.14).
    maxsize: i64,
    /// Refuse objects that would need pickling.
    pub strict: bool,
    /// What happens to items of a closed interpreter unless `put` says otherwise.
    pub default_unbound: Unbound,
    pub fifo: Fifo,
}

impl Queue {
    /// A new queue; `maxsize` 0 or negative means unbounded.
    pub fn create(maxsize: i64, default_unbound: Unbound, strict: bool) -> Arc<Queue> {
        let capacity = match usize::try_from(maxsize) {
            Ok(bound) if bound > 0 => Capacity::Bounded(bound),
            _ => Capacity::Unbounded,
        };
        QUEUES.insert(|id| Queue { id, maxsize, strict, default_unbound, fifo: Fifo::new(capacity) })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn maxsize(&self) -> i64 {
        self.maxsize
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        QUEUES.remove(self.id);
    }
}

/// Applies the unbound-item rules to every queue, for a closed interpreter.
pub fn interpreter_closed(interp: i64) {
    for queue in QUEUES.live() {
        queue.fifo.unbind_origin(interp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_register_and_unregister() {
        let q = Queue::create(3, Unbound::Replace, false);
        assert_eq!(q.maxsize(), 3);
        assert!(QUEUES.get(q.id()).is_some());
        let id = q.id();
        drop(q);
        assert!(QUEUES.get(id).is_none());
    }
}
