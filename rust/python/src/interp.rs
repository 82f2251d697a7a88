//! Interpreter lifecycle: create, enter/leave, close, look up.
//!
//! Facts this module is built on (DESIGN section 9, learned by crashing):
//! * Each interpreter keeps the thread state it was born with "parked" for its
//!   whole life and is ended with that same thread state: on 3.12.1 a
//!   thread-state count that drops to zero and rises again kills the process.
//! * On 3.12, `threading` must be imported under the parked state, in
//!   `create()` on the creating thread (see `prepare_new_interpreter`).
//! * `Py_EndInterpreter` needs the only remaining thread state, so every
//!   cached one is deleted first and closing refuses while anyone is inside.
//! * A new thread state per call costs 15-140 µs; the table caches one per
//!   (OS thread, interpreter) and hands back those of exited threads to be
//!   deleted here, under the interpreter's GIL.
//! * `PyGILState_Ensure` always lands in the main interpreter, so it never
//!   reaches a subinterpreter (only the creation helper thread uses it, for a
//!   thread state of the main interpreter); entering is an explicit
//!   `PyThreadState_Swap`, which releases the caller's GIL while the target
//!   runs.
//! * 3.14 on the main thread: interpreters are made on a helper thread, and
//!   pymalloc's arenas are recycled (see `create_on_helper`, `arenas`).

use std::ffi::CStr;

use interpreters_aio_core::{InterpreterTable, TableError, Value};
use pyo3_ffi::*;

use crate::py::{self, Owned};

/// Every interpreter this package created, in every interpreter of the process.
pub static TABLE: InterpreterTable = InterpreterTable::new();

/// Why an interpreter operation failed, before it becomes a Python exception.
#[derive(Debug)]
pub enum InterpError {
    Table(TableError),
    /// The interpreter exists but was not created by this package.
    NotOurs(i64),
    /// Refused for a reason stated in the message (an `InterpreterError`).
    Refused(String),
    /// A Python exception is set in the caller's interpreter.
    Raised,
}

impl From<TableError> for InterpError {
    fn from(e: TableError) -> Self {
        InterpError::Table(e)
    }
}

impl From<py::Raised> for InterpError {
    fn from(_: py::Raised) -> Self {
        InterpError::Raised
    }
}

/// The id of the interpreter the calling thread is in.
///
/// # Safety
/// The caller holds a GIL (has a current thread state).
pub unsafe fn current_id() -> i64 {
    // SAFETY: the caller has a current thread state, hence a current interpreter.
    unsafe { PyInterpreterState_GetID(PyInterpreterState_Get()) }
}

/// The id of the main interpreter.
///
/// # Safety
/// The runtime is initialized.
pub unsafe fn main_id() -> i64 {
    // SAFETY: the main interpreter lives as long as the runtime.
    unsafe { PyInterpreterState_GetID(PyInterpreterState_Main()) }
}

/// Ids of every interpreter in the process, ours or not, oldest first.
///
/// # Safety
/// The caller holds a GIL.
pub unsafe fn all_ids() -> Vec<i64> {
    let mut ids = Vec::new();
    // SAFETY: walking the runtime's interpreter list, as CPython's own modules
    // do; an interpreter is only freed by a `close`/`destroy` that the list
    // walk could race with, which the table's Closing state rules out for ours.
    unsafe {
        let mut interp = PyInterpreterState_Head();
        while !interp.is_null() {
            ids.push(PyInterpreterState_GetID(interp));
            interp = PyInterpreterState_Next(interp);
        }
    }
    ids.sort_unstable();
    ids
}

/// Whether `interp` is still in the runtime's list with the same id: the
/// standard library can destroy our interpreters behind our back.
///
/// # Safety
/// The caller holds a GIL.
unsafe fn still_alive(interp: usize, id: i64) -> bool {
    // SAFETY: as in `all_ids`; the pointer is only compared, never dereferenced
    // unless it is found in the list.
    unsafe {
        let mut cur = PyInterpreterState_Head();
        while !cur.is_null() {
            if cur as usize == interp {
                return PyInterpreterState_GetID(cur) == id;
            }
            cur = PyInterpreterState_Next(cur);
        }
    }
    false
}

/// Whether an interpreter with this id exists at all.
///
/// # Safety
/// The caller holds a GIL.
pub unsafe fn exists(id: i64) -> bool {
    // SAFETY: forwarded from the caller.
    unsafe { all_ids().contains(&id) }
}

