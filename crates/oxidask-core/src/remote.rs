//! Results held by a scheduler elsewhere: what a collection persisted on a cluster is made of.
//!
//! [`Collection::persist`](crate::Collection::persist) asks the scheduler for one value per
//! piece ([`Compute::persist`](crate::Compute::persist)) and rebuilds the collection around
//! them. The local schedulers hand back the computed values themselves; a distributed client
//! hands back [`RemoteValue`]s: a key it keeps alive on its cluster, wrapped as an ordinary
//! [`Value`] so every collection's `rebuild` stores it where it would store a computed piece
//! (as a task's value, or as a literal argument) without knowing the difference.
//!
//! A scheduler meeting a remote value in a graph either reaches the result where it is (the
//! client of that cluster turns it into a reference to the key, so nothing is re-sent or
//! recomputed) or fetches it ([`Compute::resolve_remote`](crate::Compute::resolve_remote),
//! [`fetch_remote`]). The remote value owns whatever keeps the result alive (a future), so
//! dropping the last collection that references it releases the result.
//!
//! ```
//! use oxidask_core::remote::{Remote, RemoteValue};
//! use oxidask_core::{Error, Graph, Key, Task, Token, Value};
//!
//! struct Held(Key);
//! impl Remote for Held {
//!     fn key(&self) -> Key { self.0 }
//!     fn holder(&self) -> &str { "elsewhere" }
//!     fn fetch(&self) -> Result<Value, Error> { Ok(Value::new(41i64)) }
//!     fn as_any(&self) -> &dyn std::any::Any { self }
//! }
//!
//! let k = Key::new("x", Token::from_u128(1));
//! let mut g = Graph::new();
//! g.insert(k, Task::value(RemoteValue::new(Held(k)).into_value()));
//! assert_eq!(oxidask_core::remote::remote_values(&g).len(), 1);
//! let local = oxidask_core::remote::fetch_remote(g).unwrap();
//! let v = oxidask_core::reference::evaluate(&local, &[k]).unwrap();
//! assert_eq!(v[0].downcast_ref::<i64>(), Some(&41));
//! ```

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::error::Error;
use crate::graph::Graph;
use crate::key::Key;
use crate::task::{Arg, Task, TaskSpec};
use crate::value::Value;

/// A result held by a scheduler elsewhere, kept alive while this handle lives.
pub trait Remote: Any + Send + Sync {
    /// The key the result is held under.
    fn key(&self) -> Key;

    /// Who holds it (a distributed client's scheduler address): a scheduler reaches the
    /// result in place only if it is the same holder.
    fn holder(&self) -> &str;

    /// Fetches the value (for a scheduler that cannot reach it in place).
    fn fetch(&self) -> Result<Value, Error>;

    /// The handle as `Any`, for its owner to downcast (e.g. to the future inside).
    fn as_any(&self) -> &dyn Any;
}

/// A [`Remote`] result as a graph value: cheap to clone, stored in a [`Value`] (local to the
/// process, never encoded).
#[derive(Clone)]
pub struct RemoteValue(Arc<dyn Remote>);

impl RemoteValue {
    /// Wraps a handle.
    pub fn new(r: impl Remote) -> RemoteValue {
        RemoteValue(Arc::new(r))
    }

    /// The value to hand to [`Collection::rebuild`](crate::Collection::rebuild).
    pub fn into_value(self) -> Value {
        Value::opaque(self)
    }

    /// The remote handle inside `v`, if it is one.
    pub fn of(v: &Value) -> Option<&RemoteValue> {
        v.downcast_ref::<RemoteValue>()
    }

    /// The handle.
    pub fn remote(&self) -> &dyn Remote {
        &*self.0
    }

    /// The key the result is held under.
    pub fn key(&self) -> Key {
        self.0.key()
    }

    /// Who holds it.
    pub fn holder(&self) -> &str {
        self.0.holder()
    }

    /// Fetches the value.
    pub fn fetch(&self) -> Result<Value, Error> {
        self.0.fetch()
    }
}

impl fmt::Debug for RemoteValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteValue({} on {})", self.key(), self.holder())
    }
}

