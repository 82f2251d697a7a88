//! The FIFO under every queue and channel: items, capacity, closing, blocked
//! waiters, rendezvous acknowledgements, and two readiness descriptors.
//!
//! Invariants, kept under the one lock after every change:
//! * the receive descriptor is readable exactly when a receive would not
//!   block: an item is queued, or the FIFO is closed (receiving then fails at
//!   once);
//! * the send descriptor is readable exactly when a send would not block:
//!   there is room (for a rendezvous FIFO: a receiver is parked waiting and
//!   not yet matched with an item), or sending is closed (it then fails at once).
//!
//! An item is delivered once or stays queued: a rendezvous sender that gives
//! up (timeout, interrupt, cancellation) `retract`s its item, which either
//! removes it, or finds that it was already received (DESIGN rule 6).
//!
//! Waiting follows "listen, check again, wait": a waiter registers its
//! thread's `Parker` under the lock, re-checks, then parks; every change
//! unparks the waiters it may satisfy.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::parker::{self, Parker, WaitResult};
use crate::sync::{lock, Arc, Mutex, MutexGuard};
use crate::value::Value;

/// What `get` does with an item whose sending interpreter was closed (PEP 734).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unbound {
    /// Return the `UNBOUND` marker in its place.
    Replace,
    /// Raise `ItemInterpreterDestroyed` in its place.
    Error,
    /// Drop it from the queue.
    Remove,
}

/// An item and where it came from.
#[derive(Debug)]
pub struct Item {
    pub value: Value,
    /// The id of the interpreter that sent it.
    pub origin: i64,
    pub unbound: Unbound,
}

/// What a receive returns.
#[derive(Debug, PartialEq)]
pub enum Received {
    Value(Value),
    /// The item's interpreter was closed; the op says what to do instead.
    Unbound(Unbound),
}

/// How many items fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    Unbounded,
    Bounded(usize),
    /// No buffer: a send completes when a receiver takes the item.
    Rendezvous,
}

/// Whether items may still be sent and received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    Open,
    /// No more sends; receives drain what is left, then it is `Closed`.
    Draining,
    Closed,
}

/// The fate of an item whose sender waits for it to be received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    Received,
    /// Thrown away by a forced close, or removed because its interpreter closed.
    Discarded,
}

#[derive(Debug)]
pub enum PushError {
    Full(Item),
    Closed(Item),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PopError {
    Empty,
    Closed,
}

/// `close` refused: items are left and the close was not forced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotEmpty;

/// What a waiter waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    CanRecv,
    CanSend,
    /// The item with this sequence number was received or discarded.
    Ack(u64),
}

struct Slot {
    item: Item,
    seq: u64,
    wants_ack: bool,
    /// Its interpreter was closed; `item.unbound` says how to answer for it.
    unbound: bool,
}

struct State {
    slots: VecDeque<Slot>,
    capacity: Capacity,
    closing: Closing,
    next_seq: u64,
    acks: HashMap<u64, Ack>,
    receivers: Vec<Arc<Parker>>,
    senders: Vec<Arc<Parker>>,
    /// Receivers waiting without a thread (an event loop awaiting the receive
    /// descriptor): for a rendezvous FIFO they are room for a sender too.
    async_receivers: usize,
    /// Waiters to unpark once the lock is released (so they do not wake up
    /// only to find it still held).
    to_wake: Vec<Arc<Parker>>,
    #[cfg(not(loom))]
    recv_signal: Readiness,
    #[cfg(not(loom))]
    send_signal: Readiness,
}

/// A readiness descriptor made on first request and kept exact from then on,
/// so FIFOs nobody polls cost no descriptors and no syscalls.
#[cfg(not(loom))]
#[derive(Default)]
struct Readiness {
    signal: Option<crate::sys::Signal>,
    up: bool,
}

#[cfg(not(loom))]
impl Readiness {
    fn set(&mut self, ready: bool) {
        if let Some(signal) = &self.signal {
            if ready != self.up {
                if ready {
                    signal.raise();
                } else {
                    signal.lower();
                }
                self.up = ready;
            }
        }
    }

