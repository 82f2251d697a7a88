//! When a blocked thread should spin for a while before it sleeps: learned
//! from that thread's own recent waits.
//!
//! Why spin at all: on a VM that halts an idle virtual CPU at once, waking a
//! thread asleep in `futex` costs about 40 µs (the waker's `FUTEX_WAKE` sends
//! an IPI that exits to the host, then the halted vCPU has to be resumed),
//! and a blocking round trip pays that twice (docs/design.md, "Queues and
//! channels"). A thread that spins instead keeps its CPU awake and sees the
//! hand-off within a microsecond, and its waker makes no system call.
//!
//! Why adaptively: a spin that does not end with a wake-up is CPU burnt for
//! nothing. So a thread spins only while its waits have lately been short,
//! as glibc's adaptive mutex, Go's runtime mutex and parking_lot's `SpinWait`
//! do in their own ways; ours learns from the outcome of each wait:
//!
//! - a wait woken during its spin keeps the thread spinning;
//! - a spin that runs out (nothing came within the budget) returns without
//!   sleeping, and the caller's next wait sleeps. If that wait is long too,
//!   spinning stops at once, and the number of short waits that turn it back
//!   on doubles (3, 6, 12, ... up to 256), so a consumer whose feed rate sits
//!   just past the budget pays one wasted spin per hundreds of waits, not
//!   per wait. If it is short (the item came just after the budget: the
//!   peer that should answer was asleep, and waking it takes about as long
//!   as the budget), spinning goes on, up to [`NEAR_MISSES`] such spins in a
//!   row. That is how a ping-pong starts: once one end spins and answers at
//!   once, the other's waits are short and it starts spinning too, and both
//!   CPUs stay awake;
//! - while not spinning, a wait that ended within [`SHORT_WAIT`] counts
//!   towards that number, and a longer one halves the count: a thread that
//!   is fed rarely never gets there, while the odd late wake-up does not
//!   undo the learning of a thread fed often. A wait that slept less than
//!   [`CHEAP_WAKE`] does not count: its wake-up was cheap (the CPUs were
//!   awake, as on a busy machine, or the peer shares this CPU), so spinning
//!   would save little;
//! - a spin that took longer than [`SPIN_OVERRUN`] lost its CPU to another
//!   thread: spinning stops at once, as after a wasted spin.
//!
//! The spin itself, and the limit on how many threads spin at once, are in
//! `parker.rs`.
//!
//! [`SHORT_WAIT`] is longer than the spin budget because a wait that sleeps
//! also pays the wake-up it would have saved by spinning: an idle ping-pong
//! whose waits take about 60 µs asleep takes about 2 µs while both ends spin.
//!
//! The policy is plain data with no clock, so it is tested as a pure
//! function of the outcomes it is fed.

use std::time::Duration;

/// The longest a wait spins before it sleeps: longer than waking a halted
/// virtual CPU (40-60 µs here), so a spinner catches the reply of a peer
/// that was asleep. (50 µs ran out just before it, as often as not.)
pub const SPIN_BUDGET: Duration = Duration::from_micros(100);

/// A spin that took longer than this lost its CPU to another thread for a
/// while (it was preempted).
pub const SPIN_OVERRUN: Duration = Duration::from_micros(2 * SPIN_BUDGET.as_micros() as u64);

/// A wait that slept this long or less counts as short.
pub const SHORT_WAIT: Duration = Duration::from_micros(200);

/// A wait that slept less than this was woken cheaply (the CPUs were awake,
/// as on a busy machine): a spin would save little, and costs the thread the
/// head start the scheduler gives a thread it wakes, so such a wait does not
/// count towards spinning.
pub const CHEAP_WAKE: Duration = Duration::from_micros(20);

// A wait woken during its spin would otherwise count as long.
const _: () = assert!(SPIN_BUDGET.as_nanos() <= SHORT_WAIT.as_nanos());

/// Short waits that turn spinning on, at first and after a spin that paid
/// off.
const FIRST_STREAK: u16 = 3;

/// The most short waits ever needed to turn spinning back on.
const MAX_STREAK: u16 = 256;

/// Spins in a row that may run out, each followed by a short wait, before
/// spinning stops.
pub const NEAR_MISSES: u8 = 4;

/// One thread's spin-or-sleep state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpinPolicy {
    /// Short waits counted while not spinning (at `needed`: spinning).
    streak: u16,
    /// Short waits that turn spinning on.
    needed: u16,
    /// Spins in a row that ran out although the wait ended soon after.
    near_misses: u8,
    /// A spin ran out: the next wait sleeps, and how long it takes decides
    /// whether to go on spinning.
    on_probation: bool,
}

