//! One computation on the threaded scheduler: the plan, a slot per result, dependency
//! counters, and the first error.
//!
//! # Invariants
//! - `in_flight` counts unclaimed roots, queued and running jobs, plus one held by the
//!   starter until the run is submitted. A finished job queues its newly ready dependents
//!   *before* it decrements, so the count reaches zero exactly once, when no job of this run
//!   can exist any more; only then may the run be dropped.
//! - A slot's value is dropped by its last reader (`Plan::uses`), who receives it by value.
//! - After the first error, queued jobs are skipped and no new ones are queued; running ones
//!   finish. The first error is the one reported.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use oxidask_core::exec::{execute, DepValues};
use smallvec::SmallVec;
use oxidask_core::op::TaskFailure;
use oxidask_core::{Error, Graph, Plan, TaskError, Value};

use super::pool::{rank, Job, PoolShared};

struct Slot {
    value: Option<Value>,
    uses_left: u32,
}

/// Live-result accounting, kept only when statistics are asked for (it costs shared atomics).
#[derive(Default)]
pub(crate) struct Live {
    values: AtomicUsize,
    bytes: AtomicUsize,
    pub(crate) peak_values: AtomicUsize,
    pub(crate) peak_bytes: AtomicUsize,
}

impl Live {
    fn add(&self, nbytes: usize) {
        let v = self.values.fetch_add(1, Ordering::Relaxed) + 1;
        let b = self.bytes.fetch_add(nbytes, Ordering::Relaxed) + nbytes;
        self.peak_values.fetch_max(v, Ordering::Relaxed);
        self.peak_bytes.fetch_max(b, Ordering::Relaxed);
    }

    fn remove(&self, nbytes: usize) {
        self.values.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(nbytes, Ordering::Relaxed);
    }
}

pub(crate) struct RunShared {
    graph: Graph,
    plan: Plan,
    seq: u32,
    roots: Box<[u32]>,
    root_cursor: AtomicUsize,
    slots: Box<[Mutex<Slot>]>,
    waiting_on: Box<[AtomicU32]>,
    in_flight: AtomicUsize,
    cancelled: AtomicBool,
    error: Mutex<Option<TaskError>>,
    done: Mutex<bool>,
    done_cv: Condvar,
    notify_pool_when_done: bool,
    live: Option<Live>,
}

impl RunShared {
    pub(crate) fn new(
        graph: Graph,
        plan: Plan,
        seq: u32,
        notify_pool_when_done: bool,
        track_live: bool,
    ) -> RunShared {
        let n = plan.len();
        let roots: Box<[u32]> = plan.roots().collect();
        RunShared {
            in_flight: AtomicUsize::new(1 + roots.len()),
            seq,
            roots,
            root_cursor: AtomicUsize::new(0),
            slots: (0..n)
                .map(|_| {
                    Mutex::new(Slot {
                        value: None,
                        uses_left: 0,
                    })
                })
                .collect(),
            waiting_on: (0..n as u32)
                .map(|i| AtomicU32::new(plan.deps(i).len() as u32))
                .collect(),
            graph,
            plan,
            cancelled: AtomicBool::new(false),
            error: Mutex::new(None),
            done: Mutex::new(false),
            done_cv: Condvar::new(),
            notify_pool_when_done,
            live: track_live.then(Live::default),
        }
    }

    pub(crate) fn plan(&self) -> &Plan {
        &self.plan
    }

    pub(crate) fn live(&self) -> Option<&Live> {
        self.live.as_ref()
    }

    /// Offers the roots to the pool, then releases the starter's hold on `in_flight`.
    pub(crate) fn start(self: &Arc<Self>, pool: &PoolShared) {
        if !self.roots.is_empty() {
            pool.submit(self.clone());
        }
        self.job_finished(pool);
    }

    /// The run's sequence number (later runs go first).
    pub(crate) fn seq(&self) -> u32 {
        self.seq
    }

    /// The scheduling rank of task `i`.
    pub(crate) fn rank_of(&self, i: u32) -> u64 {
        rank(self.seq, i)
    }

    /// True if some roots have not been claimed yet.
    pub(crate) fn has_unclaimed_roots(&self) -> bool {
        self.root_cursor.load(Ordering::Acquire) < self.roots.len()
    }

    /// The rank of the next unclaimed root.
    pub(crate) fn next_root_rank(&self) -> Option<u64> {
        let c = self.root_cursor.load(Ordering::Acquire);
        self.roots.get(c).map(|&i| self.rank_of(i))
    }

