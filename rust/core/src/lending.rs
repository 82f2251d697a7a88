//! Lent bytes: a large immutable payload that stays where its sender keeps it
//! until it is received, so that it is copied once, at receipt (as CPython's
//! own queues do), instead of once into Rust memory and again out of it.
//!
//! A [`Lender`] belongs to one interpreter. Lending hands the core a
//! [`Loanable`]: a read-only view of memory the binding keeps alive (a strong
//! reference to a `bytes` object, taken under that interpreter's GIL). The core
//! never releases a loanable itself: when a [`Loan`] is dropped (its item was
//! received, or discarded), the loanable goes to the lender's release list,
//! which the binding drains under the lender's GIL ([`Lender::take_released`]).
//! A receiver in another interpreter only reads the memory, under the loan's
//! lock; it never touches the object that owns it (DESIGN rule 1).
//!
//! When the lending interpreter goes away ([`Lender::close`]), every loan still
//! out is copied into memory the core owns first (DESIGN rule 6: an item
//! survives its sender's interpreter), then all its loanables are handed back
//! for release. Lock order: the lender's lock, then a loan's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::sync::plain::{Mutex, MutexGuard};

/// Bytes at least this long are lent rather than copied at send: below it a
/// copy costs less than the bookkeeping, and small items stay self-contained.
pub const LEND_MIN: usize = 64 * 1024;

/// Memory the binding keeps alive and unchanged until the lender's interpreter
/// releases it (after [`Lender::take_released`] or [`Lender::close`] returns it).
pub trait Loanable: Send {
    /// The lent bytes.
    fn bytes(&self) -> &[u8];
    /// What the binding releases (an object's address): opaque to the core.
    fn token(&self) -> usize;
}

/// Where a loan's bytes are right now.
enum Contents {
    /// Still the sender's memory.
    Lent(Box<dyn Loanable>),
    /// Copied out because the sender's interpreter closed.
    Owned(Box<[u8]>),
}

impl Contents {
    fn bytes(&self) -> &[u8] {
        match self {
            Contents::Lent(lent) => lent.bytes(),
            Contents::Owned(bytes) => bytes,
        }
    }
}

/// One interpreter's loans.
pub struct Lender {
    state: Mutex<LenderState>,
    /// Whether `released` may be non-empty: lets the hot path skip the lock.
    has_released: AtomicBool,
}

struct LenderState {
    open: bool,
    next_id: u64,
    /// Every loan not dropped yet, to copy out at close.
    outstanding: HashMap<u64, Arc<Mutex<Option<Contents>>>>,
    /// Loanables whose loan was dropped, for the lender's interpreter to release.
    released: Vec<Box<dyn Loanable>>,
}

