//! What can go wrong talking to a cluster (task failures are `oxidask_core::TaskError`s).

use std::time::Duration;

use oxidask_core::{Error, Key, TaskError};
use oxidask_protocol::{ErrorKind, WireError};

/// A client-side failure, reported as `Error::Scheduler { scheduler: "distributed", .. }`.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The scheduler could not be reached or refused the client.
    #[error("cannot connect to the scheduler at {address}: {reason}")]
    Connect {
        /// The address tried.
        address: String,
        /// Why.
        reason: String,
    },
    /// The connection to the scheduler broke.
    #[error("lost the connection to the scheduler: {0}; results not yet gathered are lost, connect again and resubmit")]
    Lost(String),
    /// The key was cancelled.
    #[error("{0} was cancelled")]
    Cancelled(Key),
    /// Waiting took longer than allowed.
    #[error("timed out after {0:?} waiting for results")]
    Timeout(Duration),
    /// A future asked for another type than its key holds.
    #[error("the result of {key} has type `{found}`, but `{expected}` was asked for")]
    WrongType {
        /// The key.
        key: Key,
        /// What the future's type says.
        expected: &'static str,
        /// What the worker holds.
        found: String,
    },
    /// The task cannot be sent to workers (a closure, a value without a codec).
    #[error("{0}")]
    Unportable(String),
    /// The scheduler or a worker rejected a request.
    #[error("{0}")]
    Rejected(String),
    /// A performance report could not be written.
    #[error("cannot write the performance report to {}: {reason}", path.display())]
    Report {
        /// Where.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// Workers did not come back in time after `Client::restart` (Python: `TimeoutError`).
    #[error("{0}")]
    RestartTimeout(String),
    /// The task was running on workers that died, too many times (Dask's `KilledWorker`).
    #[error("{message}")]
    KilledWorker {
        /// The task blamed.
        key: Key,
        /// The scheduler's explanation.
        message: String,
    },
}

pub(crate) fn scheduler_error(e: ClientError) -> Error {
    Error::Scheduler {
        scheduler: "distributed",
        source: Box::new(e),
    }
}

/// The error a future reports for a key that erred on the cluster.
pub(crate) fn from_wire(key: Key, e: &WireError) -> Error {
    match e.kind {
        ErrorKind::Cancelled => scheduler_error(ClientError::Cancelled(key)),
        ErrorKind::Invalid => scheduler_error(ClientError::Rejected(e.message.clone())),
        ErrorKind::KilledWorker => scheduler_error(ClientError::KilledWorker {
            key: e.key.as_ref().and_then(|k| k.to_key().ok()).unwrap_or(key),
            message: e.message.clone(),
        }),
        _ => {
            let failed = e.key.as_ref().and_then(|k| k.to_key().ok()).unwrap_or(key);
            let te: TaskError = e.to_task_error(failed);
            Error::Task(Box::new(te))
        }
    }
}