    /// Claims up to `n` roots, in priority order.
    pub(crate) fn claim_roots(&self, n: usize) -> impl Iterator<Item = Job> + '_ {
        let start = self.root_cursor.fetch_add(n, Ordering::AcqRel);
        let end = start.saturating_add(n).min(self.roots.len());
        let me: *const RunShared = self;
        self.roots
            .get(start.min(end)..end)
            .unwrap_or(&[])
            .iter()
            .map(move |&task| Job { run: me, task })
    }

    pub(crate) fn is_done(&self) -> bool {
        *self.done.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks the calling (non-pool) thread until the run is done.
    pub(crate) fn wait(&self) {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            done = self.done_cv.wait(done).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The first error, if any task failed.
    pub(crate) fn take_error(&self) -> Option<TaskError> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// One read of result `i`: the last read takes it.
    pub(crate) fn read(&self, i: u32) -> Option<Value> {
        let mut slot = self.slots[i as usize].lock().unwrap_or_else(|p| p.into_inner());
        slot.uses_left = slot.uses_left.checked_sub(1)?;
        if slot.uses_left == 0 {
            let v = slot.value.take();
            if let (Some(live), Some(v)) = (&self.live, &v) {
                live.remove(v.nbytes());
            }
            v
        } else {
            slot.value.clone()
        }
    }

    fn fail(&self, e: TaskError) {
        {
            let mut first = self.error.lock().unwrap_or_else(|p| p.into_inner());
            if first.is_some() {
                return;
            }
            *first = Some(e);
        }
        self.cancelled.store(true, Ordering::SeqCst);
        // Withdraw the roots nobody has claimed: they will never run.
        let claimed = self.root_cursor.swap(usize::MAX / 2, Ordering::AcqRel);
        let withdrawn = self.roots.len().saturating_sub(claimed);
        if withdrawn > 0 {
            // The failing job still holds its own count, so this cannot reach zero.
            self.in_flight.fetch_sub(withdrawn, Ordering::AcqRel);
        }
    }

    fn job_finished(&self, pool: &PoolShared) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Nothing of this run can run any more. Signal under the lock; after this the
            // waiter may drop the run, so touch nothing of `self` once the lock is released.
            let notify_pool = self.notify_pool_when_done;
            {
                let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
                *done = true;
                self.done_cv.notify_all();
            }
            if notify_pool {
                pool.notify_all();
            }
        }
    }

    /// Runs task `i` (and the chain fused after it), then queues what became ready.
    pub(crate) fn execute(&self, i: u32, pool: &PoolShared) {
        if !self.cancelled.load(Ordering::Relaxed) {
            let outcome = catch_unwind(AssertUnwindSafe(|| self.run_chain(i, pool)));
            if let Err(payload) = outcome {
                // A bug in the scheduler itself, not in a task: report it rather than hang.
                let pos = self.plan.graph_position(i);
                self.fail(
                    TaskError {
                        key: *self.graph.key_at(pos),
                        op: "oxidask-local scheduler (internal error; please report it)".into(),
                        failure: Box::new(TaskFailure::panic(payload)),
                    },
                );
            }
        }
        self.job_finished(pool);
    }

    fn run_chain(&self, i: u32, pool: &PoolShared) {
        let mut cur = i;
        let mut deps = self.gather(cur);
        loop {
            let pos = self.plan.graph_position(cur);
            let key = self.graph.key_at(pos);
            match execute(key, self.graph.task_at(pos), deps) {
                Err(e) => return self.fail(e),
                Ok(v) => match self.plan.fused_next(cur) {
                    Some(next) if !self.cancelled.load(Ordering::Relaxed) => {
                        deps = DepValues::new();
                        deps.push(*key, v);
                        cur = next;
                    }
                    Some(_) => return,
                    None => return self.complete(cur, v, pool),
                },
            }
        }
    }

    fn gather(&self, i: u32) -> DepValues {
        let mut deps = DepValues::new();
        for &d in self.plan.deps(i) {
            let v = self
                .read(d)
                .expect("a dependency is computed before its dependents run");
            deps.push(*self.graph.key_at(self.plan.graph_position(d)), v);
        }
        deps
    }

    fn complete(&self, i: u32, v: Value, pool: &PoolShared) {
        if let Some(live) = &self.live {
            live.add(v.nbytes());
        }
        {
            let mut slot = self.slots[i as usize].lock().unwrap_or_else(|p| p.into_inner());
            slot.value = Some(v);
            slot.uses_left = self.plan.uses(i);
        }
        if self.cancelled.load(Ordering::Relaxed) {
            return;
        }
        let mut ready: SmallVec<[(u64, Job); 4]> = SmallVec::new();
        for &d in self.plan.dependents(i) {
            if self.waiting_on[d as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
                ready.push((self.rank_of(d), Job { run: self, task: d }));
            }
        }
        if !ready.is_empty() {
            self.in_flight.fetch_add(ready.len(), Ordering::SeqCst);
            pool.push_ready(ready.into_iter());
        }
    }

    /// Turns the outcome into results: the outputs in request order, or the first error.
    pub(crate) fn results(&self) -> Result<Vec<Value>, Error> {
        if let Some(e) = self.take_error() {
            return Err(e.into());
        }
        Ok(self
            .plan
            .outputs()
            .iter()
            .map(|&o| self.read(o).expect("every output is computed when a run succeeds"))
            .collect())
    }
}

