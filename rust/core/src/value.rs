//! The `Value` model: what crosses between interpreters.
//!
//! A `Value` is plain Rust data with no Python object inside (DESIGN rule 1).
//! The binding converts an object into a `Value` under the sending
//! interpreter's GIL and builds a fresh object from it under the receiving
//! interpreter's GIL, so dropping or moving a `Value` needs no GIL at all.
//!
//! Strings keep CPython's exact contents: valid UTF-8 travels as `Str`; a
//! string holding lone surrogates (legal in Python, illegal in Rust) travels
//! as its "surrogatepass" encoding in `StrSurrogates`.

/// How deep containers may nest before conversion gives up with a clear
/// error instead of exhausting the native stack.
pub const MAX_DEPTH: usize = 200;

/// Data that can be rebuilt as an equal object in any interpreter.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    /// An `int` that fits in 64 bits (the common case, no allocation).
    Int(i64),
    /// An `int` of any size, as lower-case hexadecimal with an optional `-`.
    BigInt(Box<str>),
    Float(f64),
    Complex(f64, f64),
    Str(Box<str>),
    /// UTF-8 with surrogates passed through (Python's "surrogatepass").
    StrSurrogates(Box<[u8]>),
    Bytes(Box<[u8]>),
    /// Large `bytes` still in the sender's memory, copied once at receipt
    /// (see `lending`); rebuilt as `bytes` like `Bytes`.
    Lent(Shared<crate::lending::Loan>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// A list or tuple holding only 64-bit ints, packed: numeric data is the
    /// common big payload, and one flat buffer copies and frees in one go.
    Ints(Seq, Box<[i64]>),
    /// A list or tuple holding only floats, packed likewise.
    Floats(Seq, Box<[f64]>),
    /// Keys and values alternating: `[k0, v0, k1, v1, ...]`, in dict order.
    /// Flat, so converters push items in place like any other container.
    Dict(Vec<Value>),
    Set(Vec<Value>),
    FrozenSet(Vec<Value>),
    /// A queue: sending one sends a reference to the same queue.
    Queue(Shared<crate::queue::Queue>),
    /// One end of a channel: sending one sends a reference to the same channel.
    Channel(Shared<crate::channel::Channel>, crate::channel::End),
    /// Shared memory: sending one sends a reference, never the bytes.
    Buffer(Shared<crate::shared::SharedBytes>),
    /// A `memoryview`: the bytes it shows (shared when it views a shared
    /// buffer, else a copy), rebuilt as a memoryview of the same format,
    /// shape and writability.
    MemoryView(Box<SharedView>),
    /// An object that is not natively shareable, as a pickle.
    Pickled(Box<[u8]>),
    /// A module-level function (or builtin) sent by name: the receiver
    /// imports `module` and follows `qualname`, as pickle would, without
    /// paying for importing pickle in a fresh interpreter (~10 ms).
    Global {
        module: Box<str>,
        qualname: Box<str>,
    },
    /// A function shipped by its code (defined in `__main__`, or a lambda):
    /// rebuilt in the receiver with the receiver's `__main__` as globals.
    Function(Box<ShippedFunction>),
}

/// A reference-counted handle to a shared object, compared by identity.
pub struct Shared<T>(pub std::sync::Arc<T>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(std::sync::Arc::clone(&self.0))
    }
}

impl<T> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shared<{}>({:p})", std::any::type_name::<T>(), std::sync::Arc::as_ptr(&self.0))
    }
}

impl<T> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A `memoryview` as it crosses: `len` bytes at `offset` in `bytes`, C-contiguous.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedView {
    pub bytes: Shared<crate::shared::SharedBytes>,
    pub offset: usize,
    pub len: usize,
    /// The struct format of one item (`"B"`, `"d"`, ...).
    pub format: Box<str>,
    pub shape: Box<[usize]>,
    pub readonly: bool,
}

/// Which sequence type a packed `Ints`/`Floats` value rebuilds as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seq {
    List,
    Tuple,
}

/// The parts of a function that let another interpreter rebuild it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShippedFunction {
    /// `marshal` serialization of the function's code object.
    pub code: Box<[u8]>,
    pub name: Box<str>,
    pub qualname: Box<str>,
    /// Positional defaults (a `Tuple`) or `None`.
    pub defaults: Value,
    /// Keyword-only defaults (a `Dict`) or `None`.
    pub kwdefaults: Value,
    /// For a function of the main interpreter's `__main__` script that uses
    /// its globals: the script's path. The receiver runs the script once as a
    /// hidden module and gives the function that module's globals, as 3.14
    /// does when it unpickles such a function. `None`: the receiver's
    /// `__main__` is the globals.
    pub script: Option<Box<str>>,
}

impl Value {
    /// True when no part of the value needed pickling or code shipping.
    pub fn is_native(&self) -> bool {
        match self {
            Value::Pickled(_) | Value::Function(_) | Value::Global { .. } => false,
            Value::Tuple(items)
            | Value::List(items)
            | Value::Dict(items)
            | Value::Set(items)
            | Value::FrozenSet(items) => items.iter().all(Value::is_native),
            _ => true,
        }
    }

    /// Approximate number of heap bytes the value holds; used to report sizes.
    pub fn heap_size(&self) -> usize {
        let own = std::mem::size_of::<Value>();
        match self {
            Value::BigInt(s) | Value::Str(s) => own + s.len(),
            Value::StrSurrogates(b) | Value::Bytes(b) | Value::Pickled(b) => own + b.len(),
            Value::Lent(loan) => own + loan.0.len(),
            Value::Ints(_, items) => own + std::mem::size_of_val(&**items),
            Value::Floats(_, items) => own + std::mem::size_of_val(&**items),
            Value::Tuple(items)
            | Value::List(items)
            | Value::Dict(items)
            | Value::Set(items)
            | Value::FrozenSet(items) => own + items.iter().map(Value::heap_size).sum::<usize>(),
            Value::Function(f) => {
                own + f.code.len()
                    + f.name.len()
                    + f.qualname.len()
                    + f.defaults.heap_size()
                    + f.kwdefaults.heap_size()
                    + f.script.as_ref().map_or(0, |s| s.len())
            }
            _ => own,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nativeness_looks_inside_containers() {
        let native = Value::Dict(vec![Value::Str("a".into()), Value::List(vec![Value::Int(1)])]);
        assert!(native.is_native());
        let mixed = Value::Tuple(vec![Value::Int(1), Value::Pickled(Box::new([1, 2]))]);
        assert!(!mixed.is_native());
        let nested = Value::Dict(vec![Value::Int(1), Value::Set(vec![Value::Pickled(Box::new([]))])]);
        assert!(!nested.is_native());
    }

    #[test]
    fn heap_size_counts_payloads() {
        let small = Value::Bytes(Box::new([0; 10]));
        let big = Value::Bytes(vec![0; 10_000].into_boxed_slice());
        assert!(big.heap_size() >= 10_000);
        assert!(small.heap_size() < big.heap_size());
        let list = Value::List(vec![big.clone(), big]);
        assert!(list.heap_size() >= 20_000);
        assert!(Value::Ints(Seq::List, vec![0; 1000].into()).heap_size() >= 8000);
    }
}
