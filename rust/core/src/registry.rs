//! Process-wide lookup of live queues and channels by id.
//!
//! The registry holds weak references: a queue or channel lives as long as
//! something holds it (a Python object in any interpreter, or a `Value` in
//! transit), and removes itself from the registry when dropped. So `Queue(id)`
//! finds exactly the objects still reachable somewhere.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use crate::sync::plain::{Mutex, MutexGuard};

pub struct Registry<T> {
    entries: Mutex<BTreeMap<u64, Weak<T>>>,
    next_id: AtomicU64,
}

impl<T> Registry<T> {
    pub const fn new() -> Self {
        Self { entries: Mutex::new(BTreeMap::new()), next_id: AtomicU64::new(1) }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Weak<T>>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes a new object with a fresh id and registers it.
    pub fn insert(&self, make: impl FnOnce(u64) -> T) -> Arc<T> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let object = Arc::new(make(id));
        self.lock().insert(id, Arc::downgrade(&object));
        object
    }

    /// The live object with this id.
    pub fn get(&self, id: u64) -> Option<Arc<T>> {
        self.lock().get(&id).and_then(Weak::upgrade)
    }

    /// Forgets `id`; called from the object's `Drop`.
    pub fn remove(&self, id: u64) {
        let mut entries = self.lock();
        if entries.get(&id).is_some_and(|w| w.strong_count() == 0) {
            entries.remove(&id);
        }
    }

    /// Every live object, by id.
    pub fn live(&self) -> Vec<Arc<T>> {
        self.lock().values().filter_map(Weak::upgrade).collect()
    }
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Thing(u64);

    #[test]
    fn lookup_follows_liveness() {
        let reg: Registry<Thing> = Registry::new();
        let a = reg.insert(Thing);
        let b = reg.insert(Thing);
        assert_ne!(a.0, b.0);
        assert_eq!(reg.get(a.0).map(|t| t.0), Some(a.0));
        let id = b.0;
        drop(b);
        assert!(reg.get(id).is_none());
        reg.remove(id);
        assert_eq!(reg.live().len(), 1);
    }
}