/// Creates an isolated interpreter with its own GIL and returns its id. The
/// caller's thread state is current again when this returns, also on error.
///
/// `sys_path` (a list of str) becomes the new interpreter's `sys.path`, so it
/// can import what its creator can. `daemon_threads` lets code there start
/// daemon threads (CPython's isolated config refuses them); `close` joins
/// them like any other thread, since an interpreter cannot end with a thread
/// inside.
///
/// # Safety
/// The caller holds the GIL of its interpreter.
pub unsafe fn create(sys_path: Option<&Value>, daemon_threads: bool) -> Result<i64, InterpError> {
    #[cfg(not(Py_GIL_DISABLED))]
    arenas::install();
    #[cfg(not(Py_3_13))]
    // SAFETY: the caller holds its GIL, as `creation_turn` requires.
    let _turn = unsafe { creation_turn() };
    // SAFETY: the caller holds its GIL.
    let made = match unsafe { create_on_helper(daemon_threads, sys_path) } {
        Some(made) => made,
        // SAFETY: the caller holds its GIL, as `new_interpreter` requires.
        None => unsafe { new_interpreter(daemon_threads, sys_path) },
    };
    let Made { id, interp, parked, setup_ok } = made.map_err(InterpError::Refused)?;
    // SAFETY: a thread identity query with no preconditions.
    let creator = unsafe { PyThread_get_thread_ident() } as u64;
    TABLE.register(id, interp, parked, creator);
    if !setup_ok {
        // SAFETY: back under the caller's GIL.
        unsafe {
            let _ = close(id);
            PyErr_Clear();
        }
        return Err(InterpError::Refused(format!("interpreter {id} could not be set up")));
    }
    Ok(id)
}

/// A new interpreter, not yet in the table.
struct Made {
    id: i64,
    interp: usize,
    parked: usize,
    /// Its `sys.path` was set (otherwise it is closed again).
    setup_ok: bool,
}

/// Makes the interpreter on the calling thread, whose current thread state
/// (any interpreter's) holds its GIL, as it does again on return.
///
/// # Safety
/// The caller holds the GIL of its current thread state.
unsafe fn new_interpreter(daemon_threads: bool, sys_path: Option<&Value>) -> Result<Made, String> {
    // Own GIL with the shared main allocator is accepted by every CPython and
    // unsafe on all of them; this fixed config never asks for it, and 3.12.1
    // returns from a refused config without the caller's GIL, so nothing
    // refusable is ever passed.
    let config = PyInterpreterConfig {
        use_main_obmalloc: 0,
        allow_fork: 0,
        allow_exec: 0,
        allow_threads: 1,
        allow_daemon_threads: daemon_threads.into(),
        check_multi_interp_extensions: 1,
        gil: PyInterpreterConfig_OWN_GIL,
    };
    // SAFETY: the caller holds its GIL, so it has a current thread state.
    let caller = unsafe { py::current_tstate() };
    let mut parked: *mut PyThreadState = std::ptr::null_mut();
    // SAFETY: `config` is a valid, own-allocator config and `parked` receives
    // the new thread state; on success the new interpreter is current.
    let status = unsafe { Py_NewInterpreterFromConfig(&mut parked, &config) };
    // SAFETY: PyStatus_Exception only reads the struct.
    if unsafe { PyStatus_Exception(status) } != 0 || parked.is_null() {
        // SAFETY: restore whatever state CPython left us in to the caller's.
        unsafe { restore(caller) };
        let msg = if status.err_msg.is_null() {
            "unknown error".to_owned()
        } else {
            // SAFETY: err_msg is a static NUL-terminated C string from CPython.
            unsafe { CStr::from_ptr(status.err_msg) }.to_string_lossy().into_owned()
        };
        return Err(format!("interpreter creation failed: {msg}"));
    }
    // SAFETY: `parked` is the new interpreter's current thread state; we hold
    // its GIL until the swap back below.
    unsafe {
        let interp = PyThreadState_GetInterpreter(parked);
        let id = PyInterpreterState_GetID(interp);
        let setup = prepare_new_interpreter(sys_path);
        if setup.is_err() {
            PyErr_Clear();
        }
        PyThreadState_Swap(caller);
        Ok(Made { id, interp: interp as usize, parked: parked as usize, setup_ok: setup.is_ok() })
    }
}