impl Default for SpinPolicy {
    fn default() -> Self {
        SpinPolicy::new()
    }
}

impl SpinPolicy {
    /// A thread that has not waited yet: it sleeps until it has seen
    /// `FIRST_STREAK` short waits.
    pub const fn new() -> SpinPolicy {
        SpinPolicy { streak: 0, needed: FIRST_STREAK, near_misses: 0, on_probation: false }
    }

    /// Whether the next wait should spin before it sleeps.
    pub fn spins(&self) -> bool {
        !self.on_probation && self.streak >= self.needed
    }

    /// The wait was woken while it spun: keep spinning, and forget earlier
    /// spins that ran out.
    pub fn woken_while_spinning(&mut self) {
        self.needed = FIRST_STREAK;
        self.streak = FIRST_STREAK;
        self.near_misses = 0;
    }

    /// The wait spun for the whole budget and nothing came: the next wait
    /// sleeps, and says whether to spin again (see `slept`).
    pub fn spin_ran_out(&mut self) {
        self.on_probation = true;
    }

    /// The spin took far longer than its budget ([`SPIN_OVERRUN`]): another
    /// thread had this CPU meanwhile, and while it is busy a spinning
    /// thread only waits for its turn, where a sleeping one would be woken
    /// ahead of it. Spinning stops at once, as after a wasted spin.
    pub fn lost_the_cpu(&mut self) {
        self.stop_spinning();
    }

    fn stop_spinning(&mut self) {
        self.on_probation = false;
        self.near_misses = 0;
        self.streak = 0;
        self.needed = self.needed.saturating_mul(2).min(MAX_STREAK);
    }

