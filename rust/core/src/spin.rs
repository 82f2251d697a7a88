//! Telling a caller that spins on a non-blocking operation from one that polls.
//!
//! A thread that calls `get_nowait()` in a loop until an item comes waits
//! without telling the kernel. With a CPU of its own that costs only that CPU;
//! but when the thread it waits for is runnable on the same CPU (the machine
//! is busy, or the scheduler placed both there), the spinner burns its whole
//! time slice, a millisecond or more, before the producer can run: measured
//! for issue 14, 1 MiB items through a queue went from 65 µs to 500 µs each,
//! for our queues and the standard library's alike, when both spinning sides
//! shared one CPU.
//!
//! [`SpinWatch`] recognizes the spin: non-blocking calls that found nothing to
//! do, back to back (at most [`BACK_TO_BACK`] apart), for at least
//! [`SPIN_BUDGET`]. From then on the binding yields the CPU on each such call
//! (`sched_yield`, with the GIL released), which costs a spinning caller
//! nothing it was using and lets a producer sharing its CPU run at once. A
//! caller that does work between its polls, or whose polls succeed, never
//! yields: nothing changes for it. The watch is per thread, plain data, and
//! takes the time as an argument so its rule is unit-tested here.

use std::time::{Duration, Instant};

/// The longest gap between two fruitless calls that still counts as spinning:
/// an empty `get_nowait()` in a Python loop takes about 1 µs.
pub const BACK_TO_BACK: Duration = Duration::from_micros(20);

/// How long a caller spins before it starts yielding: long enough that a
/// short wait (a reply that comes within a few µs) is never slowed down.
pub const SPIN_BUDGET: Duration = Duration::from_micros(50);

/// One thread's current run of fruitless non-blocking calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpinWatch {
    /// When the run began, and when its latest call ended.
    run: Option<(Instant, Instant)>,
}

impl SpinWatch {
    pub const fn new() -> SpinWatch {
        SpinWatch { run: None }
    }

    /// A non-blocking call found nothing to do at `now`: whether the caller
    /// has spun long enough that it should yield the CPU.
    pub fn fruitless(&mut self, now: Instant) -> bool {
        let first = match self.run {
            Some((first, last)) if now.saturating_duration_since(last) <= BACK_TO_BACK => first,
            _ => now,
        };
        self.run = Some((first, now));
        now.saturating_duration_since(first) >= SPIN_BUDGET
    }

    /// The caller yielded and runs again at `now`: the time it was away does
    /// not end the run.
    pub fn resumed(&mut self, now: Instant) {
        if let Some((first, _)) = self.run {
            self.run = Some((first, now));
        }
    }

    /// A call did something (an item was taken or put): the run is over.
    pub fn progressed(&mut self) {
        self.run = None;
    }

    /// Whether a run of fruitless calls is going on.
    pub fn spinning(&self) -> bool {
        self.run.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: Duration = Duration::from_micros(1);

    /// Polls every `POLL` from `start` until the watch says to yield;
    /// returns how long that took.
    fn spin_until_yield(watch: &mut SpinWatch, start: Instant) -> Duration {
        let mut now = start;
        while !watch.fruitless(now) {
            now += POLL;
            assert!(now - start < SPIN_BUDGET * 2, "never told to yield");
        }
        now - start
    }

    #[test]
    fn back_to_back_fruitless_calls_yield_after_the_budget() {
        let mut watch = SpinWatch::new();
        let start = Instant::now();
        assert_eq!(spin_until_yield(&mut watch, start), SPIN_BUDGET);
        // Every further fruitless call yields, however long the yield took.
        let back = start + SPIN_BUDGET + Duration::from_millis(3);
        watch.resumed(back);
        assert!(watch.fruitless(back + POLL));
    }

    #[test]
    fn a_short_wait_never_yields() {
        let mut watch = SpinWatch::new();
        let start = Instant::now();
        let mut now = start;
        while now - start < SPIN_BUDGET - POLL {
            assert!(!watch.fruitless(now));
            now += POLL;
        }
        watch.progressed();
        assert!(!watch.spinning());
        // The next wait starts its own run.
        assert!(!watch.fruitless(now + POLL));
    }

    #[test]
    fn polling_between_other_work_never_yields() {
        let mut watch = SpinWatch::new();
        let mut now = Instant::now();
        for _ in 0..1000 {
            assert!(!watch.fruitless(now));
            now += BACK_TO_BACK + POLL;
        }
    }

    #[test]
    fn a_gap_restarts_the_run() {
        let mut watch = SpinWatch::new();
        let start = Instant::now();
        spin_until_yield(&mut watch, start);
        let later = start + SPIN_BUDGET + BACK_TO_BACK + Duration::from_millis(1);
        assert!(!watch.fruitless(later));
        assert_eq!(spin_until_yield(&mut watch, later + POLL), SPIN_BUDGET - POLL);
    }

    #[test]
    fn resuming_without_a_run_starts_none() {
        let mut watch = SpinWatch::new();
        watch.resumed(Instant::now());
        assert!(!watch.spinning());
    }
}