/// 3.14 on Linux, from the process's main thread: makes the interpreter on a
/// short-lived helper thread instead, and returns None where that does not
/// apply (the caller then makes it itself).
///
/// Why: every thread state 3.14 attaches for the first time on the main
/// thread asks glibc for that thread's stack bounds, and for the main thread
/// glibc reads all of /proc/self/maps. A new interpreter makes one thread
/// state for itself and one more in the main interpreter per builtin module
/// it imports (the import runs the module's init function there first): some
/// 13 reads per create(), a tenth of its time. On any other thread the
/// bounds come from the thread's own descriptor. The helper holds a thread
/// state of the main interpreter while it creates (`PyGILState_Ensure`), as
/// the caller would: so the new interpreter's parked state is not bound to
/// the helper's `PyGILState` slot (deleting it at close would otherwise clear
/// the closing thread's slot), and its config is copied from the main
/// interpreter's, as every interpreter's is. The caller's GIL is released
/// while it waits, as it is while it creates.
///
/// # Safety
/// The caller holds its GIL.
#[cfg(all(Py_3_14, target_os = "linux"))]
unsafe fn create_on_helper(daemon_threads: bool, sys_path: Option<&Value>) -> Option<Result<Made, String>> {
    extern "C" {
        // CPython's, since 3.8 (not bound by pyo3-ffi): the kernel's thread id.
        fn PyThread_get_thread_native_id() -> std::ffi::c_ulong;
    }
    // SAFETY: a thread identity query with no preconditions; the main
    // thread's id is the process's.
    let on_main = unsafe { PyThread_get_thread_native_id() } == std::ffi::c_ulong::from(std::process::id());
    // SAFETY: as above. A thread attaching during finalization hangs forever.
    if !on_main || unsafe { Py_IsFinalizing() } != 0 {
        return None;
    }
    // SAFETY: the caller's GIL is released for the wait and retaken after.
    let saved = unsafe { PyEval_SaveThread() };
    let made = std::thread::scope(|scope| {
        let helper =
            std::thread::Builder::new().name("interp-create".into()).spawn_scoped(scope, move || {
                // SAFETY: this thread has no thread state; Ensure gives it one
                // of the main interpreter (with its GIL), Release deletes it.
                unsafe {
                    let gil = PyGILState_Ensure();
                    let made = new_interpreter(daemon_threads, sys_path);
                    PyGILState_Release(gil);
                    made
                }
            });
        helper
            .ok()
            .map(|helper| helper.join().unwrap_or_else(|_| Err("interpreter creation panicked".into())))
    });
    // SAFETY: retakes the GIL released above.
    unsafe { PyEval_RestoreThread(saved) };
    made
}

#[cfg(not(all(Py_3_14, target_os = "linux")))]
unsafe fn create_on_helper(_daemon_threads: bool, _sys_path: Option<&Value>) -> Option<Result<Made, String>> {
    None
}

/// Recycles the memory arenas of pymalloc (the object allocator of GIL
/// builds): an interpreter with its own allocator maps fresh 1 MiB arenas as
/// it starts and unmaps them all when it ends, so each create() + close()
/// paid some 400 page faults and the munmap calls again (a tenth of its
/// time). A few freed arenas (up to `MAX_CACHED_BYTES`) are kept mapped and
/// handed to the next arena allocation of any interpreter instead; beyond
/// that they go back to the allocator that was installed before (CPython's
/// mmap/munmap). pymalloc never assumes a new arena is zeroed (it accepts any
/// arena allocator, malloc included). Free-threaded builds use mimalloc, not
/// arenas: nothing to do there.
#[cfg(not(Py_GIL_DISABLED))]
mod arenas {
    use std::ffi::c_void;
    use std::sync::{Mutex, OnceLock};

    use pyo3_ffi::{PyObjectArenaAllocator, PyObject_GetArenaAllocator, PyObject_SetArenaAllocator};

    /// Smaller blocks (thread-state data stacks go through the same
    /// allocator) are passed through.
    const MIN_CACHED: usize = 256 * 1024;
    /// What stays mapped at most once interpreters are closed: about what one
    /// fresh interpreter uses.
    const MAX_CACHED_BYTES: usize = 8 << 20;

    struct Previous(PyObjectArenaAllocator);
    // SAFETY: the previous allocator is a table of functions CPython itself
    // calls from every interpreter's threads; its context is never touched here.
    unsafe impl Send for Previous {}
    // SAFETY: as above; it is only read after installation.
    unsafe impl Sync for Previous {}

