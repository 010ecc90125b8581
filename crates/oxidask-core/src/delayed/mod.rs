//! The typed delayed API: lazy calls that build a graph.
//!
//! A [`Delayed<T>`] is a handle on a task whose result will be a `T`. Calling a
//! `#[oxidask::task]` function with values and other delayed results returns one, costing a
//! few hundred nanoseconds and no work; [`Collection::compute`](crate::Collection::compute)
//! runs the graph behind it on the current scheduler.
//!
//! Handles form a shared DAG of nodes (each node holds its task and its inputs' nodes), so
//! building is O(1) per call however large the graph grows; the flat [`Graph`] is assembled
//! only when computing.
//!
//! # Invariants
//! - Registered calls of pure operations get content-derived keys: the same call on the same
//!   inputs is one task, computed once.
//! - Closures and impure operations get unique keys.
//! - Dropping a long chain of handles does not recurse (no stack overflow at 10⁶ links).

mod args;
mod closures;

use std::marker::PhantomData;
use std::sync::Arc;

use smallvec::SmallVec;

pub use args::{ArgSource, ExternalResult, IntoArg, MaybeDelayed};
pub use closures::{collect, lazy, map2, map3, IntoDelayed};

use crate::compute::Collection;
use crate::data::Data;
use crate::error::Error;
use crate::graph::Graph;
use crate::key::Key;
use crate::op::OpDef;
use crate::task::{Task, TaskSpec};
use crate::tokenize::{Token, Tokenizer};
use crate::value::Value;

/// A node of the delayed DAG.
pub(crate) struct Node {
    key: Key,
    task: Task,
    inputs: SmallVec<[Arc<Node>; 2]>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let mut stack: Vec<Arc<Node>> = std::mem::take(&mut self.inputs).into_vec();
        while let Some(n) = stack.pop() {
            if let Some(mut inner) = Arc::into_inner(n) {
                stack.extend(std::mem::take(&mut inner.inputs));
            }
        }
    }
}

/// A lazy result of type `T`.
///
/// ```
/// use oxidask_core::{delayed, Collection, Delayed};
/// # oxidask_core::compute::with_scheduler(std::sync::Arc::new(oxidask_core::compute::Inline), || {
/// let x: Delayed<i64> = delayed(20);
/// let y = x.map(|v| v * 2 + 2);
/// assert_eq!(y.compute().unwrap(), 42);
/// # });
/// ```
pub struct Delayed<T> {
    node: Arc<Node>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Delayed<T> {
    fn clone(&self) -> Self {
        Delayed {
            node: self.node.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Delayed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Delayed<{}>({})",
            std::any::type_name::<T>(),
            self.node.key
        )
    }
}

impl<T> Delayed<T> {
    fn from_node(key: Key, task: Task, inputs: SmallVec<[Arc<Node>; 2]>) -> Delayed<T> {
        Delayed {
            node: Arc::new(Node { key, task, inputs }),
            _type: PhantomData,
        }
    }

    /// The key of the result.
    pub fn key(&self) -> Key {
        self.node.key
    }

    /// The task that produces the result.
    pub fn task(&self) -> &Task {
        &self.node.task
    }

    /// Calls a registered operation lazily. `#[oxidask::task]` functions call this; the
    /// argument order and types must match the operation's parameters.
    pub fn from_call(op: &'static OpDef, args: impl IntoIterator<Item = ArgSource>) -> Delayed<T> {
        let mut arg_list = SmallVec::new();
        let mut inputs = SmallVec::new();
        for a in args {
            let (arg, nodes) = a.into_parts();
            arg_list.push(arg);
            inputs.extend(nodes);
        }
        let token = if op.is_pure() {
            let mut t = Tokenizer::new();
            t.write_str(op.name());
            t.write_str(op.signature());
            for a in &arg_list {
                crate::task::Arg::tokenize_into(a, &mut t);
            }
            t.finish()
        } else {
            Token::unique()
        };
        let key = Key::from_parts(op.prefix(), token, &[]);
        let task = Task::from_spec(TaskSpec::Call {
            op: crate::task::Op::Registered(op),
            args: arg_list,
        });
        Delayed::from_node(key, task, inputs)
    }

    /// A delayed result from a task built by hand, with the handles it reads.
    ///
    /// Every key `task` refers to must be the key of one of `inputs`.
    pub fn from_task(
        key: Key,
        task: Task,
        inputs: impl IntoIterator<Item = Delayed<()>>,
    ) -> Delayed<T> {
        let nodes = inputs.into_iter().map(|d| d.node).collect();
        Delayed::from_node(key, task, nodes)
    }

    /// Forgets the result type (to pass the handle to [`Delayed::from_task`]).
    pub fn erase(&self) -> Delayed<()> {
        Delayed {
            node: self.node.clone(),
            _type: PhantomData,
        }
    }

    pub(crate) fn node(&self) -> &Arc<Node> {
        &self.node
    }
}

impl<T: Data> Delayed<T> {
    /// A delayed value, keyed by its content (Dask's `delayed(value)`).
    pub fn value(value: T) -> Delayed<T> {
        let mut t = Tokenizer::new();
        t.write_data(&value);
        let key = Key::new(short_type_name::<T>(), t.finish());
        Delayed::from_node(key, Task::value(Value::new(value)), SmallVec::new())
    }
}

impl<T: Send + Sync + 'static> Delayed<T> {
    /// A delayed value of any type, for local use only (it has no codec), under a unique key.
    pub fn opaque(value: T) -> Delayed<T> {
        let key = Key::new(short_type_name::<T>(), Token::unique());
        Delayed::from_node(key, Task::value(Value::opaque(value)), SmallVec::new())
    }
}

/// A delayed value, keyed by its content: `delayed(5)` (Dask's `delayed(value)`).
pub fn delayed<T: Data>(value: T) -> Delayed<T> {
    Delayed::value(value)
}

/// `Vec<f64>` → `Vec`, `alloc::string::String` → `String`: a readable key prefix.
fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

/// Adds the tasks of `roots` and everything they read to `graph`, without recursion.
pub(crate) fn add_nodes<'a>(graph: &mut Graph, roots: impl IntoIterator<Item = &'a Arc<Node>>) {
    let mut stack: Vec<&Node> = roots.into_iter().map(|n| &**n).collect();
    while let Some(n) = stack.pop() {
        if !graph.insert(n.key, n.task.clone()) {
            continue; // already added, with everything below it
        }
        stack.extend(n.inputs.iter().map(|i| &**i));
    }
}

impl<T: Clone + Send + Sync + 'static> Collection for Delayed<T> {
    type Output = T;
    type Persisted = Delayed<T>;

    fn keys(&self) -> Vec<Key> {
        vec![self.node.key]
    }

    fn build_graph(&self, graph: &mut Graph) {
        add_nodes(graph, [&self.node]);
    }

    fn finalize(&self, values: Vec<Value>) -> Result<T, Error> {
        let v = values.into_iter().next().ok_or(Error::OutputType {
            key: self.node.key,
            expected: std::any::type_name::<T>(),
            found: "nothing",
        })?;
        if v.downcast_ref::<T>().is_none() {
            return Err(Error::OutputType {
                key: self.node.key,
                expected: std::any::type_name::<T>(),
                found: v.type_name(),
            });
        }
        Ok(v.take::<T>().expect("type checked above"))
    }

    fn rebuild(&self, values: Vec<Value>) -> Delayed<T> {
        match values.into_iter().next() {
            Some(v) => Delayed::from_node(self.node.key, Task::value(v), SmallVec::new()),
            None => self.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
