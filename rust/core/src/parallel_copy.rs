//! Large receives copied on two CPUs.
//!
//! With `sys`, the one module of the core allowed `unsafe`: the helper works
//! on the receiver's slices after their borrow is handed over, so the job
//! keeps raw pointers, with the rule that keeps them valid written on `Job`.
//!
//! A lent item (`lending.rs`) is copied once, by its receiver, into the new
//! `bytes`; for a 1 MiB item that copy is nearly all of the receive (about
//! 20 µs here), and CPython's own queues make the same copy. Two CPUs do it
//! in well under half the time (each copies its half from and into its own
//! cache), so when the receiving thread may run on more than one CPU, it
//! shares the copy of an item from [`PARALLEL_MIN`] up with one helper
//! thread. The copy is cut into chunks that both take in turn from one
//! counter, so the receiver never waits for a helper that is slow to come
//! (asleep, or its CPU busy), only for the one chunk the helper is copying
//! at that moment; a helper that comes late finds nothing left.
//!
//! Waking a sleeping thread costs about 40 µs on this VM (`park_spin.rs`),
//! about twice the copy it would share: so after each job the helper spins
//! for [`HELPER_SPIN`] before it sleeps, and a stream of large items finds it
//! awake. A lone large item wakes it for nothing but one system call
//! (`unpark` makes none when the helper is awake).
//!
//! The helper is plain Rust: it never touches a Python object or an
//! interpreter, only the two byte ranges of a job while the receiver waits
//! for it (the receiver holds the loan's lock, so the source stays put, and
//! the destination is a `bytes` no one else can see yet).

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::sync::plain::Mutex;

/// Copies shorter than this are made by the receiver alone: below it, the
/// hand-off costs more than the half copy it saves.
pub const PARALLEL_MIN: usize = 256 * 1024;

/// What the two threads take in turn: small enough that the receiver's last
/// wait (for the helper's chunk in progress) is about a microsecond.
const CHUNK: usize = 64 * 1024;

/// How long the helper stays awake for the next job.
const HELPER_SPIN: Duration = Duration::from_micros(200);

/// One copy being shared.
struct Job {
    src: *const u8,
    dst: *mut u8,
    len: usize,
    chunks: usize,
    /// The next chunk to take.
    next: AtomicUsize,
    /// How many chunks are copied.
    done: AtomicUsize,
}

// SAFETY: the pointers are dereferenced only for chunks taken from `next`
// below `chunks`, and the receiver that made the job waits (in `copy`) until
// every such chunk is `done` before the ranges may change or go; a job still
// held afterwards (by a helper that came late) only finds `next` past the end.
unsafe impl Send for Job {}
// SAFETY: as above; the shared fields are atomics.
unsafe impl Sync for Job {}

impl Job {
    /// Copies chunks until none is left to take.
    fn work(&self) {
        loop {
            let chunk = self.next.fetch_add(1, Ordering::Relaxed);
            if chunk >= self.chunks {
                return;
            }
            let start = chunk * CHUNK;
            let n = CHUNK.min(self.len - start);
            // SAFETY: `chunk` was taken by this thread alone and is within
            // both ranges, which stay valid until it is counted done (see `Send`).
            unsafe { std::ptr::copy_nonoverlapping(self.src.add(start), self.dst.add(start), n) };
            self.done.fetch_add(1, Ordering::Release);
        }
    }

    fn finished(&self) -> bool {
        self.done.load(Ordering::Acquire) >= self.chunks
    }
}

/// The helper thread and the job it is offered.
struct Helper {
    thread: Thread,
    /// The process it was started in (see `helper`).
    pid: u32,
    job: Mutex<Option<Arc<Job>>>,
    /// Counts the jobs offered: what the helper watches while it spins.
    offered: AtomicU64,
    /// Whether a receiver is using the helper: one at a time, others copy alone.
    taken: AtomicBool,
}

/// The helper, once started: never freed. Atomics, not a lock or a
/// `OnceLock`: a child process forked while some thread held a lock here
/// would block on it forever, and ThreadSanitizer sees atomics (not std's
/// `Once`, `scripts/tsan`).
static HELPER: AtomicPtr<Helper> = AtomicPtr::new(std::ptr::null_mut());
/// Set by the one thread that starts the helper (and left set if that fails).
static STARTING: AtomicBool = AtomicBool::new(false);

