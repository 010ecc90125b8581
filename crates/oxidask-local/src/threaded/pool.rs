//! The work-stealing thread pool under the threaded scheduler.
//!
//! Ready work is taken in static priority order. A run's root tasks (those with no
//! dependencies) stay in the run, sorted by priority, behind an atomic cursor; threads claim
//! them a few at a time. Everything else that becomes ready goes into the ready heap of the
//! thread that made it ready, ordered by priority. A thread always takes the better of its own
//! heap's best task and the next unclaimed root, so a pool with one thread runs a plan in
//! exactly its priority order; idle threads steal the best task from another thread's heap.
//! Runs started later (nested computations, which someone is waiting for) go first.
//!
//! A thread that calls `compute()` from inside a task does not block: it keeps running jobs
//! (of any run) until its own run is done, so nested computations never starve the pool.
//!
//! # Invariants
//! - A [`Job`] points at a run that outlives it: a run is not dropped until its count of jobs
//!   in flight has reached zero (see `run.rs`); the run list and the per-thread caches hold
//!   `Arc`s.
//! - Sleeping is lost-wakeup free: a sleeper announces itself, then re-checks for work under
//!   the sleep lock; a pusher publishes work, then notifies if anyone announced sleep.

use std::cell::{Cell, RefCell};
use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::run::RunShared;

/// Roots claimed at once: fewer trips to the shared cursor, still fine-grained.
const ROOT_BATCH: usize = 16;

/// One unit of work: task `task` of a run.
#[derive(Clone, Copy)]
pub(crate) struct Job {
    pub(crate) run: *const RunShared,
    pub(crate) task: u32,
}

// SAFETY: a job is a plain pointer to a `RunShared`, which is `Sync` and, by the run's
// in-flight accounting, outlives every job that points at it.
unsafe impl Send for Job {}

/// Scheduling rank: newer runs first, then lower priority number first.
#[inline]
pub(crate) fn rank(run_seq: u32, priority: u32) -> u64 {
    ((run_seq as u64) << 32) | (u32::MAX - priority) as u64
}

/// A job in a ready heap.
struct Ready {
    rank: u64,
    job: Job,
}

impl PartialEq for Ready {
    fn eq(&self, other: &Self) -> bool {
        self.rank == other.rank
    }
}
impl Eq for Ready {}
impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ready {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.rank.cmp(&other.rank)
    }
}

/// A thread's ready work: jobs made ready by its tasks, by rank, and roots it claimed, which
/// are already in rank order.
#[derive(Default)]
struct LocalQueue {
    heap: BinaryHeap<Ready>,
    roots: VecDeque<Ready>,
}

impl LocalQueue {
    fn best_rank(&self) -> Option<u64> {
        match (self.heap.peek(), self.roots.front()) {
            (Some(h), Some(r)) => Some(h.rank.max(r.rank)),
            (Some(h), None) => Some(h.rank),
            (None, Some(r)) => Some(r.rank),
            (None, None) => None,
        }
    }

