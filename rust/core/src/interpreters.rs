//! Bookkeeping for the interpreters this package created, shared by every
//! interpreter in the process.
//!
//! The binding owns the CPython pointers; here they are opaque `Handle`s, so
//! the rules can be tested without Python:
//!
//! * One caller at a time runs code in an interpreter (`begin_run` /
//!   `end_run`); a second gets `TableError::Running`, as in CPython 3.14.
//! * Each OS thread gets its own thread state per interpreter, created once
//!   and cached: a new thread state costs 15-140 µs (3.14 reads
//!   /proc/self/maps on the main thread), a cached one nothing.
//! * A cached thread state whose OS thread has exited is handed back as
//!   "stale" the next time the interpreter is entered, so the binding can
//!   delete it under that interpreter's GIL and the cache cannot grow with
//!   every short-lived thread.
//! * Closing takes the record out of service first (`begin_close`), so no
//!   thread can enter while the binding tears the interpreter down.
//!
//! The lock is a plain `Mutex`, never held while Python runs (DESIGN rule 3).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::sync::plain::{Condvar, Mutex, MutexGuard};

/// An opaque pointer-sized handle owned by the binding (a CPython pointer).
pub type Handle = usize;

thread_local! {
    /// Dropped when the OS thread exits; its `Weak` twins then fail to upgrade.
    static ALIVE: Arc<()> = Arc::new(());
}

fn current_thread() -> (ThreadId, Weak<()>) {
    (std::thread::current().id(), ALIVE.with(Arc::downgrade))
}

/// Why the table refused an operation; the binding turns it into a Python
/// exception that names the interpreter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableError {
    NotFound(i64),
    Running(i64),
    Closing(i64),
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::NotFound(id) => write!(f, "interpreter {id} not found"),
            TableError::Running(id) => write!(f, "interpreter {id} is already running"),
            TableError::Closing(id) => write!(f, "interpreter {id} is being closed"),
        }
    }
}

impl std::error::Error for TableError {}

struct CachedThreadState {
    thread: ThreadId,
    alive: Weak<()>,
    tstate: Handle,
}

#[derive(Clone, Copy)]
enum Activity {
    Idle,
    Running { thread: ThreadId, native_ident: u64 },
    Closing,
}

struct Record {
    interp: Handle,
    parked: Handle,
    /// `threading.get_ident()` of the OS thread that created it.
    creator: u64,
    activity: Activity,
    cached: Vec<CachedThreadState>,
    entered: bool,
    /// `Interpreter` objects standing for it, in every interpreter (3.14's
    /// reference count: the last one to go closes it).
    refs: usize,
}

/// What a caller needs to enter an interpreter it was allowed to run.
#[derive(Debug, PartialEq, Eq)]
pub struct RunTicket {
    pub interp: Handle,
    /// This OS thread's cached thread state, if it has one.
    pub tstate: Option<Handle>,
    /// Thread states of exited threads: delete them under this interpreter's GIL.
    pub stale: Vec<Handle>,
    /// Nobody ran code in this interpreter before (one-time setup may be due).
    pub first_entry: bool,
    /// The thread state it was created with (for that one-time setup).
    pub parked: Handle,
    /// `threading.get_ident()` of the OS thread that created it.
    pub creator: u64,
}

/// What the binding needs to tear an interpreter down.
#[derive(Debug, PartialEq, Eq)]
pub struct CloseTicket {
    pub interp: Handle,
    pub parked: Handle,
    /// Every cached thread state; all must be deleted before ending the interpreter.
    pub cached: Vec<Handle>,
}

/// The process-wide table of interpreters this package created.
pub struct InterpreterTable {
    records: Mutex<BTreeMap<i64, Record>>,
    became_idle: Condvar,
    /// Threads in `wait_until_idle`; changed and read only under `records`'
    /// lock. A condition variable's notify is a `futex` system call even
    /// with nobody waiting (std's), and `end_run` ends every call: without
    /// waiters it is skipped.
    idle_waiters: AtomicUsize,
}