    /// The wait did not spin and ended after `waited` (woken, timed out or
    /// interrupted: all say how soon this thread's waits end).
    ///
    /// After a spin that ran out, a long wait stops spinning at once and
    /// doubles the short waits needed to start again; a short one (the
    /// feed is quick, the peer was asleep) keeps spinning, up to
    /// `NEAR_MISSES` times in a row.
    pub fn slept(&mut self, waited: Duration) {
        let short = waited <= SHORT_WAIT;
        if self.on_probation {
            self.on_probation = false;
            if short && self.near_misses < NEAR_MISSES {
                self.near_misses += 1;
            } else {
                self.stop_spinning();
            }
        } else if waited < CHEAP_WAKE {
            // Neither short enough to learn from nor long.
        } else if short {
            self.streak = (self.streak + 1).min(self.needed);
        } else {
            self.streak /= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_micros(60);
    const LONG: Duration = Duration::from_millis(2);

    /// Feeds `n` short sleeps; returns after how many the policy spins.
    fn short_sleeps_until_spinning(policy: &mut SpinPolicy, n: u32) -> Option<u32> {
        for i in 1..=n {
            policy.slept(SHORT);
            if policy.spins() {
                return Some(i);
            }
        }
        None
    }

    #[test]
    fn a_new_thread_sleeps_until_its_waits_prove_short() {
        let mut policy = SpinPolicy::new();
        assert!(!policy.spins());
        assert_eq!(short_sleeps_until_spinning(&mut policy, 100), Some(u32::from(FIRST_STREAK)));
    }

    #[test]
    fn a_long_wait_halves_the_count() {
        let mut policy = SpinPolicy::new();
        for _ in 1..FIRST_STREAK {
            policy.slept(SHORT);
        }
        policy.slept(LONG);
        assert!(!policy.spins());
        let left = u32::from(FIRST_STREAK - (FIRST_STREAK - 1) / 2);
        assert_eq!(short_sleeps_until_spinning(&mut policy, 100), Some(left));
    }

    #[test]
    fn cheap_wake_ups_do_not_teach_spinning() {
        let mut policy = SpinPolicy::new();
        for _ in 0..10_000 {
            policy.slept(CHEAP_WAKE - Duration::from_nanos(1));
            assert!(!policy.spins());
        }
        // Nor do they undo what short waits taught.
        for _ in 1..FIRST_STREAK {
            policy.slept(SHORT);
        }
        policy.slept(Duration::from_micros(3));
        policy.slept(SHORT);
        assert!(policy.spins());
    }

    #[test]
    fn the_odd_long_wait_does_not_stop_the_learning() {
        let mut policy = SpinPolicy::new();
        let mut waits = 0;
        while !policy.spins() {
            waits += 1;
            policy.slept(if waits % 10 == 0 { LONG } else { SHORT });
            assert!(waits < 100, "never learnt");
        }
    }

    #[test]
    fn a_rarely_fed_thread_never_spins() {
        let mut policy = SpinPolicy::new();
        for i in 0..10_000 {
            // Long waits, with a short one now and then.
            policy.slept(if i % 3 == 0 { SHORT } else { LONG });
            assert!(!policy.spins());
        }
    }

    #[test]
    fn the_short_wait_bound_is_inclusive() {
        let mut policy = SpinPolicy::new();
        for _ in 0..FIRST_STREAK {
            policy.slept(SHORT_WAIT);
        }
        assert!(policy.spins());
        policy.slept(SHORT_WAIT + Duration::from_nanos(1));
        assert!(!policy.spins());
    }

    #[test]
    fn spinning_goes_on_while_spins_pay_off() {
        let mut policy = SpinPolicy::new();
        short_sleeps_until_spinning(&mut policy, 100);
        for _ in 0..10_000 {
            policy.woken_while_spinning();
            assert!(policy.spins());
        }
    }

    #[test]
    fn a_spin_that_runs_out_before_a_long_wait_stops_spinning_at_once() {
        let mut policy = SpinPolicy::new();
        short_sleeps_until_spinning(&mut policy, 100);
        policy.woken_while_spinning();
        policy.spin_ran_out();
        assert!(!policy.spins(), "the wait after a spin that ran out sleeps");
        policy.slept(LONG);
        // A rarely fed thread never spins again.
        for _ in 0..10_000 {
            assert!(!policy.spins());
            policy.slept(LONG);
        }
    }

    #[test]
    fn spinning_goes_on_after_a_near_miss_but_not_after_too_many_in_a_row() {
        let mut policy = SpinPolicy::new();
        short_sleeps_until_spinning(&mut policy, 100);
        for _ in 0..NEAR_MISSES {
            policy.spin_ran_out();
            policy.slept(SHORT);
            assert!(policy.spins());
        }
        policy.spin_ran_out();
        policy.slept(SHORT);
        assert!(!policy.spins());
        assert_eq!(short_sleeps_until_spinning(&mut policy, 100), Some(2 * u32::from(FIRST_STREAK)));
    }

    #[test]
    fn a_spin_that_pays_off_forgets_the_near_misses() {
        let mut policy = SpinPolicy::new();
        short_sleeps_until_spinning(&mut policy, 100);
        for _ in 0..100 {
            for _ in 0..NEAR_MISSES {
                policy.spin_ran_out();
                policy.slept(SHORT);
            }
            policy.woken_while_spinning();
            assert!(policy.spins());
        }
    }

    #[test]
    fn a_spin_that_lost_its_cpu_stops_spinning_at_once() {
        let mut policy = SpinPolicy::new();
        short_sleeps_until_spinning(&mut policy, 100);
        policy.woken_while_spinning();
        policy.lost_the_cpu();
        assert!(!policy.spins());
        assert_eq!(short_sleeps_until_spinning(&mut policy, 100), Some(2 * u32::from(FIRST_STREAK)));
    }

    /// Spins, runs out, and finds the following wait long: a wasted spin.
    fn waste_a_spin(policy: &mut SpinPolicy) {
        assert!(policy.spins());
        policy.spin_ran_out();
        policy.slept(LONG);
    }

    #[test]
    fn each_wasted_spin_doubles_the_short_waits_needed_up_to_a_bound() {
        let mut policy = SpinPolicy::new();
        let mut needed = Vec::new();
        for _ in 0..10 {
            needed.push(short_sleeps_until_spinning(&mut policy, 10_000).expect("relearns"));
            waste_a_spin(&mut policy);
        }
        assert_eq!(needed, [3, 6, 12, 24, 48, 96, 192, 256, 256, 256]);
    }

    #[test]
    fn a_spin_that_pays_off_makes_relearning_quick_again() {
        let mut policy = SpinPolicy::new();
        for _ in 0..5 {
            short_sleeps_until_spinning(&mut policy, 10_000);
            waste_a_spin(&mut policy);
        }
        short_sleeps_until_spinning(&mut policy, 10_000);
        policy.woken_while_spinning();
        waste_a_spin(&mut policy);
        assert_eq!(short_sleeps_until_spinning(&mut policy, 10_000), Some(2 * u32::from(FIRST_STREAK)));
    }
}
