//! Task specifications: what to run to produce one key.
//!
//! A [`Task`] is cheap to clone (an `Arc`) and immutable. It is one of:
//! - a call of an operation with arguments, each a key of another task, a literal [`Value`],
//!   or a list of those ([`TaskSpec::Call`]);
//! - a value held in the graph itself, e.g. data scattered or persisted ([`TaskSpec::Value`]);
//! - an alias of another key ([`TaskSpec::Alias`]);
//! - several steps fused into one task, run back to back without storing the intermediates
//!   ([`TaskSpec::Fused`]).

use std::fmt;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::key::Key;
use crate::op::{Args, OpDef, TaskFailure};
use crate::tokenize::Tokenizer;
use crate::value::Value;

/// One argument of a call.
#[derive(Clone, Debug)]
pub enum Arg {
    /// The result of another task.
    Key(Key),
    /// A literal value.
    Value(Value),
    /// A list of arguments, assembled into one `Vec` parameter.
    List(Vec<Arg>),
}

impl Arg {
    /// Calls `f` on every key the argument refers to (with repeats).
    pub fn for_each_key(&self, f: &mut impl FnMut(&Key)) {
        match self {
            Arg::Key(k) => f(k),
            Arg::Value(_) => {}
            Arg::List(items) => items.iter().for_each(|a| a.for_each_key(f)),
        }
    }

    /// Adds the argument to a tokenizer: keys by identity, values by content.
    pub fn tokenize_into(&self, t: &mut Tokenizer) {
        match self {
            Arg::Key(k) => {
                t.write_bytes(b"k");
                t.write_str(k.prefix_str());
                t.write_token(k.token());
                t.write_u64(k.index().len() as u64);
                for &i in k.index() {
                    t.write_u64(i as u64);
                }
            }
            Arg::Value(v) => {
                t.write_bytes(b"v");
                if !v.tokenize_into(t) {
                    t.write_token(crate::Token::unique());
                }
            }
            Arg::List(items) => {
                t.write_bytes(b"l");
                t.write_u64(items.len() as u64);
                for a in items {
                    a.tokenize_into(t);
                }
            }
        }
    }
}

/// The shape of a local closure once wrapped to take [`Args`].
pub type LocalFn = dyn Fn(&mut Args) -> Result<Value, TaskFailure> + Send + Sync;

/// A function that runs only in this process: a closure given to the delayed API.
///
/// One pointer wide, so a call task stays small whichever kind of operation it runs.
#[derive(Clone)]
pub struct LocalOp(Arc<LocalOpInner>);

struct LocalOpInner {
    name: &'static str,
    f: Box<LocalFn>,
}

impl LocalOp {
    /// Wraps a closure; `name` becomes the key prefix (`map`, `lambda`, …).
    pub fn new(
        name: &'static str,
        f: impl Fn(&mut Args) -> Result<Value, TaskFailure> + Send + Sync + 'static,
    ) -> LocalOp {
        LocalOp(Arc::new(LocalOpInner {
            name,
            f: Box::new(f),
        }))
    }

    /// The name shown in graphs.
    pub fn name(&self) -> &'static str {
        self.0.name
    }

    /// Runs the closure.
    pub fn call(&self, args: &mut Args) -> Result<Value, TaskFailure> {
        (self.0.f)(args)
    }
}

/// What a call runs.
#[derive(Clone)]
pub enum Op {
    /// A registered operation: runs anywhere the binary has it.
    Registered(&'static OpDef),
    /// A closure: runs only on the local schedulers.
    Local(LocalOp),
}

impl Op {
    /// The name shown in graphs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Registered(d) => d.short_name(),
            Op::Local(l) => l.name(),
        }
    }

    /// The full registered name, or the closure's label.
    pub fn full_name(&self) -> &'static str {
        match self {
            Op::Registered(d) => d.name(),
            Op::Local(l) => l.name(),
        }
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Registered(d) => write!(f, "{}", d.name()),
            Op::Local(l) => write!(f, "<closure {}>", l.name()),
        }
    }
}

/// The arguments of a call. One fits without a separate allocation: most tasks of big
/// graphs take one (a chunk, a list of chunks), and a task's size is memory touched per task.
pub type ArgList = SmallVec<[Arg; 1]>;

