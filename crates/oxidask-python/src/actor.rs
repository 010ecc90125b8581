//! Actors for `oxidask.distributed` (`Client.submit(cls, actor=True)`): the Python object
//! held by a worker ([`actor_register`], called by the task that builds it) and calls on it
//! from a client or a task ([`actor_call`], answered by an [`ActorCallHandle`]). Arguments and
//! replies are bytes pickled by `oxidask.distributed.actor`; this module only moves them.

// Wire errors are built on failure paths only.
#![allow(clippy::result_large_err)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use oxidask_client::{ActorCall, ActorError};
use oxidask_core::Key;
use oxidask_protocol::WireError;
use oxidask_worker::ActorInstance;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::client::PyClient;

/// A Python object held as an actor, and the function that runs calls on it
/// (`oxidask.distributed.actor._execute`).
struct PyActor {
    obj: Option<Py<PyAny>>,
    execute: Option<Py<PyAny>>,
}

impl ActorInstance for PyActor {
    fn call(&mut self, name: &str, attribute: bool, args: Bytes) -> Result<Bytes, WireError> {
        let (Some(obj), Some(execute)) = (&self.obj, &self.execute) else {
            return Err(WireError::invalid("the actor was dropped"));
        };
        crate::gil::attach(|py| {
            let out = execute
                .bind(py)
                .call1((obj.bind(py), name, attribute, PyBytes::new(py, &args)))
                .and_then(|r| r.extract::<Vec<u8>>());
            match out {
                Ok(b) => Ok(Bytes::from(b)),
                Err(e) => Err(WireError::invalid(format!(
                    "running {name} on the actor failed in oxidask itself: {e}"
                ))),
            }
        })
        .map_err(|e| WireError::invalid(format!("cannot run {name} on the actor: {e}")))?
    }
}

impl Drop for PyActor {
    fn drop(&mut self) {
        let (obj, execute) = (self.obj.take(), self.execute.take());
        // Drop the object with the GIL held, so its finalizers run now, on this thread.
        let _ = crate::gil::attach(move |_py| {
            drop(obj);
            drop(execute);
        });
    }
}

/// Makes `obj` the actor of the task running on this thread (a worker's executor): it moves
/// to a thread of its own that runs `execute(obj, name, attribute, args)` for each call.
/// Returns `(worker data address, key)`.
#[pyfunction]
pub fn actor_register(obj: Py<PyAny>, execute: Py<PyAny>) -> PyResult<(String, String)> {
    let placement = oxidask_worker::actor::register(Box::new(PyActor {
        obj: Some(obj),
        execute: Some(execute),
    }))
    .map_err(PyRuntimeError::new_err)?;
    Ok((placement.address, placement.key.to_string()))
}

/// Sends a call to the actor `key` on the worker at `address` through `core`'s connections;
/// returns at once.
#[pyfunction]
#[pyo3(signature = (core, address, key, name, attribute, args))]
pub fn actor_call(
    py: Python<'_>,
    core: &PyClient,
    address: &str,
    key: &str,
    name: &str,
    attribute: bool,
    args: &[u8],
) -> PyResult<ActorCallHandle> {
    let key: Key = key
        .parse()
        .map_err(|e| PyValueError::new_err(format!("{key:?} is not an actor's key: {e}")))?;
    let args = Bytes::copy_from_slice(args);
    let client = core.client();
    let call = py.detach(|| client.actor_call(address, key, name, attribute, args));
    Ok(ActorCallHandle { call })
}

/// A call on its way (the engine under `ActorFuture`).
#[pyclass(frozen, module = "oxidask._oxidask", name = "ActorCallHandle")]
pub struct ActorCallHandle {
    call: ActorCall,
}

#[pymethods]
impl ActorCallHandle {
    /// True once answered.
    fn done(&self) -> bool {
        self.call.is_done()
    }

    /// Waits at most `timeout` seconds (`None`: for ever; Ctrl-C interrupts) and returns
    /// `(0, reply bytes)`, `(1, message)` if the actor was lost, `(2, message)` if the call
    /// failed on the worker, or `None` on timeout.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<(u8, Py<PyAny>)>> {
        let deadline = match timeout {
            None => None,
            Some(t) if t.is_finite() && t >= 0.0 => {
                Some(Instant::now() + Duration::from_secs_f64(t))
            }
            Some(t) => {
                return Err(PyValueError::new_err(format!(
                    "timeout must be a number of seconds ≥ 0 (or None), got {t}"
                )))
            }
        };
        loop {
            let slice = Duration::from_millis(50);
            let step = match deadline {
                None => slice,
                Some(d) => d.saturating_duration_since(Instant::now()).min(slice),
            };
            let got = if self.call.is_done() {
                self.call.wait(Some(Duration::ZERO))
            } else {
                py.detach(|| self.call.wait(Some(step)))
            };
            if let Some(out) = got {
                return Ok(Some(match out {
                    Ok(b) => (0, PyBytes::new(py, &b).into_any().unbind()),
                    Err(ActorError::Lost(m)) => (1, m.into_pyobject(py)?.into_any().unbind()),
                    Err(ActorError::Failed(e)) => {
                        (2, e.message.into_pyobject(py)?.into_any().unbind())
                    }
                }));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            py.check_signals()?;
        }
    }
}

/// Adds this module's class and functions to the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ActorCallHandle>()?;
    m.add_function(wrap_pyfunction!(actor_register, m)?)?;
    m.add_function(wrap_pyfunction!(actor_call, m)?)?;
    Ok(())
}
