//! Running one task, given the values of its dependencies.
//!
//! Every scheduler (synchronous, threaded, a distributed worker) gathers a task's dependency
//! values into [`DepValues`] and calls [`execute`]. A value whose last use is this argument is
//! moved in, so `Arc::try_unwrap` in the operation's wrapper succeeds and no data is copied.
//! Panics are caught and reported as [`TaskError`]s.

use std::panic::{catch_unwind, AssertUnwindSafe};

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::error::TaskError;
use crate::key::Key;
use crate::op::{Args, Input, TaskFailure};
use crate::task::{Arg, Op, Task, TaskSpec};
use crate::value::Value;

/// The values of a task's dependencies, each with how many more times the task reads it.
///
/// Looked up by a scan while there are few (most tasks read one to four values) and through
/// a hash index beyond [`DepValues::SCAN`], so a task reading a million values (a reduction
/// over a whole collection) costs linear time, not quadratic.
#[derive(Default)]
pub struct DepValues {
    entries: SmallVec<[(Key, Option<Value>, u32); 4]>,
    index: Option<FxHashMap<Key, u32>>,
}

impl DepValues {
    /// No values.
    pub fn new() -> DepValues {
        DepValues::default()
    }

    /// Entries looked up by a scan; more get a hash index.
    const SCAN: usize = 16;

    /// Adds the value of dependency `key`.
    pub fn push(&mut self, key: Key, value: Value) {
        self.entries.push((key, Some(value), 0));
        self.index = None;
    }

    /// Where `key`'s entry is.
    fn position(&mut self, key: &Key) -> Option<usize> {
        if self.entries.len() <= Self::SCAN {
            return self.entries.iter().position(|e| e.0 == *key);
        }
        let entries = &self.entries;
        let index = self.index.get_or_insert_with(|| {
            let mut m = FxHashMap::with_capacity_and_hasher(entries.len(), Default::default());
            for (i, e) in entries.iter().enumerate() {
                m.entry(e.0).or_insert(i as u32);
            }
            m
        });
        index.get(key).map(|&i| i as usize)
    }

