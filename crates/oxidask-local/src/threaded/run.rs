//! One computation on the threaded scheduler: the plan, a slot per result, dependency
//! counters, and the first error.
//!
//! # Invariants
//! - `in_flight` counts unclaimed roots, queued and running jobs, plus one held by the
//!   starter until the run is submitted. A finished job queues its newly ready dependents
//!   *before* it decrements, so the count reaches zero exactly once, when no job of this run
//!   can exist any more; only then may the run be dropped.
//! - A result is written once, by its producer, before any reader can be released; each
//!   reader clones it and then counts itself off; the reader that counts the last use takes the
//!   stored copy away, so its own handle is the only one left and the task receives the value
//!   without a copy. Readers never race the taker: every other reader has finished cloning
//!   before it counted off.
//! - After the first error, queued jobs are skipped and no new ones are queued; running ones
//!   finish. The first error is the one reported. A run whose caller set its stop flag fails
//!   with a cancellation error at the next task it would start.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use oxidask_core::exec::{execute, DepValues};
use oxidask_core::op::TaskFailure;
use oxidask_core::{Error, Graph, Plan, TaskError, Value};
use smallvec::SmallVec;

use super::pool::{rank, Job, PoolShared};

/// Result storage: written once by the producer, then read by `Plan::uses` readers.
struct Slots {
    values: Box<[UnsafeCell<Option<Value>>]>,
    uses_left: Box<[AtomicU32]>,
}

// SAFETY: see the module invariants: a value is written before its readers are released
// (through the acquire/release dependency counters) and taken only by the last reader, after
// every other reader has cloned it (acquire/release on `uses_left`).
unsafe impl Sync for Slots {}

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
    slots: Slots,
    waiting_on: Box<[AtomicU32]>,
    in_flight: AtomicUsize,
    cancelled: AtomicBool,
    /// Set by the caller to stop the run (see `Threaded::stop_on`).
    stop: Option<Arc<AtomicBool>>,
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
        stop: Option<Arc<AtomicBool>>,
    ) -> RunShared {
        let n = plan.len();
        let roots: Box<[u32]> = plan.roots().collect();
        RunShared {
            in_flight: AtomicUsize::new(1 + roots.len()),
            seq,
            roots,
            root_cursor: AtomicUsize::new(0),
            slots: Slots {
                values: (0..n).map(|_| UnsafeCell::new(None)).collect(),
                uses_left: (0..n).map(|_| AtomicU32::new(0)).collect(),
            },
            waiting_on: (0..n as u32)
                .map(|i| AtomicU32::new(plan.deps(i).len() as u32))
                .collect(),
            graph,
            plan,
            cancelled: AtomicBool::new(false),
            stop,
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
        let cell = &self.slots.values[i as usize];
        // SAFETY: shared read of a written slot; only the last reader (below) mutates it.
        let v = unsafe { (*cell.get()).clone() }?;
        if self.slots.uses_left[i as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
            // SAFETY: every other reader counted off after cloning: nobody else touches it.
            let stored = unsafe { (*cell.get()).take() };
            if let (Some(live), Some(stored)) = (&self.live, &stored) {
                live.remove(stored.nbytes());
            }
        }
        Some(v)
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

    /// True if task `i` must not start: the run failed, or its caller stopped it (which
    /// becomes the run's error, on `i`).
    fn halted(&self, i: u32) -> bool {
        if self.cancelled.load(Ordering::Relaxed) {
            return true;
        }
        if self
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            let pos = self.plan.graph_position(i);
            self.fail(TaskError {
                key: *self.graph.key_at(pos),
                op: self.graph.task_at(pos).label().to_owned(),
                failure: Box::new(TaskFailure::msg("the computation was cancelled")),
            });
            return true;
        }
        false
    }

    /// Runs task `i` (and the chain fused after it), then queues what became ready.
    pub(crate) fn execute(&self, i: u32, pool: &PoolShared) {
        if !self.halted(i) {
            let outcome = catch_unwind(AssertUnwindSafe(|| self.run_chain(i, pool)));
            if let Err(payload) = outcome {
                // A bug in the scheduler itself, not in a task: report it rather than hang.
                let pos = self.plan.graph_position(i);
                self.fail(TaskError {
                    key: *self.graph.key_at(pos),
                    op: "oxidask-local scheduler (internal error; please report it)".into(),
                    failure: Box::new(TaskFailure::panic(payload)),
                });
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
                    Some(next) if !self.halted(next) => {
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
        // SAFETY: the producer writes before releasing any reader (see the module invariants).
        unsafe { *self.slots.values[i as usize].get() = Some(v) };
        self.slots.uses_left[i as usize].store(self.plan.uses(i), Ordering::Release);
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
            .map(|&o| {
                self.read(o)
                    .expect("every output is computed when a run succeeds")
            })
            .collect())
    }
}
