//! The threaded scheduler: the default, running tasks on a work-stealing pool.
//!
//! Ready tasks run in static priority order (the plan's depth-first order): roots are queued
//! in priority order, and a thread continues with the dependents its task just made ready
//! (LIFO), so one branch is finished before another is started and intermediates are freed
//! early. Linear chains run as one job. The first error cancels what has not started and is
//! returned with its key; a panicking task is an error like any other.

mod pool;
mod run;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use oxidask_core::compute::{enter_scheduler, Compute};
use oxidask_core::{Error, Graph, Key, PlanOptions, Value};

use crate::stats::RunStats;
pub use pool::on_any_pool_thread;
use pool::{PoolOwner, PoolShared};
use run::RunShared;

/// Runs graphs on a pool of threads (Dask's threaded scheduler).
///
/// ```
/// use oxidask_core::{delayed, Collection};
/// use oxidask_local::Threaded;
/// let pool = Threaded::new(2);
/// let parts: Vec<_> = (0..10i64).map(|i| delayed(i).map(|x| x * x)).collect();
/// let total = oxidask_core::collect(parts).map(|v: &Vec<i64>| v.iter().sum::<i64>());
/// assert_eq!(total.compute_with(&pool).unwrap(), 285);
/// ```
#[derive(Clone)]
pub struct Threaded {
    pool: Arc<PoolShared>,
    /// Keeps the threads alive; `None` for the handle pool threads use for nested work.
    _owner: Option<Arc<PoolOwner>>,
    options: PlanOptions,
    collect_stats: bool,
    /// Runs through this handle stop once this is set (see [`Threaded::stop_on`]).
    stop: Option<Arc<AtomicBool>>,
}

impl std::fmt::Debug for Threaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Threaded({} threads)", self.pool.threads())
    }
}

impl Threaded {
    /// A new pool of `threads` threads (at least one).
    pub fn new(threads: usize) -> Threaded {
        let owner = PoolShared::start(threads, |shared| {
            // Nested compute() calls from tasks use this pool, helping rather than blocking.
            let handle = Threaded {
                pool: shared.clone(),
                _owner: None,
                options: PlanOptions::default(),
                collect_stats: false,
                stop: None,
            };
            std::mem::forget(enter_scheduler(Arc::new(handle)));
        });
        Threaded {
            pool: owner_shared(&owner),
            _owner: Some(owner),
            options: PlanOptions::default(),
            collect_stats: false,
            stop: None,
        }
    }

    /// The process-wide pool with one thread per core (`OXIDASK_NUM_WORKERS` overrides),
    /// created on first use.
    pub fn global() -> Threaded {
        static GLOBAL: OnceLock<Threaded> = OnceLock::new();
        GLOBAL
            .get_or_init(|| Threaded::new(default_threads()))
            .clone()
    }

    /// Whether to fuse linear chains (on by default).
    pub fn fuse(mut self, on: bool) -> Threaded {
        self.options.fuse = on;
        self
    }

    /// Whether [`Threaded::run`] measures live results (off by default: it costs shared
    /// counters on every task).
    pub fn collect_stats(mut self, on: bool) -> Threaded {
        self.collect_stats = on;
        self
    }

    /// Runs through the returned handle stop once `flag` is set: tasks not started by then are
    /// skipped and the run fails with a cancellation error; running tasks finish. Other runs on
    /// the same pool go on: this is how a caller gives up on one computation (an interrupt).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use oxidask_core::{delayed, Collection};
    /// use oxidask_local::Threaded;
    /// let stop = Arc::new(AtomicBool::new(false));
    /// let pool = Threaded::new(2);
    /// stop.store(true, Ordering::Release);
    /// assert!(delayed(1i64).map(|x| x + 1).compute_with(&pool.clone().stop_on(stop)).is_err());
    /// assert_eq!(delayed(1i64).map(|x| x + 1).compute_with(&pool).unwrap(), 2);
    /// ```
    pub fn stop_on(mut self, flag: Arc<AtomicBool>) -> Threaded {
        self.stop = Some(flag);
        self
    }

    /// The number of threads.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Runs `outputs` of `graph` and reports what the run did.
    pub fn run(&self, graph: Graph, outputs: &[Key]) -> Result<(Vec<Value>, RunStats), Error> {
        let start = Instant::now();
        let plan = graph.plan(outputs, self.options)?;
        let (tasks, units) = (plan.len(), plan.units());
        let nested = self.pool.on_pool_thread();
        let seq = self.pool.next_run_seq();
        let run = Arc::new(RunShared::new(
            graph,
            plan,
            seq,
            nested,
            self.collect_stats,
            self.stop.clone(),
        ));
        run.start(&self.pool);
        if nested {
            self.pool.help_until(|| run.is_done());
        } else {
            run.wait();
        }
        self.pool.retire(&run);
        let values = run.results()?;
        let (peak_live_values, peak_live_bytes) = run
            .live()
            .map(|l| {
                (
                    l.peak_values.load(std::sync::atomic::Ordering::Relaxed),
                    l.peak_bytes.load(std::sync::atomic::Ordering::Relaxed),
                )
            })
            .unwrap_or((0, 0));
        debug_assert_eq!(run.plan().len(), tasks);
        if tasks > crate::drop_later::DEFER_ABOVE_TASKS {
            crate::drop_later::drop_later(run);
        }

        Ok((
            values,
            RunStats {
                tasks,
                units,
                peak_live_values,
                peak_live_bytes,
                elapsed: start.elapsed(),
            },
        ))
    }
}

fn owner_shared(owner: &Arc<PoolOwner>) -> Arc<PoolShared> {
    owner.shared()
}

/// Threads for the global pool: `OXIDASK_NUM_WORKERS`, else the number of cores.
pub fn default_threads() -> usize {
    std::env::var("OXIDASK_NUM_WORKERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

impl Compute for Threaded {
    fn compute(&self, graph: Graph, outputs: &[Key]) -> Result<Vec<Value>, Error> {
        self.run(graph, outputs).map(|(v, _)| v)
    }

    fn name(&self) -> &'static str {
        "threaded"
    }
}
