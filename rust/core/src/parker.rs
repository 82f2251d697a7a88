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
//!
//! Before it sleeps, a wait may spin for up to [`SPIN_BUDGET`], if this
//! thread's recent waits were short ([`crate::park_spin`] decides when): on a VM
//! that halts idle CPUs, sleeping and being woken costs tens of microseconds
//! more than the hand-off itself. The spin only watches the futex word, so
//! it changes nothing in the protocol (see `Parker::spin`).

use std::time::Instant;

#[cfg(not(loom))]
use crate::park_spin::{SpinPolicy, SPIN_BUDGET, SPIN_OVERRUN};
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

#[cfg(not(loom))]
thread_local! {
    /// Whether this thread's waits spin first (only its own `park` uses it).
    static SPIN_POLICY: std::cell::Cell<SpinPolicy> = const { std::cell::Cell::new(SpinPolicy::new()) };
}

/// How many threads may spin at once: one per CPU, none with one CPU.
/// Both ends of a ping-pong must be able to spin, each while it waits for the
/// other: with half the CPUs (one on 2 CPUs) the end that found the place
/// taken slept, and an idle round trip stayed at about 100 µs (two wakes of a
/// halted virtual CPU) instead of 2-3 µs. A spinner that keeps another thread
/// from the CPU it needs runs out or overruns its budget and stops (see
/// `park_spin`). Decided once per process: std's count follows the calling
/// thread's affinity mask (and the cgroup's CPU quota), so the extension
/// calls this when it is first imported, before code pins the thread that
/// happens to wait first.
///
/// An atomic rather than a `OnceLock`: the number is all it holds (a
/// `Relaxed` compare-exchange decides it once, the first caller to finish
/// wins), and ThreadSanitizer cannot see `OnceLock`'s hand-off, which std
/// makes in code built without it (`scripts/tsan`).
#[cfg(not(loom))]
pub fn spinners_allowed() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    const UNDECIDED: usize = usize::MAX;
    static ALLOWED: AtomicUsize = AtomicUsize::new(UNDECIDED);
    let allowed = ALLOWED.load(Relaxed);
    if allowed != UNDECIDED {
        return allowed;
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| if n.get() > 1 { n.get() } else { 0 });
    match ALLOWED.compare_exchange(UNDECIDED, cpus, Relaxed, Relaxed) {
        Ok(_) => cpus,
        Err(decided) => decided,
    }
}

/// A place among the threads spinning right now (see `spinners_allowed`).
#[cfg(not(loom))]
struct SpinSlot;

#[cfg(not(loom))]
static SPINNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[cfg(not(loom))]
impl SpinSlot {
    fn take() -> Option<SpinSlot> {
        use std::sync::atomic::Ordering::Relaxed;
        if SPINNING.fetch_add(1, Relaxed) < spinners_allowed() {
            Some(SpinSlot)
        } else {
            SPINNING.fetch_sub(1, Relaxed);
            None
        }
    }
}