    fn pop_best(&mut self) -> Option<Job> {
        let from_heap = match (self.heap.peek(), self.roots.front()) {
            (Some(h), Some(r)) => h.rank > r.rank,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if from_heap {
            self.heap.pop().map(|r| r.job)
        } else {
            self.roots.pop_front().map(|r| r.job)
        }
    }

    /// What a thief takes: the best made-ready job, else the least urgent claimed root.
    fn steal(&mut self) -> Option<Job> {
        match self.heap.pop() {
            Some(r) => Some(r.job),
            None => self.roots.pop_back().map(|r| r.job),
        }
    }

    fn is_empty(&self) -> bool {
        self.heap.is_empty() && self.roots.is_empty()
    }
}

/// State shared by the pool's threads and every handle on the pool.
pub(crate) struct PoolShared {
    heaps: Vec<Mutex<LocalQueue>>,
    runs: Mutex<Vec<Arc<RunShared>>>,
    runs_epoch: AtomicU64,
    run_seq: AtomicU32,
    sleep: Mutex<()>,
    wake: Condvar,
    sleepers: AtomicUsize,
    shutdown: AtomicBool,
}

/// The current thread's place in a pool, if it is a pool thread.
struct WorkerCtx {
    pool: *const PoolShared,
    index: usize,
    /// The run this thread claims roots from (`None`: no run had roots) and the run-list
    /// epoch that choice was made at; re-chosen only when the epoch moves or it runs out.
    source: RefCell<(Option<Arc<RunShared>>, u64)>,
}

thread_local! {
    static WORKER: Cell<*const WorkerCtx> = const { Cell::new(std::ptr::null()) };
}

/// True on a thread of any threaded pool of this process (which calls the idle hook before it
/// sleeps).
pub fn on_any_pool_thread() -> bool {
    WORKER.with(|w| !w.get().is_null())
}

/// Joins the pool's threads when the last owning handle drops.
pub(crate) struct PoolOwner {
    shared: Arc<PoolShared>,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl PoolOwner {
    /// The shared state the threads use.
    pub(crate) fn shared(&self) -> Arc<PoolShared> {
        self.shared.clone()
    }
}

impl Drop for PoolOwner {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.notify_all();
        let on_pool_thread = self.shared.current_worker().is_some();
        let handles = std::mem::take(&mut *self.handles.lock().unwrap_or_else(|p| p.into_inner()));
        if !on_pool_thread {
            for h in handles {
                let _ = h.join();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PoolShared {
    /// Starts a pool of `threads` threads; `on_start` runs first on each.
    pub(crate) fn start(
        threads: usize,
        on_start: impl Fn(&Arc<PoolShared>) + Send + Sync + 'static,
    ) -> Arc<PoolOwner> {
        let threads = threads.max(1);
        let shared = Arc::new(PoolShared {
            heaps: (0..threads)
                .map(|_| Mutex::new(LocalQueue::default()))
                .collect(),
            runs: Mutex::new(Vec::new()),
            runs_epoch: AtomicU64::new(0),
            run_seq: AtomicU32::new(0),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
            sleepers: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
        });
        let on_start = Arc::new(on_start);
        let handles = (0..threads)
            .map(|index| {
                let shared = shared.clone();
                let on_start = on_start.clone();
                std::thread::Builder::new()
                    .name(format!("oxidask-worker-{index}"))
                    .spawn(move || {
                        let ctx = WorkerCtx {
                            pool: Arc::as_ptr(&shared),
                            index,
                            source: RefCell::new((None, u64::MAX)),
                        };
                        WORKER.with(|w| w.set(&ctx));
                        on_start(&shared);
                        shared.work_loop(&ctx);
                        ctx.source.borrow_mut().0 = None;
                        WORKER.with(|w| w.set(std::ptr::null()));
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        Arc::new(PoolOwner {
            shared,
            handles: Mutex::new(handles),
        })
    }

    /// The number of threads.
    pub(crate) fn threads(&self) -> usize {
        self.heaps.len()
    }

    /// The current thread's worker context if it is one of this pool's threads.
    fn current_worker(&self) -> Option<&WorkerCtx> {
        let ptr = WORKER.with(|w| w.get());
        if ptr.is_null() {
            return None;
        }
        // SAFETY: the pointer is set by this thread's worker loop to a context on its own
        // stack, and cleared before that frame ends; we only use it on this thread.
        let ctx = unsafe { &*ptr };
        std::ptr::eq(ctx.pool, self).then_some(ctx)
    }

    /// True if the calling thread belongs to this pool.
    pub(crate) fn on_pool_thread(&self) -> bool {
        self.current_worker().is_some()
    }

    /// A sequence number for a new run (later runs are preferred).
    pub(crate) fn next_run_seq(&self) -> u32 {
        self.run_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes a run's roots available to the threads.
    pub(crate) fn submit(&self, run: Arc<RunShared>) {
        lock(&self.runs).push(run);
        self.runs_epoch.fetch_add(1, Ordering::SeqCst);
        self.notify_all();
    }

    /// Removes a finished run from the run list.
    pub(crate) fn retire(&self, run: &RunShared) {
        lock(&self.runs).retain(|r| !std::ptr::eq(&**r, run));
    }

    /// Queues jobs made ready by a finished task.
    pub(crate) fn push_ready(&self, jobs: impl Iterator<Item = (u64, Job)>) {
        let index = self.current_worker().map_or(0, |c| c.index);
        {
            let mut queue = lock(&self.heaps[index]);
            for (rank, job) in jobs {
                queue.heap.push(Ready { rank, job });
            }
        }
        self.notify_if_sleeping();
    }

    fn notify_if_sleeping(&self) {
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = lock(&self.sleep);
            self.wake.notify_one();
        }
    }

    /// Wakes every sleeping thread (shutdown, a new run, or a run finished that a pool thread
    /// waits on).
    pub(crate) fn notify_all(&self) {
        let _g = lock(&self.sleep);
        self.wake.notify_all();
    }

    fn has_work(&self) -> bool {
        self.heaps.iter().any(|h| !lock(h).is_empty())
            || lock(&self.runs).iter().any(|r| r.has_unclaimed_roots())
    }

    /// The run to claim roots from: the cached one while it has roots and no run was added,
    /// else the newest run with unclaimed roots.
    fn root_source(&self, ctx: &WorkerCtx) -> Option<Arc<RunShared>> {
        let epoch = self.runs_epoch.load(Ordering::Acquire);
        let mut cached = ctx.source.borrow_mut();
        if cached.1 == epoch {
            match &cached.0 {
                None => return None,
                Some(run) if run.has_unclaimed_roots() => return Some(run.clone()),
                Some(_) => {}
            }
        }
        *cached = (None, epoch);
        let mut runs = lock(&self.runs);
        runs.retain(|r| r.has_unclaimed_roots() || !r.is_done());
        let best = runs
            .iter()
            .filter(|r| r.has_unclaimed_roots())
            .max_by_key(|r| r.seq())
            .cloned();
        drop(runs);
        cached.0 = best.clone();
        best
    }

    fn find_job(&self, ctx: &WorkerCtx) -> Option<Job> {
        let source = self.root_source(ctx);
        {
            let mut queue = lock(&self.heaps[ctx.index]);
            let root_rank = source.as_ref().and_then(|r| r.next_root_rank());
            let take_local = match (queue.best_rank(), root_rank) {
                (Some(local), Some(root)) => local > root,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if take_local {
                return queue.pop_best();
            }
            if let Some(run) = &source {
                let mut claimed = run.claim_roots(ROOT_BATCH);
                if let Some(first) = claimed.next() {
                    // A claim happens only when the run's next root outranks everything held
                    // here, so anything already queued is from an older run and ranks below
                    // the whole batch: the batch goes in front, in order.
                    let batch: Vec<Ready> = claimed
                        .map(|job| Ready {
                            rank: run.rank_of(job.task),
                            job,
                        })
                        .collect();
                    for r in batch.into_iter().rev() {
                        queue.roots.push_front(r);
                    }
                    return Some(first);
                }
            }
        }
        // Steal from another thread.
        let n = self.heaps.len();
        for k in 1..n {
            let victim = &self.heaps[(ctx.index + k) % n];
            if let Some(job) = lock(victim).steal() {
                return Some(job);
            }
        }
        None
    }

    fn run_job(&self, job: Job) {
        // SAFETY: see `Job`: the run is alive while this job is in flight.
        let run = unsafe { &*job.run };
        run.execute(job.task, self);
    }

    fn work_loop(&self, ctx: &WorkerCtx) {
        loop {
            if let Some(job) = self.find_job(ctx) {
                self.run_job(job);
                continue;
            }
            if self.shutdown.load(Ordering::SeqCst) {
                return;
            }
            // Do not keep a finished run (its graph and results) alive while idle.
            *ctx.source.borrow_mut() = (None, u64::MAX);
            self.sleep_until(|| self.shutdown.load(Ordering::SeqCst), None);
        }
    }

    /// Sleeps until there is work or `done()` holds.
    fn sleep_until(&self, done: impl Fn() -> bool, timeout: Option<Duration>) {
        crate::idle::before_sleep();
        let guard = lock(&self.sleep);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !self.has_work() && !done() {
            match timeout {
                Some(t) => drop(self.wake.wait_timeout(guard, t)),
                None => drop(self.wake.wait(guard)),
            }
        } else {
            drop(guard);
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// On a pool thread: runs jobs until `done()` holds (a nested computation waiting for
    /// its run without taking a thread away from the pool).
    pub(crate) fn help_until(&self, done: impl Fn() -> bool) {
        let ctx = self
            .current_worker()
            .expect("help_until is only called on pool threads");
        while !done() {
            if let Some(job) = self.find_job(ctx) {
                self.run_job(job);
            } else {
                *ctx.source.borrow_mut() = (None, u64::MAX);
                // Runs notify the pool when they finish; the timeout is a safety net only.
                self.sleep_until(&done, Some(Duration::from_millis(50)));
            }
        }
    }
}
