//! Synchronization primitives, routed through one place so that `loom` can
//! model-check the waiter hand-off (`RUSTFLAGS="--cfg loom" cargo test`).

#[cfg(loom)]
pub use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(loom))]
pub use std::sync::{Arc, Mutex, MutexGuard};

/// Locks, recovering from poisoning: state is plain data, valid after a panic.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(loom)]
    return mutex.lock().unwrap();
    #[cfg(not(loom))]
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