    static PREVIOUS: OnceLock<Previous> = OnceLock::new();
    /// Freed arenas kept mapped: (address, size), the most recent last.
    static FREE: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

    /// The free list, or None while another thread has it: then the arena
    /// takes the previous allocator's way. Never waiting also means a child
    /// forked while another thread held the lock only loses the recycling.
    fn free_list() -> Option<std::sync::MutexGuard<'static, Vec<(usize, usize)>>> {
        match FREE.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    extern "C" fn alloc(_ctx: *mut c_void, size: usize) -> *mut c_void {
        if size >= MIN_CACHED {
            if let Some(mut free) = free_list() {
                if let Some(i) = free.iter().rposition(|&(_, s)| s == size) {
                    return free.swap_remove(i).0 as *mut c_void;
                }
            }
        }
        match PREVIOUS.get() {
            Some(Previous(PyObjectArenaAllocator { ctx, alloc: Some(alloc), .. })) => alloc(*ctx, size),
            _ => std::ptr::null_mut(),
        }
    }

    extern "C" fn free(_ctx: *mut c_void, ptr: *mut c_void, size: usize) {
        if !ptr.is_null() && size >= MIN_CACHED {
            if let Some(mut free) = free_list() {
                let cached: usize = free.iter().map(|&(_, s)| s).sum();
                if cached + size <= MAX_CACHED_BYTES {
                    free.push((ptr as usize, size));
                    return;
                }
            }
        }
        if let Some(Previous(PyObjectArenaAllocator { ctx, free: Some(free), .. })) = PREVIOUS.get() {
            free(*ctx, ptr, size);
        }
    }

    /// Puts the recycler in front of the current arena allocator, once per
    /// process. Arenas already out were made by that allocator and may be
    /// freed through either: both end in it. Another interpreter's thread may
    /// read the allocator table while it is replaced; each of its pointers is
    /// then the old or the new one, and any mix of them works (both contexts
    /// are the previous allocator's, which the recycler ignores and forwards).
    pub fn install() {
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            let mut previous = PyObjectArenaAllocator { ctx: std::ptr::null_mut(), alloc: None, free: None };
            // SAFETY: reads the process's allocator table into a local.
            unsafe { PyObject_GetArenaAllocator(&mut previous) };
            if previous.alloc.is_none() || previous.free.is_none() {
                return;
            }
            if let Some(mut free) = free_list() {
                free.reserve(MAX_CACHED_BYTES / MIN_CACHED);
            }
            let ctx = previous.ctx;
            if PREVIOUS.set(Previous(previous)).is_err() {
                return;
            }
            let mut ours = PyObjectArenaAllocator { ctx, alloc: Some(alloc), free: Some(free) };
            // SAFETY: CPython copies the table; `PREVIOUS`, which the
            // recycler forwards to, is set before anything can call it.
            unsafe { PyObject_SetArenaAllocator(&mut ours) };
        });
    }
}

/// 3.12 only: CPython 3.12 is not safe when two threads create interpreters at
/// once. Seen here on 3.12.1: of two pool workers created together, one failed
/// to import `encodings` ("descriptor 'close' for '_io.BufferedReader' objects
/// doesn't apply to a '_io.FileIO' object"); pybind11 (PR 5779) saw memory
/// errors. So creations take turns, held until the creator is back in its own
/// interpreter.
#[cfg(not(Py_3_13))]
static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Waits for this thread's turn to create an interpreter.
///
/// # Safety
/// The caller holds its interpreter's GIL. It is released while waiting: the
/// thread creating now may need it to switch back to that interpreter.
#[cfg(not(Py_3_13))]
unsafe fn creation_turn() -> std::sync::MutexGuard<'static, ()> {
    use std::sync::TryLockError;
    match CREATING.try_lock() {
        Ok(turn) => turn,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => {
            // SAFETY: releasing and retaking this thread's own GIL around a
            // wait that touches no Python object.
            unsafe {
                let saved = PyEval_SaveThread();
                let turn = CREATING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                PyEval_RestoreThread(saved);
                turn
            }
        }
    }
}

