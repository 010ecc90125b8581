//! Operations: what a task runs, and the link-time registry that names them.
//!
//! Rust cannot send a closure to another process, so a task that may run remotely names a
//! registered operation: an [`OpDef`] with a stable name (`my_crate::module::inc`), the text of
//! its signature, and a function that takes its arguments from [`Args`]. `#[oxidask::task]`
//! writes the `OpDef` and registers it with `inventory`; [`lookup`] finds it by name in any
//! process built from the same source, and [`registry_fingerprint`] lets two processes check
//! that they agree on every operation before they exchange work.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use smallvec::SmallVec;

use crate::data::Data;
use crate::key::Prefix;
use crate::tokenize::{Token, Tokenizer};
use crate::value::Value;

/// What went wrong inside one task, before the scheduler adds the task's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    kind: FailureKind,
    message: String,
    causes: Vec<String>,
    /// The failure as the runtime that raised it describes itself (a pickled Python
    /// exception with its traceback), carried unchanged so the caller can re-raise it.
    detail: Option<bytes::Bytes>,
}

/// How a task failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The operation returned an error.
    Error,
    /// The operation panicked; the panic was caught.
    Panic,
    /// An argument had the wrong type or shape (a bug in how the graph was built).
    Argument,
    /// The operation cannot run here (a closure on a remote worker, an unknown operation).
    Unavailable,
}

impl TaskFailure {
    /// A failure from an error value, keeping its `source()` chain as causes.
    pub fn from_error<E: Into<Box<dyn std::error::Error + Send + Sync>>>(error: E) -> TaskFailure {
        let boxed: Box<dyn std::error::Error + Send + Sync> = error.into();
        let mut causes = Vec::new();
        let mut source = boxed.source();
        while let Some(s) = source {
            causes.push(s.to_string());
            source = s.source();
        }
        TaskFailure {
            kind: FailureKind::Error,
            message: boxed.to_string(),
            causes,
            detail: None,
        }
    }

    /// A failure with a plain message.
    pub fn msg(message: impl Into<String>) -> TaskFailure {
        TaskFailure {
            kind: FailureKind::Error,
            message: message.into(),
            causes: Vec::new(),
            detail: None,
        }
    }

