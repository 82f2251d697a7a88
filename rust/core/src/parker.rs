//! A per-thread wake-up: `park` blocks until `unpark` is called (an `unpark`
//! that comes first is remembered), a deadline passes, or a signal arrives.
//!
//! Blocked callers register their thread's parker with what they wait on,
//! check the condition again, then park: the "listen, check again, wait"
//! protocol of event-listener, which cannot lose a wake-up. The parker is a
//! futex with a three-state word, as std's thread parker, so waking costs a
//! syscall only when the other thread really sleeps (an eventfd parker cost
//! three syscalls per wake-up). Unlike std's, a signal ends the wait
//! (`EINTR` is reported as `Interrupted`), so Ctrl-C reaches the main thread
//! while it is blocked.

use std::time::Instant;

use crate::sync::Arc;
pub use crate::sys::WaitResult;

#[cfg(not(loom))]
pub struct Parker {
    /// EMPTY, NOTIFIED or PARKED; the futex word.
    state: std::sync::atomic::AtomicU32,
    cancelled: std::sync::atomic::AtomicBool,
    /// The thread is inside a blocking wait of ours (see `Waiting`).
    waiting: std::sync::atomic::AtomicBool,
}

#[cfg(not(loom))]
const EMPTY: u32 = 0;
#[cfg(not(loom))]
const NOTIFIED: u32 = 1;
#[cfg(not(loom))]
const PARKED: u32 = 2;

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
                let ident = crate::sys::thread_ident();
                let pending = PENDING_CANCELS.lock().unwrap_or_else(|p| p.into_inner()).remove(&ident);
                let parker = Arc::new(Parker {
                    state: std::sync::atomic::AtomicU32::new(EMPTY),
                    cancelled: std::sync::atomic::AtomicBool::new(pending),
                    waiting: std::sync::atomic::AtomicBool::new(false),
                });
                let mut all = PARKERS.lock().unwrap_or_else(|p| p.into_inner());
                all.retain(|_, weak| weak.strong_count() > 0);
                all.insert(ident, Arc::downgrade(&parker));
                parker
            };
        }
        PARKER.with(Arc::clone)
    }

    /// Whether another thread cancelled this thread's waits; clears it.
    pub fn take_cancel(&self) -> bool {
        self.cancelled.swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    /// Marks the thread as blocked in a wait of ours until the guard drops.
    pub fn waiting(&self) -> Waiting<'_> {
        self.waiting.store(true, std::sync::atomic::Ordering::SeqCst);
        Waiting(self)
    }

    /// Sleeps on this thread's futex until `unpark`, the deadline, or a
    /// signal (reported as `Interrupted`, as is a spurious return: the
    /// caller runs Python's signal handlers, cheap when none is pending,
    /// and waits again).
    pub fn park(&self, deadline: Option<Instant>) -> WaitResult {
        use std::sync::atomic::Ordering::SeqCst;
        if self.state.compare_exchange(NOTIFIED, EMPTY, SeqCst, SeqCst).is_ok() {
            return WaitResult::Ready;
        }
        if self.state.compare_exchange(EMPTY, PARKED, SeqCst, SeqCst).is_err() {
            self.state.store(EMPTY, SeqCst); // an unpark came in between
            return WaitResult::Ready;
        }
        let slept = crate::sys::futex_wait(&self.state, PARKED, deadline);
        if self.state.swap(EMPTY, SeqCst) == NOTIFIED {
            return WaitResult::Ready;
        }
        match slept {
            WaitResult::TimedOut => WaitResult::TimedOut,
            _ if deadline.is_some_and(|d| Instant::now() >= d) => WaitResult::TimedOut,
            _ => WaitResult::Interrupted,
        }
    }

    /// Wakes the thread; a syscall only if it is asleep.
    pub fn unpark(&self) {
        if self.state.swap(NOTIFIED, std::sync::atomic::Ordering::SeqCst) == PARKED {
            crate::sys::futex_wake(&self.state);
        }
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

    pub fn waiting(&self) {}

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

/// While alive, the thread counts as blocked in one of our waits.
#[cfg(not(loom))]
pub struct Waiting<'a>(&'a Parker);

#[cfg(not(loom))]
impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Whether thread `ident` is blocked in one of our waits right now.
#[cfg(not(loom))]
pub fn is_waiting(ident: u64) -> bool {
    let parker =
        PARKERS.lock().unwrap_or_else(|p| p.into_inner()).get(&ident).and_then(std::sync::Weak::upgrade);
    parker.is_some_and(|p| p.waiting.load(std::sync::atomic::Ordering::SeqCst))
}

/// Cancellations aimed at threads that have not waited yet (no parker):
/// applied when the thread makes its parker, dropped by `clear_cancel`.
#[cfg(not(loom))]
static PENDING_CANCELS: std::sync::Mutex<std::collections::BTreeSet<u64>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Makes the current and next waits of thread `ident` (a `threading.get_ident()`)
/// return `Cancelled`, until the thread calls `clear_cancel`.
#[cfg(not(loom))]
pub fn cancel_thread(ident: u64) {
    let parker =
        PARKERS.lock().unwrap_or_else(|p| p.into_inner()).get(&ident).and_then(std::sync::Weak::upgrade);
    match parker {
        Some(parker) => {
            parker.cancelled.store(true, std::sync::atomic::Ordering::SeqCst);
            parker.unpark();
        }
        None => {
            PENDING_CANCELS.lock().unwrap_or_else(|p| p.into_inner()).insert(ident);
        }
    }
}

/// Withdraws a cancellation of thread `ident` that is no longer wanted (the
/// close that asked for it gave up).
#[cfg(not(loom))]
pub fn withdraw_cancel(ident: u64) {
    PENDING_CANCELS.lock().unwrap_or_else(|p| p.into_inner()).remove(&ident);
    let parker =
        PARKERS.lock().unwrap_or_else(|p| p.into_inner()).get(&ident).and_then(std::sync::Weak::upgrade);
    if let Some(parker) = parker {
        parker.take_cancel();
    }
}

/// Forgets a cancellation aimed at the calling thread (it left the
/// interpreter that was being closed).
#[cfg(not(loom))]
pub fn clear_cancel() {
    PENDING_CANCELS.lock().unwrap_or_else(|p| p.into_inner()).remove(&crate::sys::thread_ident());
    Parker::current().take_cancel();
}

/// Two parkers are the same waiter if they are the same allocation.
pub fn same(a: &Arc<Parker>, b: &Arc<Parker>) -> bool {
    Arc::ptr_eq(a, b)
}