/// Runs in the new interpreter under its parked thread state.
unsafe fn prepare_new_interpreter(sys_path: Option<&Value>) -> py::PyResult<()> {
    // SAFETY: the new interpreter's GIL is held by the caller.
    unsafe {
        // 3.12: `threading` is imported at the first entry, not here (see
        // `prime_threading`): it is a third of what create() + close() cost.
        // 3.12's `signal.getsignal()` fix is also made at the first entry
        // (see `answer_getsignal_with_none`).
        if let Some(path) = sys_path {
            let path = crate::from_value::from_value(path)?;
            let sys = py::import(c"sys")?;
            if PyObject_SetAttrString(sys.as_ptr(), c"path".as_ptr(), path.as_ptr()) < 0 {
                return Err(py::Raised);
            }
        }
    }
    Ok(())
}

/// 3.12 only: `signal.getsignal()` in a subinterpreter returns the *main*
/// interpreter's handler object, and touching it there (as asyncio.run()
/// does) corrupts memory (CPython bug; reproduced with the stdlib's own
/// module). A subinterpreter can never set handlers, so its
/// `_signal.getsignal` becomes a builtin that answers None ("not set from
/// Python"). Made at the first entry with `prime_threading`, before any code
/// runs there, and as a C function, not a compiled lambda: importing
/// `_signal` and compiling were what 3.12's create() + close() cost more
/// than the stdlib's.
///
/// # Safety
/// The new interpreter's GIL is held.
#[cfg(not(Py_3_13))]
unsafe fn answer_getsignal_with_none() {
    unsafe extern "C" fn getsignal(_module: *mut PyObject, _signalnum: *mut PyObject) -> *mut PyObject {
        // SAFETY: CPython calls it under the GIL; None is immortal.
        unsafe { py::none() }
    }
    static mut GETSIGNAL: PyMethodDef = PyMethodDef {
        ml_name: c"getsignal".as_ptr(),
        ml_meth: PyMethodDefPointer { PyCFunction: getsignal },
        ml_flags: METH_O,
        ml_doc: c"getsignal(signalnum, /) -> None: a subinterpreter never sets signal handlers".as_ptr(),
    };
    // SAFETY: the GIL is held; the method definition is static and never
    // written, and every reference made here is owned.
    unsafe {
        let patched = (|| -> py::PyResult<()> {
            let signal = py::import(c"_signal")?;
            let func = py::check(PyCFunction_NewEx(
                std::ptr::addr_of_mut!(GETSIGNAL),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            ))?;
            if PyObject_SetAttrString(signal.as_ptr(), c"getsignal".as_ptr(), func.as_ptr()) < 0 {
                return Err(py::Raised);
            }
            Ok(())
        })();
        if patched.is_err() {
            PyErr_Clear();
        }
    }
}

/// Makes `caller` current again after CPython left this thread with no
/// thread state or another one.
unsafe fn restore(caller: *mut PyThreadState) {
    // SAFETY: `caller` is this thread's original thread state.
    unsafe {
        let now = py::current_tstate();
        if now.is_null() {
            PyEval_RestoreThread(caller);
        } else if now != caller {
            PyThreadState_Swap(caller);
        }
    }
}

/// This thread, switched into an interpreter; switch back with `leave`
/// (or by dropping it).
pub struct Entered {
    id: i64,
    caller: *mut PyThreadState,
}

/// Claims `id` for this thread and makes it the current interpreter. The
/// caller's GIL is released while inside.
///
/// # Safety
/// The caller holds the GIL of its interpreter and has no `Owned` values it
/// will touch before leaving.
pub unsafe fn enter(id: i64) -> Result<Entered, InterpError> {
    // SAFETY: a thread identity query with no preconditions.
    let ident = unsafe { PyThread_get_thread_ident() } as u64;
    let ticket = match TABLE.begin_run(id, ident) {
        Ok(ticket) => ticket,
        // SAFETY: the caller holds a GIL.
        Err(TableError::NotFound(_)) if unsafe { exists(id) } => {
            // SAFETY: the runtime is initialized.
            if id == unsafe { main_id() } {
                return Err(TableError::Running(id).into());
            }
            return Err(InterpError::NotOurs(id));
        }
        Err(e) => return Err(e.into()),
    };
    // SAFETY: the caller holds a GIL.
    if !unsafe { still_alive(ticket.interp, id) } {
        TABLE.end_run(id);
        TABLE.finish_close(id);
        return Err(TableError::NotFound(id).into());
    }
    let tstate = match ticket.tstate {
        Some(tstate) => tstate as *mut PyThreadState,
        None => {
            // SAFETY: the interpreter is alive and claimed by us, so it cannot be
            // closed meanwhile; PyThreadState_New needs no GIL of the target.
            let fresh = unsafe { PyThreadState_New(ticket.interp as *mut PyInterpreterState) };
            if fresh.is_null() {
                TABLE.end_run(id);
                // SAFETY: the caller's GIL is held.
                return Err(unsafe { py::raise(PyExc_MemoryError, "cannot create a thread state") }.into());
            }
            TABLE.cache_thread_state(id, fresh as usize);
            fresh
        }
    };
    #[cfg(not(Py_3_13))]
    if ticket.first_entry {
        // SAFETY: the caller holds its GIL; the interpreter is claimed by us,
        // and its parked state is current nowhere.
        unsafe { prime_threading(ticket.parked as *mut PyThreadState, ticket.creator) };
    }
    // SAFETY: `tstate` belongs to this OS thread and the claimed interpreter;
    // the swap releases the caller's GIL and takes the target's.
    let caller = unsafe { PyThreadState_Swap(tstate) };
    for stale in ticket.stale {
        // SAFETY: stale states belong to exited threads of this interpreter,
        // whose GIL we now hold; none of them is current anywhere.
        unsafe {
            let stale = stale as *mut PyThreadState;
            PyThreadState_Clear(stale);
            PyThreadState_Delete(stale);
        }
    }
    Ok(Entered { id, caller })
}

