//! # oxidask-scheduler
//!
//! The distributed scheduler: a pure state machine ([`state`]) with its policies
//! ([`policy`]: placement, root-task queuing, work stealing), and the network shell
//! ([`server`]) that turns sockets into events and effects into messages.
//!
//! ```no_run
//! let server = oxidask_scheduler::server::Scheduler::builder()
//!     .address("127.0.0.1:8786")
//!     .start()
//!     .unwrap();
//! println!("scheduler at {}", server.address());
//! server.wait();
//! ```

// Wire errors are built on failure paths only.
#![allow(clippy::result_large_err)]

pub mod cli;
pub mod journal;
pub(crate) mod policy;
pub mod server;
pub mod state;

pub use state::{Config, CoordLimits, Effect, Event, SchedulerState, TState, P2P_MAX_RESTARTS};
