//! # oxidask-local
//!
//! The schedulers that run a graph inside one process:
//! - [`Threaded`]: the default; a work-stealing pool with one thread per core, running ready
//!   tasks in priority order and freeing each result after its last reader.
//! - [`Synchronous`]: one task at a time on the calling thread, for debugging.
//!
//! Both implement [`Compute`](oxidask_core::Compute), so any collection runs on either with
//! `compute_with`. Linking this crate makes the global threaded pool the default for
//! `compute()`.
//!
//! ```
//! use oxidask_core::{delayed, Collection};
//! use oxidask_local::{Synchronous, Threaded};
//! let x = delayed(3i64).map(|v| v + 1);
//! assert_eq!(x.compute_with(&Synchronous::new()).unwrap(), 4);
//! assert_eq!(x.compute_with(&Threaded::global()).unwrap(), 4);
//! assert_eq!(x.compute().unwrap(), 4); // the global threaded pool
//! ```

mod drop_later;
mod idle;
pub mod shards;
mod stats;
mod sync;
mod threaded;

use std::sync::Arc;

pub use idle::set_idle_hook;
pub use stats::RunStats;
pub use sync::Synchronous;
pub use threaded::{default_threads, on_any_pool_thread, Threaded};

inventory::submit! {
    oxidask_core::compute::DefaultScheduler {
        priority: 0,
        make: || Arc::new(Threaded::global()),
    }
}