    /// A caught panic.
    pub fn panic(payload: Box<dyn Any + Send>) -> TaskFailure {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-string payload".to_owned()
        };
        TaskFailure {
            kind: FailureKind::Panic,
            message,
            causes: Vec::new(),
            detail: None,
        }
    }

    /// A bad argument.
    pub fn argument(message: impl Into<String>) -> TaskFailure {
        TaskFailure {
            kind: FailureKind::Argument,
            message: message.into(),
            causes: Vec::new(),
            detail: None,
        }
    }

    /// An argument of the wrong type.
    pub fn type_mismatch(expected: &str, found: &str) -> TaskFailure {
        TaskFailure::argument(format!(
            "expected a value of type `{expected}`, got `{found}`"
        ))
    }

    /// The operation cannot run in this process.
    pub fn unavailable(message: impl Into<String>) -> TaskFailure {
        TaskFailure {
            kind: FailureKind::Unavailable,
            message: message.into(),
            causes: Vec::new(),
            detail: None,
        }
    }

    /// Rebuilds a failure from its parts (used when a failure crosses a process boundary).
    pub fn from_parts(kind: FailureKind, message: String, causes: Vec<String>) -> TaskFailure {
        TaskFailure {
            kind,
            message,
            causes,
            detail: None,
        }
    }

    /// Attaches the runtime's own description of the failure (see [`TaskFailure::detail`]).
    pub fn with_detail(mut self, detail: bytes::Bytes) -> TaskFailure {
        self.detail = Some(detail);
        self
    }

    /// The runtime's own description of the failure, if one was attached: for a Python
    /// task, the pickled exception and its traceback, which the client re-raises.
    pub fn detail(&self) -> Option<&bytes::Bytes> {
        self.detail.as_ref()
    }

    /// Adds which argument was at fault.
    pub fn in_argument(mut self, index: usize, name: &str) -> TaskFailure {
        self.message = format!("argument {index} (`{name}`): {}", self.message);
        self
    }

    /// How the task failed.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The top-level message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The cause chain, outermost first.
    pub fn causes(&self) -> &[String] {
        &self.causes
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FailureKind::Panic => write!(f, "panicked: {}", self.message)?,
            _ => write!(f, "{}", self.message)?,
        }
        for c in &self.causes {
            write!(f, "\n  caused by: {c}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TaskFailure {}

/// One argument as a task receives it: a value, or a list whose items were separate values.
#[derive(Debug, Clone)]
pub enum Input {
    /// A value (a literal or another task's result).
    Value(Value),
    /// A list argument assembled from several values.
    List(Vec<Input>),
}

/// The arguments of one call, taken by the operation's generated wrapper.
///
/// Owned parameters are *taken* (moved out if this task holds the last reference, cloned
/// otherwise); borrowed parameters are *prepared* (lists turned into one value) and then
/// borrowed for the duration of the call.
#[derive(Debug, Default)]
pub struct Args {
    items: SmallVec<[Option<Input>; 3]>,
}

impl Args {
    /// Arguments from their inputs, in parameter order.
    pub fn new(items: impl IntoIterator<Item = Input>) -> Args {
        Args {
            items: items.into_iter().map(Some).collect(),
        }
    }

    /// Arguments built one at a time.
    pub fn with_capacity(n: usize) -> Args {
        Args {
            items: SmallVec::with_capacity(n),
        }
    }

    /// Appends the next argument.
    pub fn push(&mut self, input: Input) {
        self.items.push(Some(input));
    }

    /// The number of arguments.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True if there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Checks the argument count against what the operation declares.
    pub fn expect_len(&self, n: usize) -> Result<(), TaskFailure> {
        if self.items.len() == n {
            Ok(())
        } else {
            Err(TaskFailure::argument(format!(
                "expected {n} arguments, got {}",
                self.items.len()
            )))
        }
    }

    fn slot(&mut self, index: usize, name: &str) -> Result<&mut Option<Input>, TaskFailure> {
        self.items
            .get_mut(index)
            .ok_or_else(|| TaskFailure::argument("missing argument").in_argument(index, name))
    }

    /// Takes argument `index` by value.
    pub fn take<T: Data>(&mut self, index: usize, name: &str) -> Result<T, TaskFailure> {
        let item = self
            .slot(index, name)?
            .take()
            .ok_or_else(|| TaskFailure::argument("argument used twice").in_argument(index, name))?;
        match item {
            Input::Value(v) => v.take::<T>(),
            Input::List(items) => T::from_list(items),
        }
        .map_err(|e| e.in_argument(index, name))
    }

    /// Turns a list argument into one value of type `T` so it can be borrowed.
    pub fn prepare<T: Data>(&mut self, index: usize, name: &str) -> Result<(), TaskFailure> {
        let slot = self.slot(index, name)?;
        if let Some(Input::List(_)) = slot {
            let Some(Input::List(items)) = slot.take() else {
                unreachable!("checked to be a list above")
            };
            let v = T::from_list(items).map_err(|e| e.in_argument(index, name))?;
            *self.slot(index, name)? = Some(Input::Value(Value::new(v)));
        }
        Ok(())
    }

    /// Borrows argument `index` (after [`Args::prepare`] for list arguments).
    pub fn get<T: Any>(&self, index: usize, name: &str) -> Result<&T, TaskFailure> {
        match self.items.get(index) {
            Some(Some(Input::Value(v))) => v.downcast_ref::<T>().ok_or_else(|| {
                TaskFailure::type_mismatch(std::any::type_name::<T>(), v.type_name())
                    .in_argument(index, name)
            }),
            Some(Some(Input::List(_))) => Err(TaskFailure::argument(
                "a list argument must be prepared before it is borrowed",
            )
            .in_argument(index, name)),
            _ => Err(TaskFailure::argument("missing argument").in_argument(index, name)),
        }
    }

    /// Borrows every item of a list argument without copying them into a new `Vec` (a
    /// `Vec<T>` value works too). For parameters written `xs: &[&T]`.
    pub fn get_refs<T: Any>(&self, index: usize, name: &str) -> Result<Vec<&T>, TaskFailure> {
        fn item<'a, T: Any>(
            input: &'a Input,
            index: usize,
            name: &str,
        ) -> Result<&'a T, TaskFailure> {
            match input {
                Input::Value(v) => v.downcast_ref::<T>().ok_or_else(|| {
                    TaskFailure::type_mismatch(std::any::type_name::<T>(), v.type_name())
                        .in_argument(index, name)
                }),
                Input::List(_) => Err(TaskFailure::argument(
                    "a nested list where an item was expected",
                )
                .in_argument(index, name)),
            }
        }
        match self.items.get(index) {
            Some(Some(Input::List(items))) => items.iter().map(|i| item(i, index, name)).collect(),
            Some(Some(Input::Value(v))) => match v.downcast_ref::<Vec<T>>() {
                Some(vec) => Ok(vec.iter().collect()),
                None => Err(TaskFailure::type_mismatch(
                    std::any::type_name::<Vec<T>>(),
                    v.type_name(),
                )
                .in_argument(index, name)),
            },
            _ => Err(TaskFailure::argument("missing argument").in_argument(index, name)),
        }
    }

    /// Takes the raw input `index` (for operations that accept any shape).
    pub fn take_input(&mut self, index: usize) -> Option<Input> {
        self.items.get_mut(index).and_then(Option::take)
    }
}

