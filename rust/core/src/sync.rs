//! Synchronization primitives, routed through one place so that `loom` can
//! model-check the waiter hand-off (`RUSTFLAGS="--cfg loom" cargo test`), and
//! so that ThreadSanitizer sees every lock (`--cfg tsan`, see `scripts/tsan`).

#[cfg(loom)]
pub use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(loom))]
pub use plain::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub use std::sync::Arc;

/// Locks, recovering from poisoning: state is plain data, valid after a panic.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(loom)]
    return mutex.lock().unwrap();
    #[cfg(not(loom))]
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The locks loom does not model (statics, the interpreter table, loans):
/// std's, even under `--cfg loom`. Under `--cfg tsan`, std's wrapped so that
/// ThreadSanitizer sees them (see `tsan`).
pub mod plain {
    #[cfg(not(tsan))]
    pub use std::sync::{Condvar, Mutex, MutexGuard};

    #[cfg(tsan)]
    pub use super::tsan::{Condvar, Mutex, MutexGuard};
}

/// std's `Mutex` and `Condvar` as ThreadSanitizer can see them, for
/// `scripts/tsan` only (`--cfg tsan`).
///
/// Without rust-src, std cannot be rebuilt with `-Zsanitizer=thread`. What
/// std code is inlined into this crate (the uncontended lock and the unlock)
/// is instrumented, but `futex::Mutex::lock_contended` and the unlock and
/// relock inside `Condvar::wait` run in std's uninstrumented machine code. So
/// TSan misses the unlock-to-lock edge whenever a lock was contended, and
/// reports every access under such a lock as a race. TSan suppressions cannot
/// help: the racing stacks hold only our frames (std's are not on them).
///
/// So each lock also hands off through an atomic that TSan sees: a `Release`
/// increment before every unlock (the guard's drop, or a condition wait), an
/// `Acquire` load after every lock. That is exactly the edge the real mutex
/// makes, no more, so it hides no missing synchronization of ours; mutual
/// exclusion itself still comes from std's mutex.
#[cfg(tsan)]
mod tsan {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{LockResult, PoisonError, WaitTimeoutResult};
    use std::time::Duration;

    #[derive(Default)]
    pub struct Mutex<T> {
        /// Bumped (`Release`) before each unlock, read (`Acquire`) after each lock.
        handoff: AtomicUsize,
        inner: std::sync::Mutex<T>,
    }

    impl<T> Mutex<T> {
        pub const fn new(value: T) -> Mutex<T> {
            Mutex { handoff: AtomicUsize::new(0), inner: std::sync::Mutex::new(value) }
        }

        pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
            rewrap(self.inner.lock(), |inner| MutexGuard::locked(inner, &self.handoff))
        }
    }

    pub struct MutexGuard<'a, T> {
        /// `None` only while a `Condvar` wait has the lock released.
        inner: Option<std::sync::MutexGuard<'a, T>>,
        handoff: &'a AtomicUsize,
    }

    impl<'a, T> MutexGuard<'a, T> {
        fn locked(inner: std::sync::MutexGuard<'a, T>, handoff: &'a AtomicUsize) -> MutexGuard<'a, T> {
            handoff.load(Ordering::Acquire);
            MutexGuard { inner: Some(inner), handoff }
        }

        /// Releases the hand-off and gives up std's guard, to unlock it.
        fn unlocking(mut self) -> std::sync::MutexGuard<'a, T> {
            self.handoff.fetch_add(1, Ordering::Release);
            self.inner.take().expect("locked")
        }
    }

    impl<T> std::ops::Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.inner.as_deref().expect("locked")
        }
    }

    impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.inner.as_deref_mut().expect("locked")
        }
    }

    impl<T> Drop for MutexGuard<'_, T> {
        fn drop(&mut self) {
            // Before the field drops, which unlocks.
            if self.inner.is_some() {
                self.handoff.fetch_add(1, Ordering::Release);
            }
        }
    }

    #[derive(Default)]
    pub struct Condvar(std::sync::Condvar);

    impl Condvar {
        pub const fn new() -> Condvar {
            Condvar(std::sync::Condvar::new())
        }

        pub fn notify_all(&self) {
            self.0.notify_all();
        }

        /// std's `wait_timeout`, which unlocks while it waits and locks again.
        pub fn wait_timeout<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            timeout: Duration,
        ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
            let handoff = guard.handoff;
            let waited = self.0.wait_timeout(guard.unlocking(), timeout);
            rewrap(waited, |(inner, result)| (MutexGuard::locked(inner, handoff), result))
        }
    }

    /// Maps a lock result, poisoned or not.
    fn rewrap<T, U>(result: LockResult<T>, f: impl FnOnce(T) -> U) -> LockResult<U> {
        match result {
            Ok(value) => Ok(f(value)),
            Err(poisoned) => Err(PoisonError::new(f(poisoned.into_inner()))),
        }
    }
}