impl Entered {
    pub fn leave(self) {
        drop(self);
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        // SAFETY: we are inside the interpreter entered by `enter` on this
        // thread; swapping back releases its GIL and retakes the caller's.
        unsafe { PyThreadState_Swap(self.caller) };
        // A close that cancelled our waits in there is done with us.
        interpreters_aio_core::parker::clear_cancel();
        TABLE.end_run(self.id);
    }
}

/// Finalizes an interpreter this package created. Closing twice is harmless.
///
/// # Safety
/// The caller holds the GIL of its interpreter.
pub unsafe fn close(id: i64) -> Result<(), InterpError> {
    // SAFETY: the caller holds a GIL.
    let (current, main) = unsafe { (current_id(), main_id()) };
    if id == main {
        return Err(InterpError::Refused("cannot close the main interpreter".into()));
    }
    if id == current {
        return Err(InterpError::Refused(format!(
            "cannot close interpreter {id}: it is the current interpreter"
        )));
    }
    let mut claimed = TABLE.begin_close(id);
    if let Err(TableError::Running(_)) = claimed {
        // A thread runs code in it. If that code is blocked on a queue or a
        // channel, wake it with an error, let the call return, then close;
        // code that is computing is not disturbed (closing raises, as in 3.14).
        let blocked = TABLE.running_ident(id).filter(|&t| interpreters_aio_core::parker::is_waiting(t));
        if let Some(ident) = blocked {
            interpreters_aio_core::parker::cancel_thread(ident);
            {
                // SAFETY: waiting with our GIL released, as any blocking call.
                let idle = unsafe {
                    let saved = PyEval_SaveThread();
                    let idle = TABLE.wait_until_idle(id, std::time::Duration::from_secs(5));
                    PyEval_RestoreThread(saved);
                    idle
                };
                if idle {
                    claimed = TABLE.begin_close(id);
                } else {
                    // Still running (not blocked on us): leave it undisturbed.
                    interpreters_aio_core::parker::withdraw_cancel(ident);
                }
            }
        }
    }
    let ticket = match claimed {
        Ok(ticket) => ticket,
        Err(TableError::NotFound(_)) => {
            // SAFETY: the caller holds a GIL.
            if unsafe { exists(id) } {
                return Err(InterpError::NotOurs(id));
            }
            return Ok(()); // already closed
        }
        Err(TableError::Running(_)) => {
            return Err(InterpError::Refused(format!("cannot close interpreter {id}: it is running")));
        }
        Err(e) => return Err(e.into()),
    };
    // SAFETY: the caller holds a GIL.
    if !unsafe { still_alive(ticket.interp, id) } {
        TABLE.finish_close(id);
        return Ok(());
    }
    let parked = ticket.parked as *mut PyThreadState;
    // SAFETY: nobody can enter (the record is Closing); the parked state is
    // this interpreter's own, so swapping to it takes the interpreter's GIL.
    let caller = unsafe { PyThreadState_Swap(parked) };
    // SAFETY: we hold the target's GIL and none of the cached states is current.
    unsafe {
        for cached in ticket.cached {
            let cached = cached as *mut PyThreadState;
            PyThreadState_Clear(cached);
            PyThreadState_Delete(cached);
        }
    }
    // SAFETY: still inside the target under its parked state.
    #[cfg(not(Py_3_13))]
    unsafe {
        adopt_threading_main_thread()
    };
    // SAFETY: still inside the target under its parked state.
    if let Err(why) = unsafe { join_other_threads(parked) } {
        // SAFETY: back to the caller; the interpreter stays usable.
        unsafe { PyThreadState_Swap(caller) };
        TABLE.abort_close(id);
        return Err(InterpError::Refused(format!("cannot close interpreter {id}: {why}")));
    }
    // SAFETY: the parked state is current and the only thread state left; after
    // Py_EndInterpreter this thread has none, so swapping to `caller` restores it.
    unsafe {
        Py_EndInterpreter(parked);
        PyThreadState_Swap(caller);
    }
    TABLE.finish_close(id);
    // Items it put on queues now follow their unbound-items rule (PEP 734).
    interpreters_aio_core::queue::interpreter_closed(id);
    Ok(())
}