/// What a remote value becomes in a graph a scheduler runs.
#[derive(Clone, Debug)]
pub enum Resolved {
    /// A reference to the key, which the scheduler holds (the value is neither fetched nor
    /// sent). A task whose value was the remote result under this same key is left as is,
    /// for the scheduler to skip.
    Key(Key),
    /// The value itself.
    Value(Value),
}

/// Every remote value in `graph` (task values and literal arguments), in graph order, with
/// repeats.
pub fn remote_values(graph: &Graph) -> Vec<RemoteValue> {
    fn arg(a: &Arg, out: &mut Vec<RemoteValue>) {
        match a {
            Arg::Key(_) => {}
            Arg::Value(v) => out.extend(RemoteValue::of(v).cloned()),
            Arg::List(items) => items.iter().for_each(|i| arg(i, out)),
        }
    }
    fn spec(s: &TaskSpec, out: &mut Vec<RemoteValue>) {
        match s {
            TaskSpec::Call { args, .. } => args.iter().for_each(|a| arg(a, out)),
            TaskSpec::Value(v) => out.extend(RemoteValue::of(v).cloned()),
            TaskSpec::Alias(_) => {}
            TaskSpec::Fused { steps } => steps.iter().for_each(|(_, s)| spec(s, out)),
        }
    }
    let mut out = Vec::new();
    for (_, t) in graph.iter() {
        spec(t.spec(), &mut out);
    }
    out
}

/// `graph` with every remote value replaced by what `resolve` makes of it, or `None` if it
/// holds none (so the common case copies nothing).
pub fn rewrite_remote(
    graph: &Graph,
    mut resolve: impl FnMut(&RemoteValue) -> Result<Resolved, Error>,
) -> Result<Option<Graph>, Error> {
    fn has_remote(s: &TaskSpec) -> bool {
        fn arg(a: &Arg) -> bool {
            match a {
                Arg::Key(_) => false,
                Arg::Value(v) => RemoteValue::of(v).is_some(),
                Arg::List(items) => items.iter().any(arg),
            }
        }
        match s {
            TaskSpec::Call { args, .. } => args.iter().any(arg),
            TaskSpec::Value(v) => RemoteValue::of(v).is_some(),
            TaskSpec::Alias(_) => false,
            TaskSpec::Fused { steps } => steps.iter().any(|(_, s)| has_remote(s)),
        }
    }
    type Resolve<'a> = dyn FnMut(&RemoteValue) -> Result<Resolved, Error> + 'a;
    fn arg(a: &Arg, f: &mut Resolve<'_>) -> Result<Arg, Error> {
        Ok(match a {
            Arg::Key(_) => a.clone(),
            Arg::Value(v) => match RemoteValue::of(v) {
                Some(r) => match f(r)? {
                    Resolved::Key(k) => Arg::Key(k),
                    Resolved::Value(v) => Arg::Value(v),
                },
                None => a.clone(),
            },
            Arg::List(items) => {
                Arg::List(items.iter().map(|i| arg(i, f)).collect::<Result<_, _>>()?)
            }
        })
    }
    fn spec(key: &Key, s: &TaskSpec, f: &mut Resolve<'_>) -> Result<TaskSpec, Error> {
        Ok(match s {
            TaskSpec::Call { op, args } => TaskSpec::Call {
                op: op.clone(),
                args: args.iter().map(|a| arg(a, f)).collect::<Result<_, _>>()?,
            },
            TaskSpec::Value(v) => match RemoteValue::of(v) {
                Some(r) => match f(r)? {
                    Resolved::Key(k) if k == *key => s.clone(),
                    Resolved::Key(k) => TaskSpec::Alias(k),
                    Resolved::Value(v) => TaskSpec::Value(v),
                },
                None => s.clone(),
            },
            TaskSpec::Alias(_) => s.clone(),
            TaskSpec::Fused { steps } => TaskSpec::Fused {
                steps: steps
                    .iter()
                    .map(|(k, s)| Ok((*k, spec(k, s, f)?)))
                    .collect::<Result<_, Error>>()?,
            },
        })
    }
    if !graph.iter().any(|(_, t)| has_remote(t.spec())) {
        return Ok(None);
    }
    let mut out = Graph::with_capacity(graph.len());
    for (k, t) in graph.iter() {
        let task = if has_remote(t.spec()) {
            Task::from_spec(spec(k, t.spec(), &mut resolve)?)
        } else {
            t.clone()
        };
        out.insert(*k, task);
    }
    Ok(Some(out))
}

