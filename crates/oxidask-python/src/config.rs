//! The Python face of the layered configuration: `oxidask.config.set` and `get` reach
//! `oxidask_config` for the keys the engine reads (scheduler, workers, clients, collections),
//! so `dask.config.set({"distributed.comm.timeouts.connect": "5s"})` works as in Dask.

use std::sync::Mutex;

use oxidask_config::{Raw, SetGuard, Value};
use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString};

/// A value set in the engine's configuration; `release()` undoes it (the end of a `with
/// config.set(...)` block).
#[pyclass(frozen, module = "oxidask._oxidask", name = "ConfigGuard")]
pub struct ConfigGuard(Mutex<Option<SetGuard>>);

#[pymethods]
impl ConfigGuard {
    /// Restores what was in effect before (idempotent).
    fn release(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

fn raw(value: &Bound<'_, PyAny>) -> PyResult<Raw> {
    if value.is_none() {
        Ok(Raw::Null)
    } else if value.is_instance_of::<PyBool>() {
        Ok(Raw::Bool(value.extract()?))
    } else if value.is_instance_of::<PyInt>() {
        Ok(Raw::Int(value.extract().map_err(|_| {
            PyValueError::new_err(format!("{value} does not fit in 64 bits"))
        })?))
    } else if value.is_instance_of::<PyFloat>() {
        Ok(Raw::Float(value.extract()?))
    } else if value.is_instance_of::<PyString>() {
        Ok(Raw::Str(value.extract()?))
    } else {
        Err(PyTypeError::new_err(format!(
            "a configuration value must be None, a bool, a number or a string, not {}",
            value.get_type().name()?
        )))
    }
}

/// Whether the engine reads `key` (dashes and underscores alike).
#[pyfunction]
pub fn config_known(key: &str) -> bool {
    oxidask_config::schema::spec(&key.replace('_', "-")).is_some()
}

/// Sets `key` in the engine's configuration until the returned guard is released; a
/// wrong type or an out-of-range value raises `ValueError` naming the key.
#[pyfunction]
pub fn config_set(key: &str, value: &Bound<'_, PyAny>) -> PyResult<ConfigGuard> {
    let key = key.replace('_', "-");
    let guard =
        oxidask_config::set(&key, raw(value)?).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(ConfigGuard(Mutex::new(Some(guard))))
}

/// The engine's effective value of `key`: `None`, a bool, an int, a float, or a string
/// (sizes and durations as Dask spells them, `"128 MiB"`, `"30s"`).
#[pyfunction]
pub fn config_get(py: Python<'_>, key: &str) -> PyResult<Py<PyAny>> {
    let key = key.replace('_', "-");
    let cfg = oxidask_config::global().map_err(|e| PyValueError::new_err(e.to_string()))?;
    let value = cfg
        .value(&key)
        .map_err(|e| PyKeyError::new_err(e.to_string()))?;
    Ok(match value {
        Value::Null => py.None(),
        Value::Off => false.into_pyobject(py)?.to_owned().into_any().unbind(),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
        Value::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::Fraction(f) => f.into_pyobject(py)?.into_any().unbind(),
        Value::Str(s) => s.into_pyobject(py)?.into_any().unbind(),
        other => other.to_string().into_pyobject(py)?.into_any().unbind(),
    })
}

/// `oxidask config`'s text: every key, its value and where it came from.
#[pyfunction]
pub fn config_render() -> PyResult<String> {
    let cfg = oxidask_config::global().map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(cfg.render())
}