/// The helper, started on first use; `None` while another thread starts it,
/// if it could not be started, or in a child process forked since (the
/// helper thread did not come along: the child copies alone, and never
/// touches a lock that a parent's thread may have held at the fork).
fn helper() -> Option<&'static Helper> {
    let started = HELPER.load(Ordering::Acquire);
    if !started.is_null() {
        // SAFETY: set once below from a leaked Box, never freed.
        let helper = unsafe { &*started };
        return (helper.pid == std::process::id()).then_some(helper);
    }
    if STARTING.swap(true, Ordering::AcqRel) {
        return None;
    }
    let spawned = std::thread::Builder::new()
        .name("interpreters-aio-copy".into())
        .stack_size(64 * 1024)
        .spawn(|| loop {
            let started = HELPER.load(Ordering::Acquire);
            if !started.is_null() {
                // SAFETY: as above.
                serve(unsafe { &*started });
            }
            std::thread::park();
        })
        .ok()?;
    // Leaked on purpose: the helper lives as long as the process.
    let helper: &'static Helper = Box::leak(Box::new(Helper {
        thread: spawned.thread().clone(),
        pid: std::process::id(),
        job: Mutex::new(None),
        offered: AtomicU64::new(0),
        taken: AtomicBool::new(false),
    }));
    HELPER.store(std::ptr::from_ref(helper).cast_mut(), Ordering::Release);
    helper.thread.unpark();
    Some(helper)
}

/// The helper thread's loop: take each job offered, help with it, and stay
/// awake for a while for the next.
fn serve(helper: &'static Helper) -> ! {
    let mut seen = 0;
    loop {
        let awake_until = Instant::now() + HELPER_SPIN;
        loop {
            let offered = helper.offered.load(Ordering::Acquire);
            if offered != seen {
                seen = offered;
                break;
            }
            if Instant::now() < awake_until {
                for _ in 0..32 {
                    std::hint::spin_loop();
                }
            } else {
                // `park` returns at once if `unpark` came after the load above.
                std::thread::park();
            }
        }
        let job = helper.job.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Some(job) = job {
            job.work();
        }
    }
}

/// Copies `src` into `dst` (of the same length), on two CPUs when the copy
/// is large and the calling thread may use more than one.
pub fn copy(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "parallel_copy::copy needs equal lengths");
    let len = src.len();
    let shared = len >= PARALLEL_MIN && crate::sys::cpus_allowed() > 1;
    let helper = if shared { helper() } else { None };
    let Some(helper) = helper.filter(|h| !h.taken.swap(true, Ordering::Acquire)) else {
        dst.copy_from_slice(src);
        return;
    };
    // The slices' lifetimes end when this returns, and the job outlives it
    // (a late helper may still hold it): hence raw pointers, used only for
    // chunks counted done before this returns (see `Job`).
    let job = Arc::new(Job {
        src: src.as_ptr(),
        dst: dst.as_mut_ptr(),
        len,
        chunks: len.div_ceil(CHUNK),
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
    });
    *helper.job.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::clone(&job));
    helper.offered.fetch_add(1, Ordering::Release);
    helper.thread.unpark();
    job.work();
    // Only the helper's chunk in progress is left: about a microsecond,
    // unless its CPU was taken from it, hence the yield after a while.
    let mut spins = 0u32;
    while !job.finished() {
        spins += 1;
        if spins < 4096 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    *helper.job.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    helper.taken.store(false, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_every_size_exactly() {
        for len in [0, 1, CHUNK - 1, PARALLEL_MIN - 1, PARALLEL_MIN, PARALLEL_MIN + 1, 3 * CHUNK * 7 + 5] {
            let src: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut dst = vec![0u8; len];
            copy(&mut dst, &src);
            assert_eq!(src, dst, "len {len}");
        }
    }

    #[test]
    fn receivers_on_many_threads_share_one_helper() {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for round in 0..50 {
                        let len = PARALLEL_MIN + round * 4099 + t;
                        let src: Vec<u8> = (0..len).map(|i| ((i + round + t) % 253) as u8).collect();
                        let mut dst = vec![0u8; len];
                        copy(&mut dst, &src);
                        assert!(src == dst, "thread {t} round {round}");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
    }
}
