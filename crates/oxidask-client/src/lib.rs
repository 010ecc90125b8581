//! # oxidask-client
//!
//! Dask's futures for Rust: connect to a scheduler, submit registered calls, hold results on
//! the cluster as typed [`Future`]s, gather them, and run any collection's `compute()` on the
//! cluster. [`LocalCluster`] starts a scheduler and workers on this machine.
//!
//! ```
//! use oxidask_client::LocalCluster;
//!
//! #[oxidask_core::task(crate = oxidask_core)]
//! fn inc(x: i64) -> i64 {
//!     x + 1
//! }
//!
//! let cluster = LocalCluster::builder().workers(2).threads_per_worker(1).start().unwrap();
//! let client = cluster.client().unwrap();
//! let futures = client.map(0..10i64, |i| inc(i)).unwrap();
//! let total: i64 = client.gather(&futures).unwrap().into_iter().sum();
//! assert_eq!(total, 55);
//! let y = client.submit(&inc(&futures[0])).unwrap(); // futures as arguments
//! assert_eq!(y.result().unwrap(), 2);
//! ```

// Wire errors are built on failure paths only.
#![allow(clippy::result_large_err)]

mod actor;
mod adaptive;
mod client;
mod cluster;
mod coord;
mod error;
mod future;
mod lifecycle;
mod persist;
mod reconnect;
mod report;

pub use actor::{ActorCall, ActorCaller, ActorError, ActorHandle, ActorReply};
pub use adaptive::{Adaptive, AdaptiveCore, AdaptiveOptions, Decision};
pub use client::{get_client, Client, ClientBuilder, DoneAndNotDone, DoneCallback, ReturnWhen};
pub use cluster::{Cluster, LocalCluster, LocalClusterBuilder, WorkersGuard, SPAWNED_ENV};
pub use coord::{
    coord_error, CoordError, Event, Lock, Pub, Queue, Semaphore, Stored, Sub, Variable,
};
pub use error::ClientError;
pub use future::{as_completed, AsCompleted, Future, Status};
pub use lifecycle::{AdaptiveTarget, Retire};
pub use oxidask_dashboard::report::{Report, ReportWorker};
pub use oxidask_protocol::transport::{
    Party, Security, SecurityError, TemporaryCa, TlsCredentials, TlsFiles, TlsVersions, TOKEN_ENV,
};
pub use oxidask_protocol::{
    ActivityKind, ClusterSummary, StreamRecord, SubmitOptions, WorkerSummary,
};
pub use persist::futures_of;
pub use report::{write_report, PerformanceReport};
