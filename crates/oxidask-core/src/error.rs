//! Errors, by phase: building the graph ([`GraphError`]), running a task ([`TaskError`]),
//! and everything a computation can report ([`Error`]).

use std::fmt;
use std::path::PathBuf;

use crate::codec::CodecError;
use crate::key::Key;
use crate::op::{FailureKind, TaskFailure};

fn list_keys(keys: &[Key]) -> String {
    const SHOW: usize = 8;
    let mut s: Vec<String> = keys.iter().take(SHOW).map(|k| k.to_string()).collect();
    if keys.len() > SHOW {
        s.push(format!("… and {} more", keys.len() - SHOW));
    }
    s.join(" -> ")
}

/// A graph that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// Tasks depend on each other in a circle.
    #[error("the graph has a cycle: {}; a task cannot depend on its own result, so check how these keys were built", list_keys(.keys))]
    Cycle {
        /// The keys on the cycle, in dependency order, the first repeated at the end.
        keys: Vec<Key>,
    },
    /// A task refers to a key that no task produces.
    #[error("task {key} depends on {dependency}, which is not in the graph; add a task for it or merge the graph that has it")]
    MissingDependency {
        /// The task with the dangling reference.
        key: Key,
        /// The key nobody produces.
        dependency: Key,
    },
    /// A requested output is not in the graph.
    #[error("key {key} was requested but no task in the graph produces it")]
    MissingKey {
        /// The requested key.
        key: Key,
    },
    /// More tasks than a plan can index.
    #[error(
        "the graph has {tasks} tasks, more than the {max} one plan can hold; compute it in parts"
    )]
    TooLarge {
        /// Tasks in the graph.
        tasks: usize,
        /// The limit.
        max: usize,
    },
}

/// A task that failed, with its key and operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    /// The failed task.
    pub key: Key,
    /// The operation it ran.
    pub op: String,
    /// What went wrong (boxed to keep `Result`s small).
    pub failure: Box<TaskFailure>,
}

impl TaskError {
    /// True if the task panicked.
    pub fn is_panic(&self) -> bool {
        self.failure.kind() == FailureKind::Panic
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "task {} ({}) failed: {}",
            self.key, self.op, self.failure
        )
    }
}

impl std::error::Error for TaskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.failure)
    }
}

/// Why a picture of a graph could not be made.
#[derive(Debug, thiserror::Error)]
pub enum VisualizeError {
    /// Graphviz is not installed.
    #[error("rendering {path} needs Graphviz's `dot`, which was not found on PATH; install it (Debian/Ubuntu: `sudo apt-get install graphviz`, macOS: `brew install graphviz`) or write a `.dot` file instead")]
    GraphvizMissing {
        /// The picture asked for.
        path: PathBuf,
    },
    /// `dot` ran and failed.
    #[error("graphviz `dot` failed to render {path}: {stderr}")]
    GraphvizFailed {
        /// The picture asked for.
        path: PathBuf,
        /// What `dot` printed.
        stderr: String,
    },
    /// The file could not be written.
    #[error("could not write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Anything a computation can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The graph cannot be run.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A task failed; remaining work was cancelled.
    #[error(transparent)]
    Task(Box<TaskError>),
    /// A value could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A result had another type than the handle promised (a key reused for another type).
    #[error("the result of {key} has type `{found}`, but `{expected}` was expected; was the same key built by two different calls?")]
    OutputType {
        /// The key.
        key: Key,
        /// The type the handle promised.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// No scheduler is available for `compute()`.
    #[error("no scheduler is available: link `oxidask-local` (the `oxidask` crate does) or pass one to `compute_with`")]
    NoScheduler,
    /// A picture of the graph could not be made.
    #[error(transparent)]
    Visualize(#[from] VisualizeError),
    /// A collection was built from invalid parts (mismatched shapes, an unknown column, …);
    /// the message names what was wrong.
    #[error(transparent)]
    Collection(Box<dyn std::error::Error + Send + Sync>),
    /// A scheduler implementation reported an error of its own (connection lost, …).
    #[error("{scheduler} scheduler: {source}")]
    Scheduler {
        /// Which scheduler.
        scheduler: &'static str,
        /// Its error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl From<TaskError> for Error {
    fn from(e: TaskError) -> Error {
        Error::Task(Box::new(e))
    }
}

impl Error {
    /// The failed task, if a task failure caused this.
    pub fn task_error(&self) -> Option<&TaskError> {
        match self {
            Error::Task(t) => Some(t),
            _ => None,
        }
    }
}