#[cfg(not(loom))]
impl Drop for SpinSlot {
    fn drop(&mut self) {
        SPINNING.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Every thread's parker by thread id, so that closing an interpreter can
/// wake the thread blocked inside it (`cancel_thread`).
#[cfg(not(loom))]
static PARKERS: crate::sync::plain::Mutex<std::collections::BTreeMap<u64, std::sync::Weak<Parker>>> =
    crate::sync::plain::Mutex::new(std::collections::BTreeMap::new());

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

    /// Blocks until `unpark`, the deadline, or a signal (reported as
    /// `Interrupted`, as is a spurious return: the caller runs Python's
    /// signal handlers, cheap when none is pending, and waits again). Only
    /// the thread that owns the parker parks on it.
    ///
    /// If this thread's recent waits were short, it first spins for up to
    /// [`SPIN_BUDGET`]; a spin that runs out returns `Interrupted` instead of
    /// sleeping, so a signal that came during the spin (which no system call
    /// was there to report) is handled no later than the budget, and the
    /// caller's next wait sleeps at once.
    pub fn park(&self, deadline: Option<Instant>) -> WaitResult {
        use std::sync::atomic::Ordering::SeqCst;
        if self.state.compare_exchange(NOTIFIED, EMPTY, SeqCst, SeqCst).is_ok() {
            return WaitResult::Ready;
        }
        let mut policy = SPIN_POLICY.get();
        let slot = if policy.spins() { SpinSlot::take() } else { None };
        if let Some(slot) = slot {
            let start = Instant::now();
            let spun = self.spin(start, deadline);
            drop(slot);
            match spun {
                _ if start.elapsed() > SPIN_OVERRUN => policy.lost_the_cpu(),
                WaitResult::Ready => policy.woken_while_spinning(),
                WaitResult::Interrupted => policy.spin_ran_out(),
                // A deadline inside the budget says nothing of the feed rate.
                _ => {}
            }
            SPIN_POLICY.set(policy);
            return spun;
        }
        // Also when all spinning places were taken: the wait's length still
        // says whether this thread's waits are short.
        let start = Instant::now();
        let slept = self.sleep(deadline);
        policy.slept(start.elapsed());
        SPIN_POLICY.set(policy);
        slept
    }

    /// Watches the futex word for an `unpark` for up to [`SPIN_BUDGET`] (or
    /// until the deadline, if sooner): `Ready` if one came, `TimedOut` at the
    /// deadline, `Interrupted` if the budget ran out.
    ///
    /// Why this cannot lose a wake-up: the spin only reads the word and makes
    /// the one transition `park`'s first line makes, NOTIFIED to EMPTY, which
    /// consumes an `unpark` that already happened. It never writes EMPTY or
    /// PARKED, so to `unpark` a spinning thread looks exactly like a thread
    /// that has not parked yet (its swap to NOTIFIED makes no system call),
    /// and a later `park` starts the futex protocol from the state the spin
    /// left. The loom model (a Mutex/Condvar parker with the same contract:
    /// an `unpark` is remembered, spurious returns are allowed) therefore
    /// still covers the waiters' hand-off.
    ///
    /// It never calls `sched_yield`: on a busy CPU that hands the CPU to the
    /// busy thread for a scheduler slice (milliseconds per round trip in the
    /// ping-pong benchmark with one busy process per CPU), where a thread
    /// asleep on the futex is woken ahead of it. A peer that needs this CPU
    /// to answer makes the spin run out instead, and the policy stops it.
    fn spin(&self, start: Instant, deadline: Option<Instant>) -> WaitResult {
        use std::sync::atomic::Ordering::{Relaxed, SeqCst};
        let budget_end = start + SPIN_BUDGET;
        let end = deadline.map_or(budget_end, |d| d.min(budget_end));
        loop {
            if self.state.load(Relaxed) == NOTIFIED
                && self.state.compare_exchange(NOTIFIED, EMPTY, SeqCst, SeqCst).is_ok()
            {
                return WaitResult::Ready;
            }
            if Instant::now() >= end {
                return if end < budget_end { WaitResult::TimedOut } else { WaitResult::Interrupted };
            }
            std::hint::spin_loop();
        }
    }

    /// Sleeps on the futex word until `unpark`, the deadline, or a signal.
    fn sleep(&self, deadline: Option<Instant>) -> WaitResult {
        use std::sync::atomic::Ordering::SeqCst;
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

/// The parker loom model-checks the waiters' hand-off with: the same
/// contract as the futex parker (an `unpark` before `park` is remembered),
/// built on loom's Mutex/Condvar. It has no spin: the futex parker's spin is
/// invisible to that contract (see its `spin`).
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
static PENDING_CANCELS: crate::sync::plain::Mutex<std::collections::BTreeSet<u64>> =
    crate::sync::plain::Mutex::new(std::collections::BTreeSet::new());

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
