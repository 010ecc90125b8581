//! What may be passed where a task expects a `T`: a `T`, a `Delayed<T>`, or for `Vec<T>`
//! parameters a list of delayed results or of [`MaybeDelayed`] items mixing both.

use std::sync::Arc;

use smallvec::SmallVec;

use super::{Delayed, Node};
use crate::data::Data;
use crate::task::Arg;
use crate::value::Value;

/// One argument of a lazy call, with the delayed nodes it reads.
pub struct ArgSource {
    arg: Arg,
    nodes: SmallVec<[Arc<Node>; 1]>,
}

impl ArgSource {
    /// A literal value.
    pub fn value(v: Value) -> ArgSource {
        ArgSource {
            arg: Arg::Value(v),
            nodes: SmallVec::new(),
        }
    }

    /// The result of a delayed handle.
    pub fn delayed<T>(d: &Delayed<T>) -> ArgSource {
        ArgSource {
            arg: Arg::Key(d.key()),
            nodes: smallvec::smallvec![d.node().clone()],
        }
    }

    /// The result under `key`, held outside any graph this call is part of (a result a
    /// distributed cluster holds for a future). Only a scheduler that has the key can run it.
    pub fn external(key: crate::key::Key) -> ArgSource {
        ArgSource {
            arg: Arg::Key(key),
            nodes: SmallVec::new(),
        }
    }

    /// A list of arguments, assembled into one `Vec` parameter.
    pub fn list(items: impl IntoIterator<Item = ArgSource>) -> ArgSource {
        let mut args = Vec::new();
        let mut nodes = SmallVec::new();
        for i in items {
            args.push(i.arg);
            nodes.extend(i.nodes);
        }
        ArgSource {
            arg: Arg::List(args),
            nodes,
        }
    }

    pub(crate) fn into_parts(self) -> (Arg, SmallVec<[Arc<Node>; 1]>) {
        (self.arg, self.nodes)
    }
}

/// Converts into an argument of type `T` for a lazy call.
pub trait IntoArg<T> {
    /// The argument.
    fn into_arg(self) -> ArgSource;
}

impl<T: Data> IntoArg<T> for T {
    fn into_arg(self) -> ArgSource {
        ArgSource::value(Value::new(self))
    }
}

impl<T> IntoArg<T> for Delayed<T> {
    fn into_arg(self) -> ArgSource {
        ArgSource::delayed(&self)
    }
}

impl<T> IntoArg<T> for &Delayed<T> {
    fn into_arg(self) -> ArgSource {
        ArgSource::delayed(self)
    }
}

impl<T> IntoArg<Vec<T>> for Vec<Delayed<T>> {
    fn into_arg(self) -> ArgSource {
        ArgSource::list(self.iter().map(ArgSource::delayed))
    }
}

impl<T> IntoArg<Vec<T>> for &Vec<Delayed<T>> {
    fn into_arg(self) -> ArgSource {
        ArgSource::list(self.iter().map(ArgSource::delayed))
    }
}

impl<T> IntoArg<Vec<T>> for &[Delayed<T>] {
    fn into_arg(self) -> ArgSource {
        ArgSource::list(self.iter().map(ArgSource::delayed))
    }
}

/// A handle on a result held outside any graph, such as a distributed future: it is passed
/// to a task by key, and lists of such handles may be passed where a `Vec<T>` is expected.
pub trait ExternalResult {
    /// The result's type.
    type Output;
    /// The result's key.
    fn external_key(&self) -> crate::key::Key;
}

impl<T, F: ExternalResult<Output = T>> IntoArg<Vec<T>> for &[F] {
    fn into_arg(self) -> ArgSource {
        ArgSource::list(self.iter().map(|f| ArgSource::external(f.external_key())))
    }
}

impl<T, F: ExternalResult<Output = T>> IntoArg<Vec<T>> for &Vec<F> {
    fn into_arg(self) -> ArgSource {
        self.as_slice().into_arg()
    }
}

/// An item of a list argument that mixes plain values and delayed results.
///
/// ```
/// use oxidask_core::{delayed, MaybeDelayed};
/// let items: Vec<MaybeDelayed<i64>> = vec![1.into(), delayed(2).into()];
/// assert_eq!(items.len(), 2);
/// ```
pub enum MaybeDelayed<T> {
    /// A value known now.
    Now(T),
    /// A result computed later.
    Later(Delayed<T>),
}

impl<T: Data> From<T> for MaybeDelayed<T> {
    fn from(v: T) -> Self {
        MaybeDelayed::Now(v)
    }
}

impl<T> From<Delayed<T>> for MaybeDelayed<T> {
    fn from(d: Delayed<T>) -> Self {
        MaybeDelayed::Later(d)
    }
}

impl<T: Data> IntoArg<T> for MaybeDelayed<T> {
    fn into_arg(self) -> ArgSource {
        match self {
            MaybeDelayed::Now(v) => ArgSource::value(Value::new(v)),
            MaybeDelayed::Later(d) => ArgSource::delayed(&d),
        }
    }
}

impl<T: Data> IntoArg<Vec<T>> for Vec<MaybeDelayed<T>> {
    fn into_arg(self) -> ArgSource {
        ArgSource::list(self.into_iter().map(IntoArg::<T>::into_arg))
    }
}