    fn fd(&mut self, ready: bool) -> std::io::Result<std::os::fd::RawFd> {
        if self.signal.is_none() {
            self.signal = Some(crate::sys::Signal::new()?);
            self.up = false;
            self.set(ready);
        }
        Ok(self.signal.as_ref().map_or(-1, crate::sys::Signal::fd))
    }
}

impl State {
    fn can_recv(&self) -> bool {
        !self.slots.is_empty() || self.closing == Closing::Closed
    }

    fn can_send(&self) -> bool {
        if self.closing != Closing::Open {
            return true;
        }
        match self.capacity {
            Capacity::Unbounded => true,
            Capacity::Bounded(n) => self.slots.len() < n,
            Capacity::Rendezvous => self.receivers.len() + self.async_receivers > self.slots.len(),
        }
    }

    fn satisfied(&self, wait: Wait) -> bool {
        match wait {
            Wait::CanRecv => self.can_recv(),
            Wait::CanSend => self.can_send(),
            Wait::Ack(seq) => self.acks.contains_key(&seq),
        }
    }

    /// Re-establishes the descriptor invariants after a change.
    fn refresh(&mut self) {
        #[cfg(not(loom))]
        {
            let (can_recv, can_send) = (self.can_recv(), self.can_send());
            self.recv_signal.set(can_recv);
            self.send_signal.set(can_send);
        }
    }

    fn wake_receivers(&mut self) {
        let Self { receivers, to_wake, .. } = self;
        to_wake.extend(receivers.iter().cloned());
    }

    fn wake_senders(&mut self) {
        let Self { senders, to_wake, .. } = self;
        to_wake.extend(senders.iter().cloned());
    }

    /// Ends the draining phase once the last item is gone.
    fn settle_draining(&mut self) {
        if self.closing == Closing::Draining && self.slots.is_empty() {
            self.closing = Closing::Closed;
            self.wake_receivers();
        }
    }

    fn discard_all(&mut self) {
        for slot in self.slots.drain(..) {
            if slot.wants_ack {
                self.acks.insert(slot.seq, Ack::Discarded);
            }
        }
    }
}

/// The locked state. Waiters queued in `to_wake` are unparked after the
/// lock is released: the first thing a woken waiter does is take the lock.
struct Locked<'a>(Option<MutexGuard<'a, State>>);

impl std::ops::Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.0.as_ref().expect("locked")
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.0.as_mut().expect("locked")
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if let Some(mut guard) = self.0.take() {
            let to_wake = std::mem::take(&mut guard.to_wake);
            drop(guard);
            to_wake.iter().for_each(|p| p.unpark());
        }
    }
}

/// The shared FIFO. All methods take `&self`; the lock is never held while
/// parked, nor while calling out of this module.
pub struct Fifo {
    state: Mutex<State>,
}

impl Fifo {
    pub fn new(capacity: Capacity) -> Fifo {
        Fifo {
            state: Mutex::new(State {
                slots: VecDeque::new(),
                capacity,
                closing: Closing::Open,
                next_seq: 0,
                acks: HashMap::new(),
                receivers: Vec::new(),
                senders: Vec::new(),
                to_wake: Vec::new(),
                async_receivers: 0,
                #[cfg(not(loom))]
                recv_signal: Readiness::default(),
                #[cfg(not(loom))]
                send_signal: Readiness::default(),
            }),
        }
    }