/// The signature of a registered operation's wrapper.
pub type OpFn = fn(&mut Args) -> Result<Value, TaskFailure>;

/// A registered operation.
pub struct OpDef {
    name: &'static str,
    short_name: &'static str,
    signature: &'static str,
    params: &'static [&'static str],
    pure: bool,
    call: OpFn,
    prefix: OnceLock<Prefix>,
}

impl OpDef {
    /// Describes an operation (`#[oxidask::task]` writes these).
    ///
    /// `name` must be unique and stable (module path and function name); `signature` is the
    /// text of its parameter and return types, so a changed signature changes the registry
    /// fingerprint; `pure` operations get content-derived keys, impure ones a fresh key per call.
    pub const fn new(
        name: &'static str,
        short_name: &'static str,
        signature: &'static str,
        params: &'static [&'static str],
        pure: bool,
        call: OpFn,
    ) -> OpDef {
        OpDef {
            name,
            short_name,
            signature,
            params,
            pure,
            call,
            prefix: OnceLock::new(),
        }
    }

    /// The stable, unique name (`crate::module::function`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The function's own name, used as the prefix of its keys.
    pub fn short_name(&self) -> &'static str {
        self.short_name
    }

    /// The parameter and return types, as written.
    pub fn signature(&self) -> &'static str {
        self.signature
    }

    /// The parameter names.
    pub fn params(&self) -> &'static [&'static str] {
        self.params
    }

    /// Whether equal calls may share one result.
    pub fn is_pure(&self) -> bool {
        self.pure
    }

    /// The interned key prefix (the short name).
    pub fn prefix(&self) -> Prefix {
        *self.prefix.get_or_init(|| Prefix::intern(self.short_name))
    }

    /// Runs the operation.
    pub fn call(&self, args: &mut Args) -> Result<Value, TaskFailure> {
        (self.call)(args)
    }
}

impl fmt::Debug for OpDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpDef({} : {})", self.name, self.signature)
    }
}

/// A link-time registration of an operation; written by `#[oxidask::task]`.
pub struct OpRegistration(pub &'static OpDef);

inventory::collect!(OpRegistration);

struct Registry {
    by_name: HashMap<&'static str, &'static OpDef>,
    fingerprint: Token,
    duplicates: Vec<&'static str>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut by_name = HashMap::new();
        let mut duplicates = Vec::new();
        let mut all: Vec<&'static OpDef> = Vec::new();
        for reg in inventory::iter::<OpRegistration> {
            if by_name.insert(reg.0.name, reg.0).is_some() {
                duplicates.push(reg.0.name);
            }
            all.push(reg.0);
        }
        all.sort_by(|a, b| (a.name, a.signature).cmp(&(b.name, b.signature)));
        let mut t = Tokenizer::new();
        for op in &all {
            t.write_str(op.name);
            t.write_str(op.signature);
            t.write_u64(op.pure as u64);
        }
        Registry {
            by_name,
            fingerprint: t.finish(),
            duplicates,
        }
    })
}

/// The registered operation called `name`, if this binary has it.
pub fn lookup(name: &str) -> Option<&'static OpDef> {
    registry().by_name.get(name).copied()
}

/// Every registered operation, sorted by name.
pub fn registered_ops() -> Vec<&'static OpDef> {
    let mut v: Vec<_> = registry().by_name.values().copied().collect();
    v.sort_by_key(|op| op.name);
    v
}

/// A token over every registered operation's name and signature: two processes with equal
/// fingerprints agree on what every operation name means.
pub fn registry_fingerprint() -> Token {
    registry().fingerprint
}

/// Names registered more than once (two versions of one crate linked together).
pub fn duplicate_op_names() -> &'static [&'static str] {
    &registry().duplicates
}
