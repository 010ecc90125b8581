//! A naive reference evaluator: Kahn's topological sort, every result kept until the end.
//!
//! It shares nothing with the planner or the schedulers except [`execute`], so tests use it
//! as the oracle the real schedulers are compared with. It is slow and memory-hungry on
//! purpose: simple enough to be obviously right.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::error::{Error, GraphError};
use crate::exec::{execute, DepValues};
use crate::graph::Graph;
use crate::key::Key;
use crate::value::Value;

/// Evaluates `outputs` of `graph` one task at a time in a topological order.
pub fn evaluate(graph: &Graph, outputs: &[Key]) -> Result<Vec<Value>, Error> {
    // What the outputs need.
    let mut needed: HashSet<Key> = HashSet::new();
    let mut todo: Vec<Key> = Vec::new();
    for k in outputs {
        if !graph.contains(k) {
            return Err(GraphError::MissingKey { key: *k }.into());
        }
        todo.push(*k);
    }
    while let Some(k) = todo.pop() {
        if !needed.insert(k) {
            continue;
        }
        let task = graph.get(&k).expect("checked");
        for d in task.dependencies() {
            if !graph.contains(&d) {
                return Err(GraphError::MissingDependency {
                    key: k,
                    dependency: d,
                }
                .into());
            }
            todo.push(d);
        }
    }
    // Kahn's algorithm.
    let mut indegree: HashMap<Key, usize> = HashMap::new();
    let mut dependents: HashMap<Key, Vec<Key>> = HashMap::new();
    for k in &needed {
        let deps = graph.get(k).expect("needed keys exist").dependencies();
        indegree.insert(*k, deps.len());
        for d in deps {
            dependents.entry(d).or_default().push(*k);
        }
    }
    let mut ready: VecDeque<Key> = indegree
        .iter()
        .filter(|(_, &n)| n == 0)
        .map(|(k, _)| *k)
        .collect();
    let mut results: HashMap<Key, Value> = HashMap::new();
    while let Some(k) = ready.pop_front() {
        let task = graph.get(&k).expect("needed keys exist");
        let mut deps = DepValues::new();
        for d in task.dependencies() {
            deps.push(d, results[&d].clone());
        }
        let v = execute(&k, task, deps)?;
        results.insert(k, v);
        for dep in dependents.get(&k).into_iter().flatten() {
            let n = indegree.get_mut(dep).expect("dependents are needed");
            *n -= 1;
            if *n == 0 {
                ready.push_back(*dep);
            }
        }
    }
    if results.len() != needed.len() {
        let mut stuck: Vec<Key> = needed
            .iter()
            .filter(|k| !results.contains_key(k))
            .copied()
            .collect();
        stuck.sort();
        return Err(GraphError::Cycle { keys: stuck }.into());
    }
    Ok(outputs.iter().map(|k| results[k].clone()).collect())
}
