//! PEP 554 channels: a receiving and a sending end over one FIFO, with the
//! PEP's association and release rules. What the PEP deferred is here too: a
//! buffer size (`maxsize` > 0; 0 is the PEP's rendezvous), timeouts and
//! iteration (in the binding and the Python layer).

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::fifo::{Capacity, Closing, Fifo};
use crate::registry::Registry;
use crate::sync::plain::{Mutex, MutexGuard};

/// Every live channel in the process.
pub static CHANNELS: Registry<Channel> = Registry::new();

/// Which end of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Recv,
    Send,
}

impl End {
    fn index(self) -> usize {
        match self {
            End::Recv => 0,
            End::Send => 1,
        }
    }
}

/// Why an association was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndError {
    Closed,
    /// This interpreter released this end.
    Released,
}

#[derive(Default)]
struct Ends {
    associated: [BTreeSet<i64>; 2],
    released: [BTreeSet<i64>; 2],
}

pub struct Channel {
    id: u64,
    maxsize: usize,
    /// Send objects that are not natively shareable by pickle (off by default).
    pub allow_pickle: bool,
    pub fifo: Fifo,
    ends: Mutex<Ends>,
}

impl Channel {
    /// A new channel; `maxsize` 0 is a rendezvous (a send waits for its receive).
    pub fn create(maxsize: usize, allow_pickle: bool) -> Arc<Channel> {
        let capacity = if maxsize == 0 { Capacity::Rendezvous } else { Capacity::Bounded(maxsize) };
        CHANNELS.insert(|id| Channel {
            id,
            maxsize,
            allow_pickle,
            fifo: Fifo::new(capacity),
            ends: Mutex::default(),
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn maxsize(&self) -> usize {
        self.maxsize
    }

    fn ends(&self) -> MutexGuard<'_, Ends> {
        self.ends.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `end` can no longer be used by anyone.
    pub fn end_closed(&self, end: End) -> bool {
        matches!((end, self.fifo.closing()), (_, Closing::Closed) | (End::Send, Closing::Draining))
    }

    /// Associates `interp` with `end` (done by every send and receive).
    pub fn associate(&self, end: End, interp: i64) -> Result<(), EndError> {
        let mut ends = self.ends();
        if ends.released[end.index()].contains(&interp) {
            return Err(EndError::Released);
        }
        if self.end_closed(end) {
            return Err(EndError::Closed);
        }
        ends.associated[end.index()].insert(interp);
        Ok(())
    }

    /// Checks that `interp` may use `end`, without associating it.
    pub fn check(&self, end: End, interp: i64) -> Result<(), EndError> {
        if self.ends().released[end.index()].contains(&interp) {
            return Err(EndError::Released);
        }
        if self.end_closed(end) {
            return Err(EndError::Closed);
        }
        Ok(())
    }

    /// PEP 554 `release()`: `interp` leaves `end` for good. Returns whether it
    /// had not released it before. When no interpreter is associated with
    /// either end any more, the channel closes (receivers drain what is left).
    pub fn release(&self, end: End, interp: i64) -> bool {
        let mut ends = self.ends();
        ends.associated[end.index()].remove(&interp);
        let first = ends.released[end.index()].insert(interp);
        let nobody_left = ends.associated.iter().all(BTreeSet::is_empty);
        drop(ends);
        if nobody_left {
            self.fifo.close_sending(false);
        }
        first
    }

    /// The last object for `end` in `interp` went away: it is no longer
    /// associated (but may associate again, unlike after `release`).
    pub fn forget(&self, end: End, interp: i64) {
        self.ends().associated[end.index()].remove(&interp);
    }

    /// The interpreters associated with `end`.
    pub fn interpreters(&self, end: End) -> Result<Vec<i64>, EndError> {
        if self.end_closed(end) {
            return Err(EndError::Closed);
        }
        Ok(self.ends().associated[end.index()].iter().copied().collect())
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        CHANNELS.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fifo::{Item, Unbound};
    use crate::value::Value;

    #[test]
    fn association_and_release_rules() {
        let ch = Channel::create(0, false);
        ch.associate(End::Send, 1).unwrap();
        ch.associate(End::Recv, 2).unwrap();
        assert_eq!(ch.interpreters(End::Send), Ok(vec![1]));
        assert!(ch.release(End::Send, 1));
        assert!(!ch.release(End::Send, 1), "idempotent");
        assert_eq!(ch.associate(End::Send, 1), Err(EndError::Released));
        assert_eq!(ch.fifo.closing(), Closing::Open, "the receiver is still associated");
        assert!(ch.release(End::Recv, 2));
        assert_eq!(ch.fifo.closing(), Closing::Closed, "nobody is left on either end");
        assert_eq!(ch.interpreters(End::Recv), Err(EndError::Closed));
    }

    #[test]
    fn draining_closes_the_send_end_first() {
        let ch = Channel::create(2, false);
        let item = Item { value: Value::Int(1), origin: 0, unbound: Unbound::Replace };
        ch.fifo.try_push(item, false, false).unwrap();
        ch.fifo.close_sending(false);
        assert!(ch.end_closed(End::Send));
        assert!(!ch.end_closed(End::Recv));
        ch.fifo.try_pop().unwrap();
        assert!(ch.end_closed(End::Recv));
    }

    #[test]
    fn forgetting_allows_association_again() {
        let ch = Channel::create(0, false);
        ch.associate(End::Recv, 3).unwrap();
        ch.forget(End::Recv, 3);
        assert_eq!(ch.interpreters(End::Recv), Ok(vec![]));
        ch.associate(End::Recv, 3).unwrap();
    }
}
