//! The task graph: keys mapped to tasks, and the passes over it.
//!
//! A [`Graph`] is Dask's low-level graph: a map from [`Key`] to [`Task`]. Passes:
//! - [`Graph::plan`] culls to what the requested keys need, checks for cycles and dangling
//!   references, and orders the tasks (a dense [`Plan`] that schedulers run);
//! - [`Graph::cull`], [`Graph::order`] and [`Graph::fuse_linear`] expose the same analysis as
//!   graphs and key lists;
//! - [`Graph::to_dot`] and [`Graph::visualize`] draw it.
//!
//! # Invariants
//! - A key maps to one task; inserting an existing key keeps the first task (keys are
//!   content-derived, so a second insertion describes the same work).
//! - Positions (`u32`) are stable while the graph lives: tasks are only appended.

mod dot;
mod fuse;
mod plan;

use hashbrown::hash_table::{Entry, HashTable};

pub use dot::DotOptions;
pub use plan::{Plan, PlanOptions};

use crate::error::GraphError;
use crate::key::Key;
use crate::task::Task;

/// A map from keys to the tasks that produce them.
///
/// ```
/// use oxidask_core::{Graph, Key, Task, Token, Value};
/// let mut g = Graph::new();
/// let x = Key::new("x", Token::from_u128(1));
/// g.insert(x, Task::value(Value::new(41i64)));
/// let y = Key::new("y", Token::from_u128(2));
/// g.insert(y, Task::alias(x));
/// assert_eq!(g.order(&[y]).unwrap(), vec![x, y]);
/// ```
#[derive(Clone, Default)]
pub struct Graph {
    keys: Vec<Key>,
    tasks: Vec<Task>,
    /// Positions, hashed by their key: 4 bytes a slot rather than a copy of the key, so the
    /// index of a million-task graph stays in cache.
    index: HashTable<u32>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph::default()
    }

    /// An empty graph with room for `n` tasks.
    pub fn with_capacity(n: usize) -> Graph {
        Graph {
            keys: Vec::with_capacity(n),
            tasks: Vec::with_capacity(n),
            index: HashTable::with_capacity(n),
        }
    }

    /// Adds a task; returns `false` (and keeps the existing task) if `key` is already present.
    pub fn insert(&mut self, key: Key, task: Task) -> bool {
        let keys = &self.keys;
        match self.index.entry(
            key.hash64(),
            |&p| keys[p as usize] == key,
            |&p| keys[p as usize].hash64(),
        ) {
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                let pos = u32::try_from(self.tasks.len()).expect("more than 4 billion tasks");
                v.insert(pos);
                self.keys.push(key);
                self.tasks.push(task);
                true
            }
        }
    }

    /// Sets the task for `key`, replacing any existing one (e.g. a persisted value standing in
    /// for the computation that produced it).
    pub fn replace(&mut self, key: Key, task: Task) {
        match self.position(&key) {
            Some(pos) => self.tasks[pos as usize] = task,
            None => {
                self.insert(key, task);
            }
        }
    }

    /// Replaces tasks in place: `f` sees every key and task and returns a task to put in its
    /// place, or `None` to keep it. For schedulers that run some operations their own way
    /// (Python calls sent to a process pool, say) without rebuilding the graph.
    pub fn rewrite(&mut self, mut f: impl FnMut(&Key, &Task) -> Option<Task>) {
        for (k, t) in self.keys.iter().zip(self.tasks.iter_mut()) {
            if let Some(new) = f(k, t) {
                *t = new;
            }
        }
    }

    /// The task for `key`.
    pub fn get(&self, key: &Key) -> Option<&Task> {
        self.position(key).map(|p| &self.tasks[p as usize])
    }

    /// True if a task produces `key`.
    pub fn contains(&self, key: &Key) -> bool {
        self.position(key).is_some()
    }

    /// The number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// True if there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// All keys and tasks, in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Key, &Task)> {
        self.keys.iter().zip(self.tasks.iter())
    }

    /// All keys, in insertion order.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Adds every task of `other` that this graph lacks.
    pub fn merge(&mut self, other: Graph) {
        for (k, t) in other.keys.into_iter().zip(other.tasks) {
            self.insert(k, t);
        }
    }

    /// The position of `key` (insertion index).
    #[inline]
    pub fn position(&self, key: &Key) -> Option<u32> {
        self.index
            .find(key.hash64(), |&p| self.keys[p as usize] == *key)
            .copied()
    }

    /// The position of `key`, trying the predicted positions `hints` before hashing: builders
    /// insert in a regular order (a chain's dependency sits right before it, outputs follow
    /// insertion order), and a compare on a cached line is far cheaper than a hash probe.
    #[inline]
    pub fn position_hinted(&self, key: &Key, hints: [u32; 2]) -> Option<u32> {
        for h in hints {
            if self.keys.get(h as usize) == Some(key) {
                return Some(h);
            }
        }
        self.position(key)
    }

    /// The key at a position.
    pub fn key_at(&self, pos: u32) -> &Key {
        &self.keys[pos as usize]
    }

    /// The task at a position.
    pub fn task_at(&self, pos: u32) -> &Task {
        &self.tasks[pos as usize]
    }

    /// The dense, culled, ordered plan for computing `outputs`.
    pub fn plan(&self, outputs: &[Key], options: PlanOptions) -> Result<Plan, GraphError> {
        Plan::build(self, outputs, options)
    }

    /// Only the tasks `outputs` need.
    pub fn cull(&self, outputs: &[Key]) -> Result<Graph, GraphError> {
        let plan = self.plan(
            outputs,
            PlanOptions {
                fuse: false,
                ..Default::default()
            },
        )?;
        let mut g = Graph::with_capacity(plan.len());
        for i in 0..plan.len() as u32 {
            let pos = plan.graph_position(i);
            g.insert(*self.key_at(pos), self.task_at(pos).clone());
        }
        Ok(g)
    }

    /// The keys `outputs` need, in the order a single thread should run them: dependencies
    /// first, one branch finished before the next is started, so few results are held at once.
    pub fn order(&self, outputs: &[Key]) -> Result<Vec<Key>, GraphError> {
        let plan = self.plan(
            outputs,
            PlanOptions {
                fuse: false,
                ..Default::default()
            },
        )?;
        Ok((0..plan.len() as u32)
            .map(|i| *self.key_at(plan.graph_position(i)))
            .collect())
    }

    /// The culled graph with every linear chain (a task whose only dependent has no other
    /// dependency) fused into one task under the chain's last key.
    pub fn fuse_linear(&self, outputs: &[Key]) -> Result<Graph, GraphError> {
        fuse::fuse_linear(self, outputs)
    }
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(Key, Task)> for Graph {
    fn from_iter<I: IntoIterator<Item = (Key, Task)>>(iter: I) -> Graph {
        let mut g = Graph::new();
        for (k, t) in iter {
            g.insert(k, t);
        }
        g
    }
}

impl Extend<(Key, Task)> for Graph {
    fn extend<I: IntoIterator<Item = (Key, Task)>>(&mut self, iter: I) {
        for (k, t) in iter {
            self.insert(k, t);
        }
    }
}

#[cfg(test)]
mod tests;