    /// The number of values held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no values are held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn count_uses(&mut self, spec: &TaskSpec) {
        let mut count = |k: &Key| {
            if let Some(i) = self.position(k) {
                self.entries[i].2 += 1;
            }
        };
        match spec {
            TaskSpec::Call { args, .. } => args.iter().for_each(|a| a.for_each_key(&mut count)),
            TaskSpec::Alias(k) => count(k),
            TaskSpec::Value(_) | TaskSpec::Fused { .. } => {}
        }
    }

    /// The value for one use of `key`: moved out on its last use, shared before that.
    fn resolve(&mut self, key: &Key) -> Result<Value, TaskFailure> {
        let i = self
            .position(key)
            .ok_or_else(|| TaskFailure::argument(format!("the value of {key} was not provided")))?;
        let e = &mut self.entries[i];
        e.2 = e.2.saturating_sub(1);
        let v = if e.2 == 0 { e.1.take() } else { e.1.clone() };
        v.ok_or_else(|| TaskFailure::argument(format!("the value of {key} was used up")))
    }

    fn input(&mut self, arg: &Arg) -> Result<Input, TaskFailure> {
        Ok(match arg {
            Arg::Key(k) => Input::Value(self.resolve(k)?),
            Arg::Value(v) => Input::Value(v.clone()),
            Arg::List(items) => Input::List(
                items
                    .iter()
                    .map(|a| self.input(a))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}

/// Runs `task` (stored under `key`) with its dependencies' values.
pub fn execute(key: &Key, task: &Task, deps: DepValues) -> Result<Value, TaskError> {
    run_spec(task.spec(), deps).map_err(|failure| TaskError {
        key: *key,
        op: task_op_name(task.spec()),
        failure: Box::new(failure),
    })
}

fn task_op_name(spec: &TaskSpec) -> String {
    match spec {
        TaskSpec::Call { op, .. } => op.full_name().to_owned(),
        TaskSpec::Value(_) => "value".to_owned(),
        TaskSpec::Alias(_) => "alias".to_owned(),
        TaskSpec::Fused { steps } => {
            let names: Vec<String> = steps.iter().map(|(_, s)| task_op_name(s)).collect();
            format!("fused: {}", names.join(" -> "))
        }
    }
}

fn run_spec(spec: &TaskSpec, mut deps: DepValues) -> Result<Value, TaskFailure> {
    match spec {
        TaskSpec::Value(v) => Ok(v.clone()),
        TaskSpec::Alias(k) => {
            deps.count_uses(spec);
            deps.resolve(k)
        }
        TaskSpec::Call { op, args } => {
            deps.count_uses(spec);
            let mut call_args = Args::with_capacity(args.len());
            for a in args {
                call_args.push(deps.input(a)?);
            }
            drop(deps);
            let mut args = call_args;
            let result = catch_unwind(AssertUnwindSafe(|| match op {
                Op::Registered(def) => def.call(&mut args),
                Op::Local(l) => l.call(&mut args),
            }));
            match result {
                Ok(r) => r,
                Err(payload) => Err(TaskFailure::panic(payload)),
            }
        }
        TaskSpec::Fused { steps } => run_fused(steps, deps),
    }
}

/// Runs fused steps back to back; a value is moved into its last user.
fn run_fused(steps: &[(Key, TaskSpec)], mut outside: DepValues) -> Result<Value, TaskFailure> {
    let mut last_use: FxHashMap<Key, usize> = FxHashMap::default();
    for (i, (_, spec)) in steps.iter().enumerate() {
        spec.for_each_dependency(&mut |k| {
            last_use.insert(*k, i);
        });
    }
    let mut produced: FxHashMap<Key, Value> = FxHashMap::default();
    let mut last = None;
    for (i, (key, spec)) in steps.iter().enumerate() {
        let mut deps = DepValues::new();
        let mut seen: SmallVec<[Key; 4]> = SmallVec::new();
        let mut missing = None;
        spec.for_each_dependency(&mut |k| {
            if seen.contains(k) {
                return;
            }
            seen.push(*k);
            let final_use = last_use.get(k) == Some(&i);
            let v = if let Some(v) = produced.get(k) {
                Some(if final_use {
                    produced.remove(k).expect("present")
                } else {
                    v.clone()
                })
            } else {
                outside.position(k).and_then(|i| {
                    let e = &mut outside.entries[i];
                    if final_use {
                        e.1.take()
                    } else {
                        e.1.clone()
                    }
                })
            };
            match v {
                Some(v) => deps.push(*k, v),
                None => missing = Some(*k),
            }
        });
        if let Some(k) = missing {
            return Err(TaskFailure::argument(format!(
                "fused step {key} needs {k}, which no earlier step produced"
            )));
        }
        let v = run_spec(spec, deps)?;
        if i + 1 == steps.len() {
            last = Some(v);
        } else if last_use.contains_key(key) {
            produced.insert(*key, v);
        }
    }
    last.ok_or_else(|| TaskFailure::argument("a fused task has no steps"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Task;
    use crate::tokenize::Token;

    #[crate::task(crate = crate)]
    fn total(xs: &[&i64]) -> i64 {
        xs.iter().copied().sum()
    }

    /// Regression: a task reading many values looked each one up by a scan of all of them
    /// (quadratic: a 100k-value reduction took minutes).
    #[test]
    fn wide_fan_in_is_linear_and_moves_each_value() {
        let n = 100_000u32;
        let keys: Vec<Key> = (0..n)
            .map(|i| Key::block("x", Token::from_u128(1), &[i]))
            .collect();
        let mut deps = DepValues::new();
        for (i, k) in keys.iter().enumerate() {
            deps.push(*k, Value::new(i as i64));
        }
        let task = Task::call(
            total::op(),
            [Arg::List(keys.iter().map(|k| Arg::Key(*k)).collect())],
        );
        let out = execute(&Key::new("total", Token::from_u128(2)), &task, deps).unwrap();
        assert_eq!(
            out.downcast_ref::<i64>(),
            Some(&((n as i64 - 1) * n as i64 / 2))
        );
    }

    #[test]
    fn a_value_read_twice_is_shared_then_moved() {
        let k = Key::new("x", Token::from_u128(3));
        let mut deps = DepValues::new();
        for i in 0..20 {
            deps.push(
                Key::block("pad", Token::from_u128(4), &[i]),
                Value::new(0i64),
            );
        }
        deps.push(k, Value::new(21i64));
        let task = Task::call(total::op(), [Arg::List(vec![Arg::Key(k), Arg::Key(k)])]);
        let out = execute(&Key::new("total", Token::from_u128(5)), &task, deps).unwrap();
        assert_eq!(out.downcast_ref::<i64>(), Some(&42));
    }
}