/// 3.12 only: imports `threading` in an interpreter about to run code for the
/// first time, under its parked thread state, with the creating OS thread as
/// its main thread (what importing it in `create()` gave, at a third of the
/// cost of `create()` + `close()` for interpreters that never run code).
///
/// Under the parked state, because threading's main-thread lock lives as long
/// as the thread state that imported it, and 3.12's `threading._shutdown()` at
/// close waits on it. With the creator as main thread, because a worker thread
/// taken for the main thread runs asyncio.run() as one, which inspects the
/// SIGINT handler that 3.12 wrongly hands out from the main interpreter: a
/// crash (CPython bug; reproduced). `_MainThread()` takes the importing
/// thread's ident, so it is re-keyed; no other thread exists there yet.
///
/// # Safety
/// The caller holds its own GIL, has claimed the interpreter, and `parked` is
/// its parked thread state (current on no thread).
#[cfg(not(Py_3_13))]
unsafe fn prime_threading(parked: *mut PyThreadState, creator: u64) {
    let src = format!(
        "import threading as _t\n\
         _m = _t._main_thread\n\
         if _m._ident != {creator}:\n    \
             _t._active.pop(_m._ident, None)\n    \
             _m._ident = {creator}\n    \
             _t._active[{creator}] = _m\n\
         del _t, _m\n"
    );
    let Ok(src) = std::ffi::CString::new(src) else { return };
    // SAFETY: swapping to the parked state takes the interpreter's GIL and
    // releases the caller's; swapping back restores the caller's.
    unsafe {
        let caller = PyThreadState_Swap(parked);
        answer_getsignal_with_none();
        run_private(&src);
        PyThreadState_Swap(caller);
    }
}

/// 3.12 only: `Py_EndInterpreter` runs `threading._shutdown()`, which releases
/// the main thread's lock only if it runs on the OS thread that imported
/// `threading`, and otherwise waits for that lock forever (it belongs to the
/// parked thread state, alive until the end). The thread that closes the
/// interpreter is the one ending its main thread, so it takes that identity.
///
/// # Safety
/// The interpreter's parked thread state is current.
#[cfg(not(Py_3_13))]
unsafe fn adopt_threading_main_thread() {
    // SAFETY: the GIL is held; the lookup's reference is released at once.
    let imported = unsafe {
        let key = Owned::from_new(PyUnicode_FromString(c"threading".as_ptr()));
        let module = key.and_then(|key| Owned::from_new(PyImport_GetModule(key.as_ptr())));
        PyErr_Clear();
        module.is_some()
    };
    if !imported {
        return; // nothing to adopt, and no code to compile
    }
    let src = cr#"
import sys as _s
_t = _s.modules.get("threading")
if _t is not None and _t._main_thread.ident != _t.get_ident():
    _t._main_thread._ident = _t.get_ident()
del _s, _t
"#;
    // SAFETY: forwarded from the caller.
    unsafe { run_private(src) };
}

/// Runs `src` in a throwaway namespace of the current interpreter, ignoring
/// errors (used for best-effort housekeeping during close).
///
/// # Safety
/// The current interpreter's GIL is held.
unsafe fn run_private(src: &std::ffi::CStr) {
    // SAFETY: the GIL is held; every reference made here is released here.
    unsafe {
        let Some(globals) = Owned::from_new(PyDict_New()) else {
            PyErr_Clear();
            return;
        };
        PyDict_SetItemString(globals.as_ptr(), c"__builtins__".as_ptr(), PyEval_GetBuiltins());
        let result = PyRun_StringFlags(
            src.as_ptr(),
            Py_file_input,
            globals.as_ptr(),
            globals.as_ptr(),
            std::ptr::null_mut(),
        );
        if result.is_null() {
            PyErr_Clear();
        } else {
            Py_DECREF(result);
        }
    }
}

