//! Coordination requests for `oxidask.distributed`'s `Variable`, `Queue`, `Lock`, `Semaphore`,
//! `Event`, `Pub`/`Sub` and published datasets: one function, [`coord`], turning a request
//! named as in Python into a [`CoordOp`] and its reply into Python objects. Values are
//! `(bytes, [Future])` pairs the Python side pickles and unpickles (futures inside a value
//! travel as keys); failures become the exceptions Dask raises.

use std::sync::Mutex;
use std::time::Duration;

use oxidask_protocol::{CoordErrorKind, CoordOp, CoordReply, CoordValue, Payload, WireKey};
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::client::{PyClient, PyFuture};
use crate::errors::to_pyerr;

/// A stored value from Python: pickled bytes and the futures they refer to.
fn value_from(py_value: Option<(Vec<u8>, Vec<Bound<'_, PyFuture>>)>) -> CoordValue {
    let Some((data, futures)) = py_value else {
        return CoordValue::default();
    };
    CoordValue {
        data: Payload(data.into()),
        keys: futures
            .iter()
            .map(|f| WireKey::from(&f.get().key()))
            .collect(),
    }
}

fn millis(timeout: Option<f64>) -> PyResult<Option<u64>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_finite() && t >= 0.0 => Ok(Some((t * 1000.0).ceil() as u64)),
        Some(t) => Err(PyValueError::new_err(format!(
            "timeout must be a number of seconds ≥ 0 (or None to wait for ever), got {t}"
        ))),
    }
}

