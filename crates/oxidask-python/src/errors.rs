//! oxidask errors as the Python exceptions a Dask user expects.
//!
//! A Python task's exception comes back as itself (its pickled form travels as the failure's
//! detail), with the remote traceback; cluster failures become `KilledWorker`,
//! `CancelledError` and `TimeoutError` from `oxidask.exceptions`; everything else a
//! `RuntimeError` naming what went wrong.

use oxidask_client::ClientError;
use oxidask_core::Error;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// An exception class from `oxidask.exceptions`.
fn exception_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("oxidask.exceptions")?.getattr(name)
}

fn raise(py: Python<'_>, class: &str, message: String) -> PyErr {
    match exception_class(py, class).and_then(|c| c.call1((message.clone(),))) {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => PyRuntimeError::new_err(format!("{message} (and {class} is missing: {e})")),
    }
}

/// The Python exception for an oxidask error.
pub fn to_pyerr(py: Python<'_>, e: Error) -> PyErr {
    match e {
        Error::Task(te) => {
            if let Some(detail) = te.failure.detail() {
                let rebuilt = py
                    .import("oxidask._remote")
                    .and_then(|m| m.getattr("rebuild"))
                    .and_then(|f| {
                        f.call1((
                            PyBytes::new(py, detail),
                            te.failure.message(),
                            te.key.to_string(),
                        ))
                    });
                match rebuilt {
                    Ok(exc) => return PyErr::from_value(exc),
                    Err(err) => return err,
                }
            }
            raise(py, "TaskError", te.to_string())
        }
        Error::Scheduler { source, .. } => match source.downcast::<ClientError>() {
            Ok(ce) => match *ce {
                ClientError::KilledWorker { message, .. } => raise(py, "KilledWorker", message),
                ClientError::Cancelled(key) => {
                    raise(py, "FutureCancelledError", format!("{key} cancelled"))
                }
                ClientError::Timeout(t) => raise(
                    py,
                    "TimeoutError",
                    format!(
                        "timed out after {:.3} s waiting for results",
                        t.as_secs_f64()
                    ),
                ),
                ClientError::RestartTimeout(message) => raise(py, "TimeoutError", message),
                // What cannot be pickled is a TypeError, as in Dask.
                ClientError::Unportable(message) => PyTypeError::new_err(message),
                other => raise(py, "ClusterError", other.to_string()),
            },
            Err(other) => raise(py, "ClusterError", other.to_string()),
        },
        Error::Graph(g) => PyValueError::new_err(g.to_string()),
        other => PyRuntimeError::new_err(other.to_string()),
    }
}