    fn lock(&self) -> Locked<'_> {
        Locked(Some(lock(&self.state)))
    }

    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> Capacity {
        self.lock().capacity
    }

    /// Whether a send would have to wait for room (never for an unbounded FIFO).
    pub fn is_full(&self) -> bool {
        let st = self.lock();
        match st.capacity {
            Capacity::Unbounded => false,
            Capacity::Bounded(n) => st.slots.len() >= n,
            Capacity::Rendezvous => st.receivers.len() + st.async_receivers <= st.slots.len(),
        }
    }

    pub fn closing(&self) -> Closing {
        self.lock().closing
    }

    /// Registers (`true`) or withdraws (`false`) a receiver that waits on the
    /// receive descriptor instead of parking a thread (an awaiting coroutine).
    pub fn async_receiver(&self, arriving: bool) {
        let mut st = self.lock();
        if arriving {
            st.async_receivers += 1;
            st.wake_senders();
        } else {
            st.async_receivers = st.async_receivers.saturating_sub(1);
        }
        st.refresh();
    }

    /// How many receivers are parked in a blocking receive right now.
    pub fn parked_receivers(&self) -> usize {
        self.lock().receivers.len()
    }

    /// Queues `item` if a send would not block (or regardless, with `force`:
    /// a rendezvous sender queues first, then waits for the ack). Returns the
    /// item's sequence number, to wait for or retract it.
    pub fn try_push(&self, item: Item, wants_ack: bool, force: bool) -> Result<u64, PushError> {
        let mut st = self.lock();
        if st.closing != Closing::Open {
            return Err(PushError::Closed(item));
        }
        if !force && !st.can_send() {
            return Err(PushError::Full(item));
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.slots.push_back(Slot { item, seq, wants_ack, unbound: false });
        st.wake_receivers();
        st.refresh();
        Ok(seq)
    }

    /// Takes the oldest item, if any.
    pub fn try_pop(&self) -> Result<Received, PopError> {
        let mut st = self.lock();
        let Some(slot) = st.slots.pop_front() else {
            return Err(if st.closing == Closing::Closed { PopError::Closed } else { PopError::Empty });
        };
        if slot.wants_ack {
            st.acks.insert(slot.seq, Ack::Received);
        }
        st.settle_draining();
        st.wake_senders();
        st.refresh();
        Ok(if slot.unbound { Received::Unbound(slot.item.unbound) } else { Received::Value(slot.item.value) })
    }

    /// Puts back, at the front, an item taken by `try_pop` that the receiver
    /// could not use (it could not be rebuilt there): nothing is lost.
    pub fn restore_front(&self, item: Item) {
        let mut st = self.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        st.slots.push_front(Slot { item, seq, wants_ack: false, unbound: false });
        if st.closing == Closing::Closed {
            st.closing = Closing::Draining;
        }
        st.wake_receivers();
        st.refresh();
    }

    /// Removes a queued item whose sender stopped waiting. Returns false if
    /// it is gone already (received or discarded: see `take_ack`).
    pub fn retract(&self, seq: u64) -> bool {
        self.take_back(seq).is_some()
    }

    /// As [`retract`](Self::retract), handing the item back, so a sender
    /// that stopped only to look (a signal whose handler did not raise) can
    /// queue it again.
    pub fn take_back(&self, seq: u64) -> Option<Item> {
        let mut st = self.lock();
        let pos = st.slots.iter().position(|s| s.seq == seq)?;
        let slot = st.slots.remove(pos)?;
        st.settle_draining();
        st.wake_senders();
        st.refresh();
        Some(slot.item)
    }

    /// The fate of an item sent with `wants_ack`, once known; forgets it.
    pub fn take_ack(&self, seq: u64) -> Option<Ack> {
        self.lock().acks.remove(&seq)
    }

    /// Closes the sending side: with items left, receivers drain them first
    /// (or, with `force`, they are discarded).
    pub fn close_sending(&self, force: bool) {
        let mut st = self.lock();
        if st.closing == Closing::Closed {
            return;
        }
        if force {
            st.discard_all();
        }
        st.closing = Closing::Draining;
        st.settle_draining();
        st.wake_receivers();
        st.wake_senders();
        st.refresh();
    }

    /// Closes both sides now; refused if items are left, unless `force`
    /// (which discards them).
    pub fn close_now(&self, force: bool) -> Result<(), NotEmpty> {
        let mut st = self.lock();
        if st.closing == Closing::Closed {
            return Ok(());
        }
        if !st.slots.is_empty() && !force {
            return Err(NotEmpty);
        }
        st.discard_all();
        st.closing = Closing::Closed;
        st.wake_receivers();
        st.wake_senders();
        st.refresh();
        Ok(())
    }

    /// Applies the unbound-item rules to items sent by a closed interpreter.
    pub fn unbind_origin(&self, interp: i64) {
        let mut st = self.lock();
        let mut removed = Vec::new();
        st.slots.retain_mut(|slot| {
            if slot.item.origin != interp || slot.unbound {
                return true;
            }
            if slot.item.unbound == Unbound::Remove {
                if slot.wants_ack {
                    removed.push(slot.seq);
                }
                return false;
            }
            slot.unbound = true;
            slot.item.value = Value::None; // the data goes with its interpreter
            true
        });
        for seq in removed {
            st.acks.insert(seq, Ack::Discarded);
        }
        st.settle_draining();
        st.wake_senders();
        st.refresh();
    }

    /// Blocks the calling thread until `wait` holds, `deadline` passes, or a
    /// signal interrupts it. Spurious returns are impossible: `Ready` means
    /// the condition held at that moment.
    pub fn wait(&self, wait: Wait, deadline: Option<Instant>) -> WaitResult {
        let parker = Parker::current();
        #[allow(clippy::let_unit_value)] // a guard, except under loom
        let _waiting = parker.waiting();
        let receiving = wait == Wait::CanRecv;
        let mut st = self.lock();
        loop {
            if st.satisfied(wait) {
                return WaitResult::Ready;
            }
            if parker.take_cancel() {
                return WaitResult::Cancelled;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return WaitResult::TimedOut;
            }
            if receiving {
                st.receivers.push(Arc::clone(&parker));
                // A parked receiver is room for a rendezvous sender.
                st.wake_senders();
            } else {
                st.senders.push(Arc::clone(&parker));
            }
            st.refresh();
            drop(st);
            let parked = parker.park(deadline);
            st = self.lock();
            let waiters = if receiving { &mut st.receivers } else { &mut st.senders };
            if let Some(pos) = waiters.iter().position(|p| parker::same(p, &parker)) {
                waiters.swap_remove(pos);
            }
            st.refresh();
            match parked {
                WaitResult::Ready => continue,
                WaitResult::TimedOut if st.satisfied(wait) => return WaitResult::Ready,
                other => return other,
            }
        }
    }

    /// The descriptor readable exactly when a receive would not block.
    #[cfg(not(loom))]
    pub fn recv_fd(&self) -> std::io::Result<std::os::fd::RawFd> {
        let mut st = self.lock();
        let ready = st.can_recv();
        st.recv_signal.fd(ready)
    }

    /// The descriptor readable exactly when a send would not block.
    #[cfg(not(loom))]
    pub fn send_fd(&self) -> std::io::Result<std::os::fd::RawFd> {
        let mut st = self.lock();
        let ready = st.can_send();
        st.send_signal.fd(ready)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sys::wait_readable;
    use std::time::Duration;

    fn item(n: i64) -> Item {
        Item { value: Value::Int(n), origin: 0, unbound: Unbound::Replace }
    }

    fn readable(fd: std::os::fd::RawFd) -> bool {
        wait_readable(fd, Some(Instant::now())) == WaitResult::Ready
    }

    fn value(r: Result<Received, PopError>) -> i64 {
        match r {
            Ok(Received::Value(Value::Int(n))) => n,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn fifo_order_and_bounds() {
        let f = Fifo::new(Capacity::Bounded(2));
        f.try_push(item(1), false, false).unwrap();
        f.try_push(item(2), false, false).unwrap();
        assert!(f.is_full());
        assert!(matches!(f.try_push(item(3), false, false), Err(PushError::Full(_))));
        assert_eq!(value(f.try_pop()), 1);
        assert_eq!(value(f.try_pop()), 2);
        assert_eq!(f.try_pop(), Err(PopError::Empty));
    }

    #[test]
    fn descriptors_track_readiness_exactly() {
        let f = Fifo::new(Capacity::Bounded(1));
        let (r, s) = (f.recv_fd().unwrap(), f.send_fd().unwrap());
        assert!(!readable(r) && readable(s));
        f.try_push(item(1), false, false).unwrap();
        assert!(readable(r) && !readable(s));
        f.try_pop().unwrap();
        assert!(!readable(r) && readable(s));
        f.close_now(false).unwrap();
        assert!(readable(r) && readable(s), "closed: both fail at once, so both are readable");
    }

    #[test]
    fn descriptor_made_late_starts_correct() {
        let f = Fifo::new(Capacity::Unbounded);
        f.try_push(item(1), false, false).unwrap();
        assert!(readable(f.recv_fd().unwrap()));
    }

    #[test]
    fn rendezvous_send_readiness_follows_parked_receivers() {
        let f = Arc::new(Fifo::new(Capacity::Rendezvous));
        let s = f.send_fd().unwrap();
        assert!(!readable(s));
        assert!(matches!(f.try_push(item(1), false, false), Err(PushError::Full(_))));
        let g = Arc::clone(&f);
        let receiver = std::thread::spawn(move || {
            assert_eq!(g.wait(Wait::CanRecv, None), WaitResult::Ready);
            value(g.try_pop())
        });
        assert_eq!(wait_readable(s, Some(Instant::now() + Duration::from_secs(10))), WaitResult::Ready);
        f.try_push(item(7), false, false).unwrap();
        assert_eq!(receiver.join().unwrap(), 7);
    }

    #[test]
    fn async_receivers_make_room_for_rendezvous_senders() {
        let f = Fifo::new(Capacity::Rendezvous);
        let s = f.send_fd().unwrap();
        assert!(!readable(s));
        f.async_receiver(true);
        assert!(readable(s));
        f.try_push(item(1), false, false).unwrap();
        assert!(!readable(s), "the waiting receiver is matched with the item");
        f.async_receiver(false);
        assert_eq!(value(f.try_pop()), 1);
    }

    #[test]
    fn rendezvous_ack_and_retract() {
        let f = Arc::new(Fifo::new(Capacity::Rendezvous));
        let seq = f.try_push(item(1), true, true).unwrap();
        assert_eq!(
            f.wait(Wait::Ack(seq), Some(Instant::now() + Duration::from_millis(5))),
            WaitResult::TimedOut
        );
        assert!(f.retract(seq), "not received yet: the sender takes it back");
        assert!(f.is_empty());
        let seq = f.try_push(item(2), true, true).unwrap();
        let g = Arc::clone(&f);
        let receiver = std::thread::spawn(move || value(g.try_pop()));
        assert_eq!(receiver.join().unwrap(), 2);
        assert_eq!(f.wait(Wait::Ack(seq), None), WaitResult::Ready);
        assert!(!f.retract(seq));
        assert_eq!(f.take_ack(seq), Some(Ack::Received));
    }

    #[test]
    fn closing_rules() {
        let f = Fifo::new(Capacity::Unbounded);
        f.try_push(item(1), false, false).unwrap();
        assert_eq!(f.close_now(false), Err(NotEmpty));
        f.close_sending(false);
        assert_eq!(f.closing(), Closing::Draining);
        assert!(matches!(f.try_push(item(2), false, false), Err(PushError::Closed(_))));
        assert_eq!(value(f.try_pop()), 1);
        assert_eq!(f.closing(), Closing::Closed);
        assert_eq!(f.try_pop(), Err(PopError::Closed));

        let g = Fifo::new(Capacity::Rendezvous);
        let seq = g.try_push(item(1), true, true).unwrap();
        g.close_now(true).unwrap();
        assert_eq!(g.take_ack(seq), Some(Ack::Discarded));
        assert_eq!(g.try_pop(), Err(PopError::Closed));
    }

    #[test]
    fn unbound_items() {
        let f = Fifo::new(Capacity::Unbounded);
        let mk = |origin, unbound| Item { value: Value::Int(origin), origin, unbound };
        f.try_push(mk(5, Unbound::Replace), false, false).unwrap();
        f.try_push(mk(5, Unbound::Remove), false, false).unwrap();
        f.try_push(mk(6, Unbound::Replace), false, false).unwrap();
        f.try_push(mk(5, Unbound::Error), false, false).unwrap();
        f.unbind_origin(5);
        assert_eq!(f.len(), 3);
        assert_eq!(f.try_pop(), Ok(Received::Unbound(Unbound::Replace)));
        assert_eq!(value(f.try_pop()), 6);
        assert_eq!(f.try_pop(), Ok(Received::Unbound(Unbound::Error)));
    }

    #[test]
    fn wait_times_out_and_wakes() {
        let f = Arc::new(Fifo::new(Capacity::Unbounded));
        let start = Instant::now();
        assert_eq!(f.wait(Wait::CanRecv, Some(start + Duration::from_millis(20))), WaitResult::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(20));
        let g = Arc::clone(&f);
        let t =
            std::thread::spawn(move || g.wait(Wait::CanRecv, Some(Instant::now() + Duration::from_secs(30))));
        std::thread::sleep(Duration::from_millis(20));
        f.try_push(item(1), false, false).unwrap();
        assert_eq!(t.join().unwrap(), WaitResult::Ready);
    }

    #[test]
    fn many_producers_and_consumers_deliver_each_item_once() {
        let f = Arc::new(Fifo::new(Capacity::Bounded(16)));
        let per = 5_000;
        let producers: Vec<_> = (0..4)
            .map(|p| {
                let f = Arc::clone(&f);
                std::thread::spawn(move || {
                    for i in 0..per {
                        let mut it = item(p * per + i);
                        loop {
                            match f.try_push(it, false, false) {
                                Ok(_) => break,
                                Err(PushError::Full(back)) => {
                                    it = back;
                                    f.wait(Wait::CanSend, None);
                                }
                                Err(PushError::Closed(_)) => panic!("closed"),
                            }
                        }
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let f = Arc::clone(&f);
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match f.try_pop() {
                            Ok(Received::Value(Value::Int(n))) => got.push(n),
                            Err(PopError::Closed) => return got,
                            Err(PopError::Empty) => {
                                f.wait(Wait::CanRecv, None);
                            }
                            other => panic!("{other:?}"),
                        }
                    }
                })
            })
            .collect();
        producers.into_iter().for_each(|t| t.join().unwrap());
        f.close_sending(false);
        let mut all: Vec<i64> = consumers.into_iter().flat_map(|t| t.join().unwrap()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..4 * per).collect::<Vec<_>>());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    /// The waiter hand-off: a receiver that checks, registers and parks can
    /// never miss the push that happens in between, in any interleaving.
    #[test]
    fn receiver_never_misses_a_push() {
        loom::model(|| {
            let f = Arc::new(Fifo::new(Capacity::Unbounded));
            let g = Arc::clone(&f);
            let receiver = loom::thread::spawn(move || {
                assert_eq!(g.wait(Wait::CanRecv, None), WaitResult::Ready);
                assert!(matches!(g.try_pop(), Ok(Received::Value(Value::Int(1)))));
            });
            f.try_push(Item { value: Value::Int(1), origin: 0, unbound: Unbound::Replace }, false, false)
                .unwrap();
            receiver.join().unwrap();
        });
    }

    /// A rendezvous sender waiting for its ack is always released, and the
    /// item is delivered exactly once.
    #[test]
    fn rendezvous_sender_is_released_by_the_receive() {
        loom::model(|| {
            let f = Arc::new(Fifo::new(Capacity::Rendezvous));
            let g = Arc::clone(&f);
            let sender = loom::thread::spawn(move || {
                let item = Item { value: Value::Int(7), origin: 0, unbound: Unbound::Replace };
                let seq = g.try_push(item, true, true).unwrap();
                assert_eq!(g.wait(Wait::Ack(seq), None), WaitResult::Ready);
                assert_eq!(g.take_ack(seq), Some(Ack::Received));
            });
            assert_eq!(f.wait(Wait::CanRecv, None), WaitResult::Ready);
            assert_eq!(f.try_pop(), Ok(Received::Value(Value::Int(7))));
            sender.join().unwrap();
        });
    }
}
