//! Large `bytes` sent through queues and channels are lent, not copied: the
//! sending interpreter keeps a strong reference to the object until the item
//! is received, and the receiver copies the object's contents once, straight
//! into its own new `bytes` (the core's `lending` module keeps the books).
//!
//! Why this keeps DESIGN rule 1: the receiver never uses the object, only
//! reads `len` bytes of memory that the object owns. That memory stays valid
//! and unchanged while the loan holds its reference: `bytes` is immutable,
//! and the only C-API that rewrites one in place (`_PyBytes_Resize`) refuses
//! an object with more than one reference. The reference is taken and dropped
//! only by the lending interpreter, under its GIL: dropped loans queue up in
//! its lender and are released at its next queue or channel call, or when its
//! module is freed. Rule 6: when the interpreter finalizes, its module's free
//! copies every loan still out into Rust memory before the references go.

use std::sync::Arc;

use interpreters_aio_core::lending::{Lender, Loanable, LEND_MIN};
use interpreters_aio_core::{Shared, Value};
use pyo3_ffi::*;

/// A strong reference to a `bytes` object, and where its contents are.
struct LentBytes {
    object: *mut PyObject,
    data: *const u8,
    len: usize,
}

// SAFETY: the pointers are only dereferenced to read the immutable contents
// (from any thread, which plain memory allows); the object itself is released
// only by `release`, which runs under its own interpreter's GIL.
unsafe impl Send for LentBytes {}

impl Loanable for LentBytes {
    fn bytes(&self) -> &[u8] {
        // SAFETY: `object` holds a reference until `release`, which the core
        // calls for only after the last reader is done (see the module docs).
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }

    fn token(&self) -> usize {
        self.object as usize
    }
}

/// Lends `object` (an exact `bytes` whose contents are `data[..len]`) if it
/// is large enough and `lender` is open; `None` means copy it instead.
///
/// # Safety
/// The GIL of `lender`'s interpreter is held and `object` is an exact `bytes`.
pub unsafe fn lend(
    lender: &Arc<Lender>,
    object: *mut PyObject,
    data: *const u8,
    len: usize,
) -> Option<Value> {
    if len < LEND_MIN {
        return None;
    }
    // SAFETY: the caller holds the object's interpreter's GIL.
    unsafe { Py_INCREF(object) };
    match lender.lend(Box::new(LentBytes { object, data, len })) {
        Ok(loan) => Some(Value::Lent(Shared(Arc::new(loan)))),
        Err(back) => {
            // SAFETY: as above; `back` is the loanable just made.
            unsafe { release(vec![back]) };
            None
        }
    }
}

/// Drops the references of loans that are over.
///
/// # Safety
/// The GIL of the interpreter that lent them is held.
pub unsafe fn release(done: Vec<Box<dyn Loanable>>) {
    for lent in done {
        // SAFETY: every loanable of this binding is a `LentBytes` whose token
        // is the object it holds a reference to, lent by this interpreter.
        unsafe { Py_DECREF(lent.token() as *mut PyObject) };
    }
}

/// The lender of the interpreter owning `module`, if its module state has one.
///
/// # Safety
/// `module` is this extension's module and its interpreter's GIL is held.
pub unsafe fn lender<'a>(module: *mut PyObject) -> Option<&'a Arc<Lender>> {
    // SAFETY: forwarded; the state's lender is set in exec and freed in free.
    unsafe { crate::module::state(module).lender.as_ref() }
}

/// Releases the loans of this interpreter that are over: called on each
/// queue and channel operation, so memory goes back soon after receipt.
///
/// # Safety
/// As for [`lender`].
pub unsafe fn settle(module: *mut PyObject) {
    // SAFETY: forwarded.
    unsafe {
        if let Some(lender) = lender(module) {
            release(lender.take_released());
        }
    }
}