/// Joins threads started with `threading` inside the interpreter, and checks
/// that no other thread state is left (Py_EndInterpreter aborts otherwise).
///
/// First it runs the callbacks registered with `threading._register_atexit`,
/// newest first, as `threading._shutdown()` does before its joins: that is
/// how a `ThreadPoolExecutor` nobody shut down tells its workers to stop.
/// Each runs once (the list is emptied), so the `_shutdown()` that
/// `Py_EndInterpreter` makes afterwards does not run them again.
unsafe fn join_other_threads(parked: *mut PyThreadState) -> Result<(), String> {
    // SAFETY: the parked state is current; the code runs in a private namespace.
    unsafe {
        if count_thread_states(parked) == 1 {
            return Ok(());
        }
        let src = cr#"
import threading as _t
_callbacks = getattr(_t, "_threading_atexits", None)
if _callbacks:
    _t._SHUTTING_DOWN = True
    while _callbacks:
        try:
            _callbacks.pop()()
        except BaseException:
            import traceback as _tb
            _tb.print_exc()
for _th in _t.enumerate():
    if _th is not _t.main_thread() and not isinstance(_th, _t._DummyThread) and _th.is_alive():
        _th.join()
"#;
        run_private(src);
        // A joined thread may still be deleting its thread state: join()
        // returns when the thread says it is done, a moment before its state
        // leaves the interpreter's list (seen on free-threaded 3.14t, where
        // that removal does not wait for our GIL). Give it a bounded moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match count_thread_states(parked) {
                1 => return Ok(()),
                n if std::time::Instant::now() >= deadline => {
                    return Err(format!("{} other thread(s) are still inside it", n - 1));
                }
                _ => {
                    let saved = PyEval_SaveThread();
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    PyEval_RestoreThread(saved);
                }
            }
        }
    }
}

unsafe fn count_thread_states(parked: *mut PyThreadState) -> usize {
    // SAFETY: forwarded from the caller.
    unsafe { count_current_thread_states(PyThreadState_GetInterpreter(parked)) }
}

/// Number of thread states of `interp`.
///
/// # Safety
/// The caller holds `interp`'s GIL.
unsafe fn count_current_thread_states(interp: *mut PyInterpreterState) -> usize {
    let mut n = 0;
    // SAFETY: we hold the interpreter's GIL, which guards its thread list.
    unsafe {
        let mut t = PyInterpreterState_ThreadHead(interp);
        while !t.is_null() {
            n += 1;
            t = PyThreadState_Next(t);
        }
    }
    n
}

/// Raises `KeyboardInterrupt` in the thread running code in `id`, if any,
/// at its next bytecode boundary. Returns whether a thread was found.
///
/// # Safety
/// The caller holds the GIL of its interpreter, which is not `id`.
pub unsafe fn interrupt(id: i64) -> bool {
    let (Some(ident), Some(interp)) = (TABLE.running_ident(id), TABLE.interp_handle(id)) else {
        return false;
    };
    // SAFETY: the record exists and is running, so the interpreter cannot be
    // closed under us; the temporary thread state lives only for this call and
    // is cleared while current, then deleted after switching back, as
    // CPython's own module does.
    unsafe {
        let temp = PyThreadState_New(interp as *mut PyInterpreterState);
        if temp.is_null() {
            return false;
        }
        let caller = PyThreadState_Swap(temp);
        let found = PyThreadState_SetAsyncExc(ident as std::ffi::c_long, PyExc_KeyboardInterrupt) > 0;
        PyThreadState_Clear(temp);
        PyThreadState_Swap(caller);
        PyThreadState_Delete(temp);
        found
    }
}

/// How many thread states interpreter `id` has, counted from inside it (so
/// the caller's own cached state is included). For tests of the cache.
///
/// # Safety
/// The caller holds its interpreter's GIL.
pub unsafe fn thread_state_count(id: i64) -> Result<usize, InterpError> {
    // SAFETY: inside the target we hold its GIL until `leave`.
    unsafe {
        let entered = enter(id)?;
        let n = count_current_thread_states(PyInterpreterState_Get());
        entered.leave();
        Ok(n)
    }
}
