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
#[derive(Default)]
pub struct DepValues {
    entries: SmallVec<[(Key, Option<Value>, u32); 4]>,
}

impl DepValues {
    /// No values.
    pub fn new() -> DepValues {
        DepValues::default()
    }

    /// Adds the value of dependency `key`.
    pub fn push(&mut self, key: Key, value: Value) {
        self.entries.push((key, Some(value), 0));
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
            if let Some(e) = self.entries.iter_mut().find(|e| e.0 == *k) {
                e.2 += 1;
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
        let e = self
            .entries
            .iter_mut()
            .find(|e| e.0 == *key)
            .ok_or_else(|| TaskFailure::argument(format!("the value of {key} was not provided")))?;
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
                outside
                    .entries
                    .iter_mut()
                    .find(|e| e.0 == *k)
                    .and_then(|e| if final_use { e.1.take() } else { e.1.clone() })
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
