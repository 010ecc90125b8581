//! What the scheduler remembers about tasks, workers and clients.
//!
//! Records are kept small: a million-task graph must fit in well under 1 KiB per task, so
//! lists that usually hold one or two entries are inline, rare fields are boxed, and a task's
//! spec is the opaque encoded payload the client sent (the scheduler never decodes it).

use std::time::Instant;

use oxidask_core::Key;
use oxidask_protocol::{Payload, WireError, WorkerInfo};
use rustc_hash::FxHashSet;
use smallvec::SmallVec;

/// A task's index in the scheduler's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub u32);

/// A worker's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub u32);

/// A client's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u32);

/// A task's state: Dask's task states. A forgotten task has no record at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TState {
    /// Known, not being computed, result not held; kept as lineage for dependents.
    Released,
    /// Needed, waiting for dependencies (or for scattered data to be stored).
    Waiting,
    /// Ready, held back until a worker has room (root-task queuing) or the resources it asks
    /// for are free.
    Queued,
    /// Ready, but no connected worker may run it (restrictions or resources).
    NoWorker,
    /// Assigned to a worker.
    Processing(WorkerId),
    /// Result held by one or more workers.
    Memory,
    /// Failed (or a dependency failed).
    Erred,
}

impl TState {
    /// Dask's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            TState::Released => "released",
            TState::Waiting => "waiting",
            TState::Queued => "queued",
            TState::NoWorker => "no-worker",
            TState::Processing(_) => "processing",
            TState::Memory => "memory",
            TState::Erred => "erred",
        }
    }

    /// States in which a task is on its way to being computed.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TState::Waiting | TState::Queued | TState::NoWorker | TState::Processing(_)
        )
    }
}

/// Where and how a task may run, when the submitter said so.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Constraints {
    /// Abstract resources each run holds (`GPU = 1`).
    pub resources: Vec<(String, f64)>,
    /// Worker names or addresses it may run on; empty: any.
    pub workers: Vec<String>,
}

/// Inline list of task ids (most tasks have one or two dependencies and dependents).
pub type TaskList = SmallVec<[TaskId; 2]>;

/// One task.
pub struct TaskRec {
    /// Its key.
    pub key: Key,
    /// The encoded spec; `None` for scattered data (no lineage to recompute from).
    pub spec: Option<Payload>,
    /// Distinct dependencies.
    pub deps: TaskList,
    /// Tasks that read this one.
    pub dependents: TaskList,
    /// Its state.
    pub state: TState,
    /// Dependencies not in memory (while waiting).
    pub waiting_on: u32,
    /// Scatters of this key not yet confirmed by their workers.
    pub storing: u16,
    /// Times a worker died while this task was assigned to it.
    pub suspicious: u16,
    /// Seconds of work losing this result would redo: its last run plus the lineage of the
    /// inputs that were released after it ran (each input counted in its last reader only).
    pub lineage: f32,
    /// Retries left for a task that fails with an error.
    pub retries_left: u32,
    /// Workers holding the result.
    pub who_has: SmallVec<[WorkerId; 1]>,
    /// Clients holding futures for it.
    pub wanted_by: SmallVec<[ClientId; 1]>,
    /// Fire and forget: computed even when no client wants it; cleared once it finishes.
    pub pinned: bool,
    /// Lower runs first: (-user priority, submission order).
    pub priority: (i64, u64),
    /// Seconds of work charged to the worker it is assigned to.
    pub cost: f32,
    /// Result size.
    pub nbytes: u64,
    /// Interned result type name.
    pub type_name: u32,
    /// Restrictions, when any.
    pub constraints: Option<Box<Constraints>>,
    /// Why it failed.
    pub error: Option<Box<WireError>>,
    /// A steal request is out for it, on behalf of this worker.
    pub stealing: Option<WorkerId>,
    /// An actor (Dask's `actor=True`): its result lives on one worker and is never
    /// recomputed; losing that worker fails it with an actor-lost error.
    pub actor: bool,
}

impl TaskRec {
    /// Resources each run needs.
    pub fn resources(&self) -> &[(String, f64)] {
        self.constraints.as_ref().map_or(&[], |c| &c.resources)
    }

