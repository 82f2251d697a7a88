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
}

#[cfg(not(loom))]
impl Parker {
    /// The calling thread's parker.
    pub fn current() -> Arc<Parker> {
        thread_local! {
            static PARKER: Arc<Parker> = Arc::new(Parker {
                signal: crate::sys::Signal::new().expect("cannot create an eventfd for waiting"),
            });
        }
        PARKER.with(Arc::clone)
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

/// Two parkers are the same waiter if they are the same allocation.
pub fn same(a: &Arc<Parker>, b: &Arc<Parker>) -> bool {
    Arc::ptr_eq(a, b)
}