/// `graph` with every remote value fetched: what a scheduler that cannot reach the holder
/// runs (the default [`Compute::resolve_remote`](crate::Compute::resolve_remote)).
pub fn fetch_remote(graph: Graph) -> Result<Graph, Error> {
    Ok(rewrite_remote(&graph, |r| Ok(Resolved::Value(r.fetch()?)))?.unwrap_or(graph))
}

/// True if `task` is the remote result held under its own `key` by `holder`: a scheduler
/// that is that holder already has it and sends nothing for it.
pub fn is_held_in_place(key: &Key, task: &Task, holder: &str) -> bool {
    match task.spec() {
        TaskSpec::Value(v) => {
            RemoteValue::of(v).is_some_and(|r| r.key() == *key && r.holder() == holder)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::LocalOp;
    use crate::tokenize::Token;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Held(Key, Arc<AtomicUsize>);
    impl Remote for Held {
        fn key(&self) -> Key {
            self.0
        }
        fn holder(&self) -> &str {
            "cluster-a"
        }
        fn fetch(&self) -> Result<Value, Error> {
            self.1.fetch_add(1, Ordering::SeqCst);
            Ok(Value::new(20i64))
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    fn graph(fetches: &Arc<AtomicUsize>) -> (Graph, Key, Key, Key) {
        let p = Key::new("persisted", Token::from_u128(1));
        let q = Key::new("other", Token::from_u128(2));
        let out = Key::new("add", Token::from_u128(3));
        let mut g = Graph::new();
        g.insert(
            p,
            Task::value(RemoteValue::new(Held(p, fetches.clone())).into_value()),
        );
        let add = LocalOp::new("add", |a| {
            let x: i64 = a.take(0, "x")?;
            let y: i64 = a.take(1, "y")?;
            Ok(Value::new(x + y))
        });
        let lit = RemoteValue::new(Held(q, fetches.clone())).into_value();
        g.insert(out, Task::local(add, [Arg::Key(p), Arg::Value(lit)]));
        (g, p, q, out)
    }

    #[test]
    fn fetching_replaces_task_values_and_arguments() {
        let fetches = Arc::new(AtomicUsize::new(0));
        let (g, _, _, out) = graph(&fetches);
        assert_eq!(remote_values(&g).len(), 2);
        let local = fetch_remote(g).unwrap();
        assert!(remote_values(&local).is_empty());
        let v = crate::reference::evaluate(&local, &[out]).unwrap();
        assert_eq!(v[0].downcast_ref::<i64>(), Some(&40));
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn keys_in_place_keep_own_task_and_reference_the_rest() {
        let fetches = Arc::new(AtomicUsize::new(0));
        let (g, p, q, out) = graph(&fetches);
        assert!(is_held_in_place(&p, g.get(&p).unwrap(), "cluster-a"));
        assert!(!is_held_in_place(&p, g.get(&p).unwrap(), "cluster-b"));
        let r = rewrite_remote(&g, |r| Ok(Resolved::Key(r.key())))
            .unwrap()
            .unwrap();
        assert!(is_held_in_place(&p, r.get(&p).unwrap(), "cluster-a"));
        assert_eq!(r.get(&out).unwrap().dependencies().as_slice(), &[p, q]);
        assert_eq!(fetches.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_graph_without_remote_values_is_not_copied() {
        let mut g = Graph::new();
        g.insert(
            Key::new("x", Token::from_u128(9)),
            Task::value(Value::new(1i64)),
        );
        assert!(rewrite_remote(&g, |_| unreachable!()).unwrap().is_none());
    }
}