impl Default for InterpreterTable {
    fn default() -> Self {
        Self::new()
    }
}

impl InterpreterTable {
    pub const fn new() -> Self {
        Self {
            records: Mutex::new(BTreeMap::new()),
            became_idle: Condvar::new(),
            idle_waiters: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<i64, Record>> {
        // A panic while the lock was held left plain data behind, still valid.
        self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a freshly created interpreter, the thread state parked for its
    /// lifetime, and the `threading.get_ident()` of the thread that created it.
    pub fn register(&self, id: i64, interp: Handle, parked: Handle, creator: u64) {
        let record = Record {
            interp,
            parked,
            creator,
            activity: Activity::Idle,
            cached: Vec::new(),
            entered: false,
            refs: 0,
        };
        self.lock().insert(id, record);
    }

    pub fn contains(&self, id: i64) -> bool {
        self.lock().contains_key(&id)
    }

    /// The thread state `id` was created with, parked for its whole life.
    pub fn parked_handle(&self, id: i64) -> Option<Handle> {
        self.lock().get(&id).map(|r| r.parked)
    }

    /// The interpreter pointer for `id`, whatever it is doing.
    pub fn interp_handle(&self, id: i64) -> Option<Handle> {
        self.lock().get(&id).map(|r| r.interp)
    }

    pub fn ids(&self) -> Vec<i64> {
        self.lock().keys().copied().collect()
    }

    /// Whether some thread is running code in `id` through this table.
    pub fn is_running(&self, id: i64) -> Result<bool, TableError> {
        match self.lock().get(&id) {
            None => Err(TableError::NotFound(id)),
            Some(r) => Ok(matches!(r.activity, Activity::Running { .. })),
        }
    }

    /// The `threading.get_ident()` of the thread running in `id`, if any.
    pub fn running_ident(&self, id: i64) -> Option<u64> {
        match self.lock().get(&id)?.activity {
            Activity::Running { native_ident, .. } => Some(native_ident),
            _ => None,
        }
    }

    /// Claims `id` for the calling OS thread. `native_ident` is what Python's
    /// `threading.get_ident()` says for this thread (used to interrupt it).
    pub fn begin_run(&self, id: i64, native_ident: u64) -> Result<RunTicket, TableError> {
        let (thread, _) = current_thread();
        let mut records = self.lock();
        let record = records.get_mut(&id).ok_or(TableError::NotFound(id))?;
        match record.activity {
            Activity::Idle => {}
            Activity::Running { .. } => return Err(TableError::Running(id)),
            Activity::Closing => return Err(TableError::Closing(id)),
        }
        record.activity = Activity::Running { thread, native_ident };
        let mut stale = Vec::new();
        record.cached.retain(|c| {
            let dead = c.alive.strong_count() == 0;
            if dead {
                stale.push(c.tstate);
            }
            !dead
        });
        let tstate = record.cached.iter().find(|c| c.thread == thread).map(|c| c.tstate);
        let first_entry = !std::mem::replace(&mut record.entered, true);
        Ok(RunTicket {
            interp: record.interp,
            tstate,
            stale,
            first_entry,
            parked: record.parked,
            creator: record.creator,
        })
    }

    /// Caches the thread state the binding made for the calling thread.
    /// Only valid between `begin_run` and `end_run` on this thread.
    pub fn cache_thread_state(&self, id: i64, tstate: Handle) {
        let (thread, alive) = current_thread();
        let mut records = self.lock();
        if let Some(record) = records.get_mut(&id) {
            debug_assert!(matches!(record.activity, Activity::Running { thread: t, .. } if t == thread));
            record.cached.push(CachedThreadState { thread, alive, tstate });
        }
    }

    /// Releases the claim taken by `begin_run`.
    pub fn end_run(&self, id: i64) {
        let mut records = self.lock();
        if let Some(record) = records.get_mut(&id) {
            if matches!(record.activity, Activity::Running { .. }) {
                record.activity = Activity::Idle;
            }
        }
        self.notify_idle(records);
    }

    /// Wakes the threads in `wait_until_idle`, if any, after a change made
    /// under `records` (the count is read under the same lock, so a waiter
    /// that saw the old state is counted).
    fn notify_idle(&self, records: MutexGuard<'_, BTreeMap<i64, Record>>) {
        let waiters = self.idle_waiters.load(Ordering::Relaxed);
        drop(records);
        if waiters > 0 {
            self.became_idle.notify_all();
        }
    }

    /// Waits until nobody runs code in `id` (or it is gone); false on timeout.
    pub fn wait_until_idle(&self, id: i64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut records = self.lock();
        loop {
            let running = records.get(&id).is_some_and(|r| matches!(r.activity, Activity::Running { .. }));
            if !running {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.idle_waiters.fetch_add(1, Ordering::Relaxed);
            records = self
                .became_idle
                .wait_timeout(records, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
            self.idle_waiters.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Takes `id` out of service for closing; nobody can enter it until
    /// `abort_close` or `finish_close`.
    pub fn begin_close(&self, id: i64) -> Result<CloseTicket, TableError> {
        let mut records = self.lock();
        let record = records.get_mut(&id).ok_or(TableError::NotFound(id))?;
        match record.activity {
            Activity::Idle => {}
            Activity::Running { .. } => return Err(TableError::Running(id)),
            Activity::Closing => return Err(TableError::Closing(id)),
        }
        record.activity = Activity::Closing;
        let cached = record.cached.drain(..).map(|c| c.tstate).collect();
        Ok(CloseTicket { interp: record.interp, parked: record.parked, cached })
    }

    /// Puts an interpreter whose close failed back in service. The cached
    /// thread states handed out by `begin_close` must have been deleted.
    pub fn abort_close(&self, id: i64) {
        let mut records = self.lock();
        if let Some(record) = records.get_mut(&id) {
            record.activity = Activity::Idle;
        }
        self.notify_idle(records);
    }

    /// One more `Interpreter` object stands for `id`; false if there is no such record.
    pub fn incref(&self, id: i64) -> bool {
        match self.lock().get_mut(&id) {
            Some(record) => {
                record.refs += 1;
                true
            }
            None => false,
        }
    }

    /// One `Interpreter` object for `id` went away; returns how many are left
    /// (`None` if there is no such record).
    pub fn decref(&self, id: i64) -> Option<usize> {
        let mut records = self.lock();
        let record = records.get_mut(&id)?;
        record.refs = record.refs.saturating_sub(1);
        Some(record.refs)
    }

    /// Whether `id` is being closed right now.
    pub fn is_closing(&self, id: i64) -> bool {
        matches!(self.lock().get(&id).map(|r| r.activity), Some(Activity::Closing))
    }

    /// Forgets an interpreter that was closed (or destroyed behind our back).
    pub fn finish_close(&self, id: i64) {
        let mut records = self.lock();
        records.remove(&id);
        self.notify_idle(records);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    fn table_with(id: i64) -> InterpreterTable {
        let table = InterpreterTable::new();
        table.register(id, 0x1000, 0x2000, 7);
        table
    }

    #[test]
    fn references_count_down_to_zero() {
        let table = table_with(3);
        assert!(table.incref(3));
        assert!(table.incref(3));
        assert_eq!(table.decref(3), Some(1));
        assert_eq!(table.decref(3), Some(0));
        assert_eq!(table.decref(3), Some(0));
        assert!(!table.incref(4));
        assert_eq!(table.decref(4), None);
        assert!(!table.is_closing(3));
        table.begin_close(3).unwrap();
        assert!(table.is_closing(3));
    }

    #[test]
    fn one_runner_at_a_time() {
        let table = table_with(3);
        let ticket = table.begin_run(3, 1).unwrap();
        let expected = RunTicket {
            interp: 0x1000,
            tstate: None,
            stale: vec![],
            first_entry: true,
            parked: 0x2000,
            creator: 7,
        };
        assert_eq!(ticket, expected);
        assert_eq!(table.begin_run(3, 1), Err(TableError::Running(3)));
        assert_eq!(table.is_running(3), Ok(true));
        assert_eq!(table.running_ident(3), Some(1));
        table.end_run(3);
        assert_eq!(table.is_running(3), Ok(false));
        assert!(!table.begin_run(3, 1).unwrap().first_entry);
    }

    #[test]
    fn unknown_ids_are_reported() {
        let table = InterpreterTable::new();
        assert_eq!(table.begin_run(9, 0), Err(TableError::NotFound(9)));
        assert_eq!(table.begin_close(9), Err(TableError::NotFound(9)));
        assert_eq!(table.is_running(9), Err(TableError::NotFound(9)));
        assert_eq!(TableError::NotFound(9).to_string(), "interpreter 9 not found");
    }

    #[test]
    fn thread_state_is_cached_per_thread() {
        let table = Arc::new(table_with(1));
        assert_eq!(table.begin_run(1, 0).unwrap().tstate, None);
        table.cache_thread_state(1, 0xAAA);
        table.end_run(1);
        assert_eq!(table.begin_run(1, 0).unwrap().tstate, Some(0xAAA));
        table.end_run(1);

        // Another thread does not see this thread's state.
        let t = Arc::clone(&table);
        std::thread::spawn(move || {
            assert_eq!(t.begin_run(1, 0).unwrap().tstate, None);
            t.end_run(1);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn states_of_exited_threads_come_back_stale_once() {
        let table = Arc::new(table_with(1));
        let t = Arc::clone(&table);
        std::thread::spawn(move || {
            t.begin_run(1, 0).unwrap();
            t.cache_thread_state(1, 0xBBB);
            t.end_run(1);
        })
        .join()
        .unwrap();
        let ticket = table.begin_run(1, 0).unwrap();
        assert_eq!(ticket.stale, vec![0xBBB]);
        table.end_run(1);
        assert!(table.begin_run(1, 0).unwrap().stale.is_empty());
    }

    #[test]
    fn closing_blocks_entry_and_returns_every_cached_state() {
        let table = table_with(4);
        table.begin_run(4, 0).unwrap();
        table.cache_thread_state(4, 0xCCC);
        assert_eq!(table.begin_close(4), Err(TableError::Running(4)));
        table.end_run(4);
        let ticket = table.begin_close(4).unwrap();
        assert_eq!(ticket, CloseTicket { interp: 0x1000, parked: 0x2000, cached: vec![0xCCC] });
        assert_eq!(table.begin_run(4, 0), Err(TableError::Closing(4)));
        assert_eq!(table.begin_close(4), Err(TableError::Closing(4)));
        table.abort_close(4);
        assert_eq!(table.begin_run(4, 0).unwrap().tstate, None);
        table.end_run(4);
        table.begin_close(4).unwrap();
        table.finish_close(4);
        assert!(!table.contains(4));
        assert!(table.ids().is_empty());
    }

    #[test]
    fn wait_until_idle_wakes_on_end_run() {
        let table = Arc::new(table_with(2));
        let barrier = Arc::new(Barrier::new(2));
        let (t, b) = (Arc::clone(&table), Arc::clone(&barrier));
        let runner = std::thread::spawn(move || {
            t.begin_run(2, 0).unwrap();
            b.wait();
            std::thread::sleep(Duration::from_millis(20));
            t.end_run(2);
        });
        barrier.wait();
        assert!(!table.wait_until_idle(2, Duration::from_millis(1)));
        assert!(table.wait_until_idle(2, Duration::from_secs(10)));
        runner.join().unwrap();
    }

    #[test]
    fn racing_runners_never_overlap() {
        let table = Arc::new(table_with(5));
        let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (t, inside) = (Arc::clone(&table), Arc::clone(&inside));
                std::thread::spawn(move || {
                    let mut entered = 0;
                    while entered < 200 {
                        if t.begin_run(5, 0).is_ok() {
                            use std::sync::atomic::Ordering::SeqCst;
                            assert_eq!(inside.fetch_add(1, SeqCst), 0);
                            inside.fetch_sub(1, SeqCst);
                            t.end_run(5);
                            entered += 1;
                        } else {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