/// Sends one coordination request on `core`'s connection and returns its answer as Python
/// objects: `None` (done), `(bytes, [Future])` (a value), a list of those (queue items), a
/// list of bytes (messages), a bool, an int, a list of names, or a list of
/// `(topic, time, bytes)` (events). Timeouts raise `TimeoutError`; an unknown dataset
/// `KeyError`; a release by a non-holder `RuntimeError`; a limit or bad argument
/// `ValueError`/`RuntimeError` saying what to do. Ctrl-C withdraws the request.
#[pyfunction]
#[pyo3(signature = (core, op, name, value = None, *, timeout = None, count = 0, id = 0, blocking = true, size = 0, overwrite = false, time = 0.0, owner = None))]
#[allow(clippy::too_many_arguments)]
pub fn coord<'py>(
    py: Python<'py>,
    core: &PyClient,
    op: &str,
    name: String,
    value: Option<(Vec<u8>, Vec<Bound<'py, PyFuture>>)>,
    timeout: Option<f64>,
    count: u32,
    id: u64,
    blocking: bool,
    size: u64,
    overwrite: bool,
    time: f64,
    owner: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let timeout_ms = millis(timeout)?;
    let bytes = |v: Option<(Vec<u8>, Vec<Bound<'py, PyFuture>>)>| value_from(v).data;
    let op = match op {
        "variable_set" => CoordOp::VariableSet {
            name,
            value: value_from(value),
        },
        "variable_get" => CoordOp::VariableGet { name, timeout_ms },
        "variable_delete" => CoordOp::VariableDelete { name },
        "queue_create" => CoordOp::QueueCreate {
            name,
            maxsize: size,
        },
        "queue_put" => CoordOp::QueuePut {
            name,
            value: value_from(value),
            timeout_ms,
        },
        "queue_get" => CoordOp::QueueGet {
            name,
            count,
            timeout_ms,
        },
        "queue_size" => CoordOp::QueueSize { name },
        "lock_acquire" => CoordOp::LockAcquire {
            name,
            holder: id,
            blocking,
            timeout_ms,
        },
        "lock_release" => CoordOp::LockRelease { name, holder: id },
        "lock_locked" => CoordOp::LockLocked { name },
        "semaphore_create" => CoordOp::SemaphoreCreate {
            name,
            max_leases: u32::try_from(size).map_err(|_| {
                PyValueError::new_err(format!("max_leases must be below 2**32, got {size}"))
            })?,
        },
        "semaphore_acquire" => CoordOp::SemaphoreAcquire {
            name,
            lease: id,
            blocking,
            timeout_ms,
        },
        "semaphore_release" => CoordOp::SemaphoreRelease { name, lease: id },
        "semaphore_value" => CoordOp::SemaphoreValue { name },
        "event_set" => CoordOp::EventSet { name },
        "event_clear" => CoordOp::EventClear { name },
        "event_wait" => CoordOp::EventWait { name, timeout_ms },
        "event_is_set" => CoordOp::EventIsSet { name },
        "publish" => CoordOp::Publish {
            topic: name,
            msg: bytes(value),
        },
        "subscribe" => CoordOp::Subscribe {
            topic: name,
            subscriber: id,
        },
        "unsubscribe" => CoordOp::Unsubscribe {
            topic: name,
            subscriber: id,
        },
        "sub_get" => CoordOp::SubGet {
            topic: name,
            subscriber: id,
            count,
            timeout_ms,
        },
        "dataset_publish" => CoordOp::DatasetPublish {
            name,
            value: value_from(value),
            overwrite,
        },
        "dataset_get" => CoordOp::DatasetGet { name },
        "dataset_unpublish" => CoordOp::DatasetUnpublish { name },
        "dataset_list" => CoordOp::DatasetList,
        "log_event" => CoordOp::LogEvent {
            topic: name,
            time,
            msg: bytes(value),
        },
        "get_events" => CoordOp::GetEvents {
            topic: (!name.is_empty()).then_some(name),
        },
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown coordination request {other:?}"
            )))
        }
    };
    let client = core.client();
    let caught: Mutex<Option<PyErr>> = Mutex::new(None);
    let interrupted = || {
        Python::attach(|py| match py.check_signals() {
            Ok(()) => false,
            Err(e) => {
                *caught.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                true
            }
        })
    };
    let result = py.detach(|| client.coordinate(op, Some(&interrupted)));
    let (reply, futures) = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(interrupt) = caught.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(interrupt);
            }
            return Err(to_pyerr(py, e));
        }
    };
    let mut futures = futures.into_iter();
    let mut value_py = |v: CoordValue| -> PyResult<Bound<'py, PyAny>> {
        let fs = PyList::empty(py);
        for _ in 0..v.keys.len() {
            let f = futures
                .next()
                .expect("one future per key of the reply, in order");
            fs.append(PyFuture::new(
                f,
                None,
                owner.as_ref().map(|o| o.clone_ref(py)),
            ))?;
        }
        Ok(PyTuple::new(py, [PyBytes::new(py, &v.data.0).into_any(), fs.into_any()])?.into_any())
    };
    match reply {
        CoordReply::Done => Ok(py.None().into_bound(py)),
        CoordReply::Value(v) => value_py(v),
        CoordReply::Values(vs) => {
            let out = PyList::empty(py);
            for v in vs {
                out.append(value_py(v)?)?;
            }
            Ok(out.into_any())
        }
        CoordReply::Messages(ms) => {
            Ok(PyList::new(py, ms.iter().map(|m| PyBytes::new(py, &m.0)))?.into_any())
        }
        CoordReply::Flag(b) => Ok(pyo3::types::PyBool::new(py, b).to_owned().into_any()),
        CoordReply::Count(n) => Ok(n.into_pyobject(py)?.into_any()),
        CoordReply::Names(n) => Ok(PyList::new(py, n)?.into_any()),
        CoordReply::Events(es) => {
            let out = PyList::empty(py);
            for e in es {
                out.append((e.topic, e.time, PyBytes::new(py, &e.msg.0)))?;
            }
            Ok(out.into_any())
        }
        CoordReply::TimedOut => Err(PyTimeoutError::new_err(format!(
            "timed out after {} waiting on the scheduler",
            timeout.map_or_else(
                || "ever".into(),
                |t| format!("{:?}", Duration::from_secs_f64(t))
            )
        ))),
        CoordReply::Failed { kind, message } => Err(match kind {
            CoordErrorKind::NotFound | CoordErrorKind::AlreadyExists => {
                PyKeyError::new_err(message)
            }
            CoordErrorKind::NotHeld | CoordErrorKind::Limit => PyRuntimeError::new_err(message),
            CoordErrorKind::UnknownKey | CoordErrorKind::Invalid => PyValueError::new_err(message),
        }),
    }
}