    /// Workers it may run on (empty: any).
    pub fn allowed_workers(&self) -> &[String] {
        self.constraints.as_ref().map_or(&[], |c| &c.workers)
    }
}

/// One worker.
pub struct WorkerRec {
    /// Its scheduler connection.
    pub conn: u64,
    /// What it offers.
    pub info: WorkerInfo,
    /// Tasks assigned to it and not finished.
    pub processing: FxHashSet<TaskId>,
    /// Of those, tasks that gave up their thread to wait on other tasks (Dask's seceded,
    /// long-running tasks): they do not count against the worker's threads.
    pub long_running: FxHashSet<TaskId>,
    /// Estimated seconds of work assigned.
    pub occupancy: f64,
    /// Results it holds.
    pub has_what: FxHashSet<TaskId>,
    /// Bytes of results it holds (by the scheduler's count).
    pub nbytes: u64,
    /// Resources held by its running tasks.
    pub used_resources: Vec<(String, f64)>,
    /// Last message from it.
    pub last_seen: Instant,
    /// From its last heartbeat: bytes held, tasks executing, CPU percent.
    pub metrics: WorkerMetrics,
}

/// A worker's self-reported metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WorkerMetrics {
    /// Bytes of results held.
    pub memory: u64,
    /// Tasks executing now.
    pub executing: u32,
    /// CPU use of the worker process, percent of one core.
    pub cpu: f64,
    /// Resident memory of the worker process.
    pub rss: u64,
    /// Bytes of results spilled to disk.
    pub spilled: u64,
}

impl WorkerRec {
    /// Assigned tasks that hold (or wait for) one of its threads.
    pub fn busy(&self) -> usize {
        self.processing.len() - self.long_running.len()
    }

    /// Total of a resource it offers.
    pub fn resource_total(&self, name: &str) -> f64 {
        self.info
            .resources
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0.0, |(_, v)| *v)
    }

    /// Amount of a resource in use.
    pub fn resource_used(&self, name: &str) -> f64 {
        self.used_resources
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0.0, |(_, v)| *v)
    }

    /// Whether it could ever run a task: allowed by name and offering enough resources.
    pub fn could_run(&self, t: &TaskRec) -> bool {
        let allowed = t.allowed_workers();
        (allowed.is_empty()
            || allowed
                .iter()
                .any(|r| *r == self.info.name || *r == self.info.data_address))
            && t.resources()
                .iter()
                .all(|(n, v)| self.resource_total(n) >= *v)
    }

    /// Whether the resources a task needs are free now.
    pub fn resources_free(&self, t: &TaskRec) -> bool {
        t.resources()
            .iter()
            .all(|(n, v)| self.resource_total(n) - self.resource_used(n) >= *v - 1e-9)
    }

    /// Marks a task's resources used (`sign = 1`) or released (`sign = -1`).
    pub fn adjust_resources(&mut self, req: &[(String, f64)], sign: f64) {
        for (n, v) in req {
            match self.used_resources.iter_mut().find(|(m, _)| m == n) {
                Some((_, u)) => *u += sign * v,
                None => self.used_resources.push((n.clone(), sign * v)),
            }
        }
    }
}

/// One client.
pub struct ClientRec {
    /// Its connection.
    pub conn: u64,
    /// Its name.
    pub name: String,
    /// Keys it holds futures for.
    pub wanted: FxHashSet<TaskId>,
    /// Tasks of a graph still arriving in parts (kept until its last part).
    pub staged: Vec<TaskId>,
    /// Staged tasks that named a dependency the scheduler does not hold.
    pub staged_broken: Vec<(TaskId, oxidask_protocol::WireKey)>,
    /// The id the client made for itself (the same on every connection), by which it
    /// reconnects; 0: anonymous (released as soon as its connection closes).
    pub id: u128,
    /// While its connection is gone: when its futures are released unless it reconnects
    /// (`distributed.scheduler.client-reconnect-grace`). `None`: connected.
    pub parked_until: Option<std::time::Instant>,
}
