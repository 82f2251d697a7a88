//! A per-thread wake-up: `park` blocks until `unpark` is called (an `unpark`
//! that comes first is remembered), a deadline passes, or a signal arrives.
//!
//! Blocked callers register their thread's parker with what they wait on,
//! check the condition again, then park: the "listen, check again, wait"
//! protocol of event-listener, which cannot lose a wake-up. On Linux the
//! parker is an eventfd, so a signal interrupts the wait (EINTR) and Ctrl-C
//! reaches the main thread while it is blocked.

use std::time::Instant;

use crate::sync::Arc;
pub use crate::sys::WaitResult;

#[cfg(not(loom))]
pub struct Parker {
    signal: crate::sys::Signal,
    cancelled: std::sync::atomic::AtomicBool,
}

/// Every thread's parker by thread id, so that closing an interpreter can
/// wake the thread blocked inside it (`cancel_thread`).
#[cfg(not(loom))]
static PARKERS: std::sync::Mutex<std::collections::BTreeMap<u64, std::sync::Weak<Parker>>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

#[cfg(not(loom))]
impl Parker {
    /// The calling thread's parker.
    pub fn current() -> Arc<Parker> {
        thread_local! {
            static PARKER: Arc<Parker> = {
                let parker = Arc::new(Parker {
                    signal: crate::sys::Signal::new().expect("cannot create an eventfd for waiting"),
                    cancelled: std::sync::atomic::AtomicBool::new(false),
                });
                let mut all = PARKERS.lock().unwrap_or_else(|p| p.into_inner());
                all.retain(|_, weak| weak.strong_count() > 0);
                all.insert(crate::sys::thread_ident(), Arc::downgrade(&parker));
                parker
            };
        }
        PARKER.with(Arc::clone)
    }

    /// Whether another thread cancelled this thread's waits; clears it.
    pub fn take_cancel(&self) -> bool {
        self.cancelled.swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    pub fn park(&self, deadline: Option<Instant>) -> WaitResult {
        let result = self.signal.wait(deadline);
        if result == WaitResult::Ready {
            self.signal.lower();
        }
        result
    }

    pub fn unpark(&self) {
        self.signal.raise();
    }
}

#[cfg(loom)]
pub struct Parker {
    notified: loom::sync::Mutex<bool>,
    wake: loom::sync::Condvar,
}

#[cfg(loom)]
impl Parker {
    pub fn current() -> Arc<Parker> {
        loom::thread_local! {
            static PARKER: Arc<Parker> = Arc::new(Parker {
                notified: loom::sync::Mutex::new(false),
                wake: loom::sync::Condvar::new(),
            });
        }
        PARKER.with(Arc::clone)
    }

    pub fn take_cancel(&self) -> bool {
        false
    }

    pub fn park(&self, _deadline: Option<Instant>) -> WaitResult {
        let mut notified = self.notified.lock().unwrap();
        while !*notified {
            notified = self.wake.wait(notified).unwrap();
        }
        *notified = false;
        WaitResult::Ready
    }

    pub fn unpark(&self) {
        *self.notified.lock().unwrap() = true;
        self.wake.notify_one();
    }
}

/// Makes the current and next waits of thread `ident` (a `threading.get_ident()`)
/// return `Cancelled`, until the thread calls `clear_cancel`.
#[cfg(not(loom))]
pub fn cancel_thread(ident: u64) -> bool {
    let parker =
        PARKERS.lock().unwrap_or_else(|p| p.into_inner()).get(&ident).and_then(std::sync::Weak::upgrade);
    match parker {
        Some(parker) => {
            parker.cancelled.store(true, std::sync::atomic::Ordering::SeqCst);
            parker.unpark();
            true
        }
        None => false,
    }
}

/// Forgets a cancellation aimed at the calling thread (it left the
/// interpreter that was being closed).
#[cfg(not(loom))]
pub fn clear_cancel() {
    Parker::current().take_cancel();
}

/// Two parkers are the same waiter if they are the same allocation.
pub fn same(a: &Arc<Parker>, b: &Arc<Parker>) -> bool {
    Arc::ptr_eq(a, b)
}