/// What a task does.
#[derive(Clone, Debug)]
pub enum TaskSpec {
    /// Call an operation.
    Call {
        /// The operation.
        op: Op,
        /// Its arguments, in parameter order.
        args: ArgList,
    },
    /// A value held in the graph.
    Value(Value),
    /// The result of another key, under this one.
    Alias(Key),
    /// Steps run back to back in one task; each step may use the keys of earlier steps, and
    /// the task's result is the last step's.
    Fused {
        /// The steps, in execution order.
        steps: Vec<(Key, TaskSpec)>,
    },
}

impl TaskSpec {
    /// Calls `f` on each key this spec needs from outside itself, with repeats.
    pub fn for_each_dependency(&self, f: &mut impl FnMut(&Key)) {
        self.visit_dependencies(f)
    }

    fn visit_dependencies(&self, f: &mut dyn FnMut(&Key)) {
        match self {
            TaskSpec::Call { args, .. } => args.iter().for_each(|a| a.for_each_key(&mut &mut *f)),
            TaskSpec::Value(_) => {}
            TaskSpec::Alias(k) => f(k),
            TaskSpec::Fused { steps } => {
                for (i, (_, spec)) in steps.iter().enumerate() {
                    spec.visit_dependencies(&mut |k| {
                        if !steps[..i].iter().any(|(sk, _)| sk == k) {
                            f(k)
                        }
                    });
                }
            }
        }
    }
}

/// A task: an immutable, shared [`TaskSpec`].
#[derive(Clone)]
pub struct Task(Arc<TaskSpec>);

impl Task {
    /// A call of a registered operation.
    pub fn call(op: &'static OpDef, args: impl IntoIterator<Item = Arg>) -> Task {
        Task(Arc::new(TaskSpec::Call {
            op: Op::Registered(op),
            args: args.into_iter().collect(),
        }))
    }

    /// A call of a local closure.
    pub fn local(op: LocalOp, args: impl IntoIterator<Item = Arg>) -> Task {
        Task(Arc::new(TaskSpec::Call {
            op: Op::Local(op),
            args: args.into_iter().collect(),
        }))
    }

    /// A value held in the graph.
    pub fn value(v: Value) -> Task {
        Task(Arc::new(TaskSpec::Value(v)))
    }

    /// An alias of another key.
    pub fn alias(k: Key) -> Task {
        Task(Arc::new(TaskSpec::Alias(k)))
    }

    /// A task from a spec.
    pub fn from_spec(spec: TaskSpec) -> Task {
        Task(Arc::new(spec))
    }

    /// The spec.
    pub fn spec(&self) -> &TaskSpec {
        &self.0
    }

    /// Calls `f` on each key this task needs, with repeats (`add(x, x)` gives `x` twice).
    pub fn for_each_dependency(&self, mut f: impl FnMut(&Key)) {
        self.0.for_each_dependency(&mut f)
    }

    /// The distinct keys this task needs, in argument order (linear time however many).
    pub fn dependencies(&self) -> SmallVec<[Key; 4]> {
        let mut out: SmallVec<[Key; 4]> = SmallVec::new();
        let mut seen: Option<rustc_hash::FxHashSet<Key>> = None;
        self.for_each_dependency(|k| match &mut seen {
            Some(set) => {
                if set.insert(*k) {
                    out.push(*k)
                }
            }
            None => {
                if !out.contains(k) {
                    out.push(*k);
                    if out.len() > 16 {
                        seen = Some(out.iter().copied().collect());
                    }
                }
            }
        });
        out
    }

    /// The label for pictures and errors: the operation name, `value` or `alias`.
    pub fn label(&self) -> &'static str {
        match &*self.0 {
            TaskSpec::Call { op, .. } => op.name(),
            TaskSpec::Value(_) => "value",
            TaskSpec::Alias(_) => "alias",
            TaskSpec::Fused { steps } => match steps.last() {
                Some((_, TaskSpec::Call { op, .. })) => op.name(),
                _ => "fused",
            },
        }
    }

    /// True if this task can run outside this process (no closures, no opaque values).
    pub fn is_portable(&self) -> bool {
        fn portable(spec: &TaskSpec) -> bool {
            fn arg_ok(a: &Arg) -> bool {
                match a {
                    Arg::Key(_) => true,
                    Arg::Value(v) => v.is_encodable(),
                    Arg::List(items) => items.iter().all(arg_ok),
                }
            }
            match spec {
                TaskSpec::Call { op, args } => {
                    matches!(op, Op::Registered(_)) && args.iter().all(arg_ok)
                }
                TaskSpec::Value(v) => v.is_encodable(),
                TaskSpec::Alias(_) => true,
                TaskSpec::Fused { steps } => steps.iter().all(|(_, s)| portable(s)),
            }
        }
        portable(&self.0)
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}
