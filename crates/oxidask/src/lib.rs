//! # oxidask
//!
//! Parallel computing with task graphs: Dask's ideas, rebuilt in Rust.
//!
//! - `#[oxidask::task]` functions become lazy: calling one returns a [`Delayed`] and records a
//!   task; `.compute()` runs the graph on the current scheduler.
//! - Schedulers: [`Threaded`] (the default, one thread per core) and [`Synchronous`] (one
//!   thread, for debugging); the same code runs on either, and on the distributed scheduler.
//! - [`compute`] and [`persist`] take several collections at once and run their merged graph,
//!   so shared work runs once.
//!
//! ```
//! use oxidask::prelude::*;
//!
//! #[oxidask::task]
//! fn inc(x: i64) -> i64 { x + 1 }
//!
//! #[oxidask::task]
//! fn add(x: i64, y: i64) -> i64 { x + y }
//!
//! let z = add(inc(1), inc(2));          // lazy: builds a graph of three tasks
//! assert_eq!(z.compute().unwrap(), 5);  // runs it on the threaded scheduler
//!
//! // Values and delayed results mix freely, also inside lists.
//! #[oxidask::task]
//! fn total(xs: &[i64]) -> i64 { xs.iter().sum() }
//! let parts: Vec<Delayed<i64>> = (0..10).map(inc).collect();
//! assert_eq!(total(parts).compute().unwrap(), 55);
//!
//! // Closures work on the local schedulers.
//! let doubled = z.map(|v| v * 2);
//! let (a, b) = oxidask::compute((&z, &doubled)).unwrap();
//! assert_eq!((a, b), (5, 10));
//!
//! // Any scheduler, same code.
//! assert_eq!(z.compute_with(&Synchronous::new()).unwrap(), 5);
//! ```

pub use oxidask_core::{
    codec, collect, compute, data, delayed, error, exec, graph, lazy, map2, map3, op, persist,
    reference, remote, task, tokenize, Arg, Collection, Compute, Data, Delayed, DotOptions, Error,
    Graph, GraphError, IntoArg, IntoDelayed, Key, MaybeDelayed, OpDef, Plan, PlanOptions, Task,
    TaskError, TaskFailure, TaskSpec, Token, Value, VisualizeError,
};
pub use oxidask_local::{default_threads, RunStats, Synchronous, Threaded};

/// Chunked n-dimensional arrays (Dask's `dask.array`): `use oxidask::array as da;`.
#[cfg(feature = "array")]
pub use oxidask_array as array;

/// Bags of records (Dask's `dask.bag`): `use oxidask::bag::Bag;`. Needs the `bag` feature
/// (on by default).
#[cfg(feature = "bag")]
pub use oxidask_bag as bag;

/// Partitioned dataframes on Polars (Dask's `dask.dataframe`): `use oxidask::dataframe as dd;`.
/// Needs the `dataframe` feature.
#[cfg(feature = "dataframe")]
pub use oxidask_dataframe as dataframe;

/// The distributed scheduler: a cluster of processes on one machine or many, driven from a
/// [`Client`](distributed::Client) with typed futures; collections' `compute()` runs on it
/// once a client is connected.
///
/// ```
/// use oxidask::distributed::LocalCluster;
/// let cluster = LocalCluster::builder().workers(2).threads_per_worker(1).start().unwrap();
/// let client = cluster.client().unwrap();
/// let futures = client.scatter(vec![1i64, 2, 3], false).unwrap();
/// assert_eq!(client.gather(&futures).unwrap(), vec![1, 2, 3]);
/// ```
#[cfg(feature = "distributed")]
pub mod distributed {
    pub use oxidask_client::*;
    pub use oxidask_scheduler::server::{Scheduler, SchedulerBuilder};
    pub use oxidask_scheduler::Config as SchedulerConfig;
    pub use oxidask_worker::actor::{Actor, ActorRef};
    pub use oxidask_worker::register_actor;
    pub use oxidask_worker::{
        current as worker_context, main_with_args as worker_main, memory as worker_memory, nanny,
        rejoin, run_if_worker, secede, seceded, Worker, WorkerBuilder, WorkerContext,
    };
}

/// Choosing the scheduler `compute()` uses.
pub mod config {
    pub use oxidask_core::compute::{
        current_scheduler, enter_scheduler, set_global_scheduler, with_scheduler, SchedulerGuard,
    };
}

/// The names most programs need: `use oxidask::prelude::*;`.
pub mod prelude {
    pub use oxidask_core::{
        collect, delayed, lazy, map2, map3, task, Collection, Compute, Data, Delayed, MaybeDelayed,
    };
    pub use oxidask_local::{Synchronous, Threaded};
}

#[doc(hidden)]
pub use oxidask_core::__private;
