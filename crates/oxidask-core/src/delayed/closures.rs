//! Closures in the delayed API, for the local schedulers.
//!
//! A closure cannot be sent to another process, so these tasks are local: the distributed
//! client refuses them with a message saying how to register the function instead. Closure
//! results are not [`Data`](crate::Data), so their keys are unique (never shared) and their
//! size is their stack size only.

use std::sync::Arc;

use smallvec::{smallvec, SmallVec};

use super::{Delayed, Node};
use crate::data::Data;
use crate::key::Key;
use crate::op::{Args, Input, TaskFailure};
use crate::task::{Arg, LocalOp, Task};
use crate::tokenize::Token;
use crate::value::Value;

/// Converts into a delayed input of a closure: a `Delayed<T>` or a plain [`Data`] value.
pub trait IntoDelayed<T> {
    /// The delayed handle.
    fn into_delayed(self) -> Delayed<T>;
}

impl<T: Data> IntoDelayed<T> for T {
    fn into_delayed(self) -> Delayed<T> {
        Delayed::value(self)
    }
}

impl<T> IntoDelayed<T> for Delayed<T> {
    fn into_delayed(self) -> Delayed<T> {
        self
    }
}

impl<T> IntoDelayed<T> for &Delayed<T> {
    fn into_delayed(self) -> Delayed<T> {
        self.clone()
    }
}

fn local_call<U>(
    name: &'static str,
    inputs: SmallVec<[Arc<Node>; 2]>,
    f: impl Fn(&mut Args) -> Result<Value, TaskFailure> + Send + Sync + 'static,
) -> Delayed<U> {
    let args: Vec<Arg> = inputs.iter().map(|n| Arg::Key(n.key)).collect();
    let task = Task::local(LocalOp::new(name, f), args);
    Delayed::from_node(Key::new(name, Token::unique()), task, inputs)
}

impl<T: Send + Sync + 'static> Delayed<T> {
    /// Applies a closure to the result, lazily.
    pub fn map<U, F>(&self, f: F) -> Delayed<U>
    where
        U: Send + Sync + 'static,
        F: Fn(&T) -> U + Send + Sync + 'static,
    {
        local_call("map", smallvec![self.node().clone()], move |args| {
            Ok(Value::opaque(f(args.get::<T>(0, "x")?)))
        })
    }

    /// Applies a fallible closure to the result, lazily; an `Err` fails the task.
    pub fn try_map<U, E, F>(&self, f: F) -> Delayed<U>
    where
        U: Send + Sync + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
        F: Fn(&T) -> Result<U, E> + Send + Sync + 'static,
    {
        local_call("map", smallvec![self.node().clone()], move |args| {
            f(args.get::<T>(0, "x")?)
                .map(Value::opaque)
                .map_err(TaskFailure::from_error)
        })
    }
}

/// A closure with no inputs, run lazily (`delayed(f)()` in Dask).
pub fn lazy<U, F>(f: F) -> Delayed<U>
where
    U: Send + Sync + 'static,
    F: Fn() -> U + Send + Sync + 'static,
{
    local_call("lazy", SmallVec::new(), move |_| Ok(Value::opaque(f())))
}

/// A closure of two delayed inputs.
pub fn map2<A, B, U, F>(a: impl IntoDelayed<A>, b: impl IntoDelayed<B>, f: F) -> Delayed<U>
where
    A: Send + Sync + 'static,
    B: Send + Sync + 'static,
    U: Send + Sync + 'static,
    F: Fn(&A, &B) -> U + Send + Sync + 'static,
{
    let (a, b) = (a.into_delayed(), b.into_delayed());
    local_call(
        "map2",
        smallvec![a.node().clone(), b.node().clone()],
        move |args| {
            Ok(Value::opaque(f(
                args.get::<A>(0, "a")?,
                args.get::<B>(1, "b")?,
            )))
        },
    )
}

/// A closure of three delayed inputs.
pub fn map3<A, B, C, U, F>(
    a: impl IntoDelayed<A>,
    b: impl IntoDelayed<B>,
    c: impl IntoDelayed<C>,
    f: F,
) -> Delayed<U>
where
    A: Send + Sync + 'static,
    B: Send + Sync + 'static,
    C: Send + Sync + 'static,
    U: Send + Sync + 'static,
    F: Fn(&A, &B, &C) -> U + Send + Sync + 'static,
{
    let (a, b, c) = (a.into_delayed(), b.into_delayed(), c.into_delayed());
    local_call(
        "map3",
        smallvec![a.node().clone(), b.node().clone(), c.node().clone()],
        move |args| {
            Ok(Value::opaque(f(
                args.get::<A>(0, "a")?,
                args.get::<B>(1, "b")?,
                args.get::<C>(2, "c")?,
            )))
        },
    )
}

/// Gathers many delayed results into one delayed `Vec`, in order.
pub fn collect<T>(items: impl IntoIterator<Item = Delayed<T>>) -> Delayed<Vec<T>>
where
    T: Clone + Send + Sync + 'static,
{
    let nodes: Vec<Arc<Node>> = items.into_iter().map(|d| d.node().clone()).collect();
    let list = Arg::List(nodes.iter().map(|n| Arg::Key(n.key)).collect());
    let op = LocalOp::new("collect", |args: &mut Args| {
        let Some(Input::List(items)) = args.take_input(0) else {
            return Err(TaskFailure::argument("collect expects one list argument"));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Input::Value(v) => out.push(v.take::<T>()?),
                Input::List(_) => return Err(TaskFailure::argument("nested list in collect")),
            }
        }
        Ok(Value::opaque(out))
    });
    let task = Task::local(op, [list]);
    Delayed::from_node(
        Key::new("collect", Token::unique()),
        task,
        nodes.into_iter().collect(),
    )
}