impl Lender {
    pub fn new() -> Arc<Lender> {
        Arc::new(Lender {
            state: Mutex::new(LenderState {
                open: true,
                next_id: 0,
                outstanding: HashMap::new(),
                released: Vec::new(),
            }),
            has_released: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LenderState> {
        // A panic under this lock leaves the maps consistent: keep going.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lends `lent`; gives it back (`Err`) if the lender is closed, for the
    /// caller to release and copy instead.
    pub fn lend(self: &Arc<Self>, lent: Box<dyn Loanable>) -> Result<Loan, Box<dyn Loanable>> {
        let len = lent.bytes().len();
        let mut st = self.lock();
        if !st.open {
            return Err(lent);
        }
        let id = st.next_id;
        st.next_id += 1;
        let contents = Arc::new(Mutex::new(Some(Contents::Lent(lent))));
        st.outstanding.insert(id, Arc::clone(&contents));
        Ok(Loan { lender: Arc::clone(self), id, len, contents })
    }

    /// The loanables whose loans are over, for the caller (under the lender's
    /// interpreter's GIL) to release. Cheap when there are none.
    pub fn take_released(&self) -> Vec<Box<dyn Loanable>> {
        if !self.has_released.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut st = self.lock();
        self.has_released.store(false, Ordering::Release);
        std::mem::take(&mut st.released)
    }

    /// How many loans are out.
    pub fn outstanding(&self) -> usize {
        self.lock().outstanding.len()
    }

    /// The lender's interpreter is going away: copies every loan still out
    /// into owned memory (waiting for receivers copying right now), refuses
    /// new loans, and returns every loanable for the caller to release.
    pub fn close(&self) -> Vec<Box<dyn Loanable>> {
        let mut st = self.lock();
        st.open = false;
        let mut done = std::mem::take(&mut st.released);
        for (_, contents) in st.outstanding.drain() {
            let mut contents = contents.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(Contents::Lent(lent)) = contents.take() {
                *contents = Some(Contents::Owned(lent.bytes().into()));
                done.push(lent);
            }
        }
        self.has_released.store(false, Ordering::Release);
        done
    }
}

/// Bytes lent by an interpreter, in transit.
pub struct Loan {
    lender: Arc<Lender>,
    id: u64,
    len: usize,
    contents: Arc<Mutex<Option<Contents>>>,
}

impl Loan {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls `read` with the bytes (exactly [`Loan::len`] long), under the
    /// loan's lock: the lender cannot release them meanwhile.
    pub fn read<R>(&self, read: impl FnOnce(&[u8]) -> R) -> R {
        let contents = self.contents.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // `Some` until the loan is dropped, and we hold it.
        read(contents.as_ref().map_or(&[], Contents::bytes))
    }

    /// Whether the bytes are still the sender's (not copied out at its close).
    pub fn is_lent(&self) -> bool {
        let contents = self.contents.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        matches!(*contents, Some(Contents::Lent(_)))
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        let mut st = self.lender.lock();
        st.outstanding.remove(&self.id);
        let taken = self.contents.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(Contents::Lent(lent)) = taken {
            st.released.push(lent);
            self.lender.has_released.store(true, Ordering::Release);
        }
    }
}

impl std::fmt::Debug for Loan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Loan({} bytes)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A loanable that counts its releases (its drops) in `released`.
    struct Counted {
        bytes: Vec<u8>,
        released: Arc<AtomicUsize>,
    }

    impl Loanable for Counted {
        fn bytes(&self) -> &[u8] {
            &self.bytes
        }

        fn token(&self) -> usize {
            self.bytes.as_ptr() as usize
        }
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            self.released.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counted(bytes: &[u8], released: &Arc<AtomicUsize>) -> Box<dyn Loanable> {
        Box::new(Counted { bytes: bytes.to_vec(), released: Arc::clone(released) })
    }

    fn lend(lender: &Arc<Lender>, bytes: &[u8], released: &Arc<AtomicUsize>) -> Loan {
        match lender.lend(counted(bytes, released)) {
            Ok(loan) => loan,
            Err(_) => panic!("the lender is open"),
        }
    }

    fn read(loan: &Loan) -> Vec<u8> {
        loan.read(<[u8]>::to_vec)
    }

    #[test]
    fn a_dropped_loan_goes_back_to_its_lender_only() {
        let lender = Lender::new();
        let released = Arc::new(AtomicUsize::new(0));
        let loan = lend(&lender, b"hello", &released);
        assert_eq!(read(&loan), b"hello");
        assert!(lender.take_released().is_empty());
        assert_eq!(lender.outstanding(), 1);
        drop(loan);
        assert_eq!(released.load(Ordering::SeqCst), 0, "the core never releases");
        assert_eq!(lender.outstanding(), 0);
        let back = lender.take_released();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].bytes(), b"hello");
        drop(back);
        assert_eq!(released.load(Ordering::SeqCst), 1);
        assert!(lender.take_released().is_empty());
    }

    #[test]
    fn close_copies_out_what_is_still_lent() {
        let lender = Lender::new();
        let released = Arc::new(AtomicUsize::new(0));
        let kept = lend(&lender, b"kept", &released);
        let gone = lend(&lender, b"gone", &released);
        drop(gone);
        assert!(kept.is_lent());
        let back = lender.close();
        assert_eq!(back.len(), 2, "both the dropped and the outstanding loanable");
        drop(back);
        assert_eq!(released.load(Ordering::SeqCst), 2);
        // The item survives its sender.
        assert!(!kept.is_lent());
        assert_eq!(read(&kept), b"kept");
        drop(kept);
        assert!(lender.take_released().is_empty());
        // A closed lender lends no more.
        let refused = lender.lend(counted(b"late", &released));
        assert!(refused.is_err());
    }

    #[test]
    fn receivers_copy_while_the_lender_closes() {
        let lender = Lender::new();
        let released = Arc::new(AtomicUsize::new(0));
        let payload: Vec<u8> = (0..LEND_MIN * 4).map(|i| (i % 251) as u8).collect();
        let loans: Vec<Loan> = (0..64).map(|_| lend(&lender, &payload, &released)).collect();
        let loans = Arc::new(loans);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let loans = Arc::clone(&loans);
                let payload = payload.clone();
                std::thread::spawn(move || {
                    for loan in loans.iter() {
                        assert_eq!(read(loan), payload);
                    }
                })
            })
            .collect();
        drop(lender.close());
        for reader in readers {
            reader.join().unwrap();
        }
        assert_eq!(released.load(Ordering::SeqCst), 64);
        for loan in loans.iter() {
            assert_eq!(read(loan), payload);
        }
    }
}
